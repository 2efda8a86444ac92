"""The analytics of one call (one revision of a job's transcript): the record published on ``analytics.calls``.

Timing comes from the diarization turns when the call was diarized acoustically (they may overlap; the
transcript's segments give each stretch of audio to one speaker only), else from the transcript segments
(channel-per-party calls: each channel's segments, which overlap where the parties talk at once). Words,
phrase hits and sentiment come from the transcript. A word's speaker is its own when the transcript names
one, else its segment's.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from processors.analytics.conversation import Shape, shape
from processors.analytics.phrases import Hit, Phrase, SpokenWord, find_hits, missing_required
from processors.analytics.sentiment import compound, scores_language, weighted_mean
from processors.analytics.timeline import Speech, seconds, to_ms

UNKNOWN = "unknown"  # the speaker of segments a transcript attributes to nobody (diarization off)


@dataclass(frozen=True)
class Rules:
    turn_pause_s: float = 2.0  # longer pauses of one speaker end their turn
    silence_threshold_s: float = 3.0  # gaps at least this long are listed with their times

    @property
    def turn_pause(self) -> int:
        return to_ms(self.turn_pause_s)

    @property
    def silence_threshold(self) -> int:
        return to_ms(self.silence_threshold_s)


@dataclass
class CallInput:
    """One completed transcript revision: its segments (as on ``transcripts``), its speakers (from the
    COMPLETED event) and, for acoustic diarization, the turns (from ``speaker.turns``)."""

    stream_id: str
    revision: int
    segments: list[dict[str, Any]]
    speakers: list[dict[str, Any]] = field(default_factory=list)
    turns: list[dict[str, Any]] | None = None
    job_id: str | None = None
    org_id: str = "default"
    duration: float | None = None
    language: str | None = None
    model: str = ""
    pipeline_version: str = ""
    source: str = "producer"
    completed_at: int = 0  # ms since the epoch


def speaker_name(speaker: dict[str, Any]) -> str | None:
    """A speaker's name for aggregates: the enrolled voice it was identified as, else its channel's name
    (``speaker_names``), else None (an anonymous cluster such as SPEAKER_00)."""
    if speaker.get("name"):
        return str(speaker["name"])
    label = speaker.get("label")
    return str(label) if label and label != speaker.get("id") else None


def _segment_speaker(seg: dict[str, Any]) -> str:
    if seg.get("speaker"):
        return str(seg["speaker"])
    said = Counter(w["speaker"] for w in seg.get("words") or [] if w.get("speaker"))
    return said.most_common(1)[0][0] if said else UNKNOWN


def speech_of(call: CallInput) -> tuple[str, list[Speech]]:
    """("turns" | "segments", the stretches of speech the timing metrics are computed from)."""
    if call.turns:
        return "turns", [Speech(to_ms(t["start"]), to_ms(t["end"]), str(t["speaker"])) for t in call.turns]
    return "segments", [Speech(to_ms(s["start"]), to_ms(s["end"]), _segment_speaker(s)) for s in call.segments]


def words_of(call: CallInput) -> list[SpokenWord]:
    out = []
    for seg in call.segments:
        default = _segment_speaker(seg)
        for w in seg.get("words") or []:
            if w["word"].strip():
                out.append(SpokenWord(to_ms(w["start"]), to_ms(w["end"]), w["word"], str(w.get("speaker") or default)))
    return out


def _wpm(words: int, talk_ms: int) -> float | None:
    return round(words * 60_000 / talk_ms, 1) if talk_ms > 0 else None


def _speaker_table(call: CallInput, timing: Shape, words: Sequence[SpokenWord]) -> dict[str, dict[str, Any]]:
    known = {str(s["id"]): s for s in call.speakers}
    ids = list(known) + sorted((set(timing.speakers) | {w.speaker for w in words}) - set(known))
    return {i: known.get(i, {"id": i, "label": i}) for i in ids}


def _sentiments(call: CallInput) -> tuple[list[dict[str, Any]], dict[str, float | None], float | None]:
    """(per segment, per speaker, whole call): word-weighted means of the segments' compound scores."""
    if not scores_language(call.language):
        return [], {}, None
    per_segment = []
    by_speaker: dict[str, list[tuple[float, int]]] = {}
    everyone: list[tuple[float, int]] = []
    for seg in call.segments:
        text = seg.get("text") or ""
        if not text.strip():
            continue
        score, weight, who = compound(text), max(1, len(seg.get("words") or [])), _segment_speaker(seg)
        per_segment.append({"segment_id": seg["id"], "start": seg["start"], "end": seg["end"],
                            "speaker": seg.get("speaker"), "sentiment": score})
        by_speaker.setdefault(who, []).append((score, weight))
        everyone.append((score, weight))
    return per_segment, {k: weighted_mean(v) for k, v in by_speaker.items()}, weighted_mean(everyone)


def _hit(h: Hit) -> dict[str, Any]:
    return {"phrase_id": h.phrase_id, "phrase": h.phrase, "kind": h.kind, "speaker": h.speaker,
            "start": seconds(h.start), "end": seconds(h.end), "text": h.text, "score": h.score}


def analyze(call: CallInput, phrases: Sequence[Phrase] = (), rules: Rules = Rules()) -> dict[str, Any]:
    """The ``analytics.calls`` record of ``call`` (field names of ``schemas/avro/analytics_call.avsc``;
    times in seconds)."""
    source, speech = speech_of(call)
    timing = shape(speech, turn_pause=rules.turn_pause, silence_threshold=rules.silence_threshold)
    words = words_of(call)
    people = _speaker_table(call, timing, words)
    names = {i: speaker_name(s) for i, s in people.items()}
    hits = find_hits(words, phrases, names)
    per_segment, sentiment_of, sentiment = _sentiments(call)
    word_counts = Counter(w.speaker for w in words)
    speakers = []
    for sid, meta in people.items():
        t = timing.speakers.get(sid)
        talk = t.talk if t else 0
        speakers.append({
            "id": sid, "label": str(meta.get("label") or sid), "name": names[sid], "channel": meta.get("channel"),
            "talk_time": seconds(talk), "talk_share": round(timing.share(sid), 4) if t else 0.0,
            "turns": t.turns if t else 0,
            "longest_monologue": seconds(t.longest_turn.length) if t and t.longest_turn else 0.0,
            "overlap_time": seconds(t.overlap) if t else 0.0,
            "interruptions_made": t.interruptions_made if t else 0, "interrupted": t.interrupted if t else 0,
            "words": word_counts.get(sid, 0), "words_per_minute": _wpm(word_counts.get(sid, 0), talk),
            "sentiment": sentiment_of.get(sid)})
    longest = timing.longest_turn
    return {
        "stream_id": call.stream_id, "job_id": call.job_id, "revision": call.revision, "org_id": call.org_id,
        "model": call.model, "pipeline_version": call.pipeline_version, "source": call.source,
        "language": call.language, "completed_at": call.completed_at,
        "duration": round(call.duration, 3) if call.duration is not None else seconds(max((s.end for s in speech),
                                                                                            default=0)),
        "timing": source,
        "speech_time": seconds(timing.speech), "overlap_time": seconds(timing.overlap),
        "silence_total": seconds(timing.silence),
        "longest_silence": ({"start": seconds(timing.longest_silence[0]), "end": seconds(timing.longest_silence[1])}
                            if timing.longest_silence else None),
        "silences": [{"start": seconds(a), "end": seconds(b)} for a, b in timing.silences],
        "silence_threshold": rules.silence_threshold_s,
        "turns": len(timing.turns),
        "longest_monologue": ({"speaker": longest.speaker, "start": seconds(longest.start),
                               "end": seconds(longest.end)} if longest else None),
        "interruptions": [{"at": seconds(i.at), "by": i.by, "of": i.of} for i in timing.interruptions],
        "words": len(words), "words_per_minute": _wpm(len(words), timing.speech), "sentiment": sentiment,
        "speakers": speakers,
        "phrase_hits": [_hit(h) for h in hits],
        "required_missing": [{"phrase_id": p.phrase_id, "phrase": p.text, "speaker": p.speaker}
                             for p in missing_required(phrases, hits)],
        "segments": per_segment,
    }
