"""Speakers in a live session: finals carry the provisional speaker of their utterance, and the labels revised
at the end of the session are sent to the client (docs/live.md).

The diarization stage labels each final utterance of an acoustically diarized session at once (online
clustering) and publishes its turns as PARTIAL ``speaker.turns`` for that speech segment; the recogniser
publishes the utterance's text on ``asr.segments``. Whichever comes second completes the final: a final whose
label has not arrived waits for it at most ``wait_s`` (the label usually comes first: embedding an utterance
takes less time than recognising it); if the wait runs out the final goes without a speaker and a ``speaker``
message follows when the label arrives. At the end, ``revised`` compares the labels sent with the completed
transcript's speakers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from processors.post.speakers import attribute, dominant_speaker

Message = dict[str, Any]


def _names(turns_event: dict[str, Any]) -> dict[str, str]:
    return {s["id"]: s["label"] for s in turns_event.get("speakers") or []}


def labelled(segment: Message, turns_event: dict[str, Any]) -> Message:
    """A final's segment JSON with its speaker (who talks most in it) and each word's speaker and overlap,
    shown by the names the session gave (``speaker_names``), marked provisional."""
    names = _names(turns_event)
    turns = turns_event["turns"]
    words = [{**w, "speaker": names.get(a.speaker, a.speaker) if a.speaker else None,
              "overlap": [names.get(o, o) for o in a.overlap]}
             for w, a in zip(segment["words"], attribute(segment["words"], turns), strict=True)]
    speaker = dominant_speaker(turns, segment["start"], segment["end"])
    return {**segment, "speaker": names.get(speaker, speaker) if speaker else None, "speaker_provisional": True,
            "words": words}


@dataclass
class LiveSpeakers:
    """The finals of one session waiting for their labels, and the labels sent so far."""

    wait_s: float
    waiting: dict[str, tuple[float, Message]] = field(default_factory=dict)  # segment id -> (deadline, segment)
    labels: dict[str, dict[str, Any]] = field(default_factory=dict)  # segment id -> PARTIAL turns event
    sent: dict[str, str | None] = field(default_factory=dict)  # segment id -> provisional speaker sent

    def final(self, segment: Message, now: float) -> list[Message]:
        """A final from the recogniser: sent now with its label if known, else held until ``now + wait_s``."""
        turns = self.labels.get(segment["id"])
        if turns is not None:
            return [self._send(labelled(segment, turns))]
        self.waiting[segment["id"]] = (now + self.wait_s, segment)
        return []

    def turns(self, event: dict[str, Any]) -> list[Message]:
        """PARTIAL turns of one speech segment: completes its waiting final, or updates one already sent."""
        segment_id = event.get("segment_id")
        if not segment_id or segment_id in self.labels:
            return []
        self.labels[segment_id] = event
        held = self.waiting.pop(segment_id, None)
        if held is not None:
            return [self._send(labelled(held[1], event))]
        if segment_id in self.sent:  # the final went out without a speaker
            names = _names(event)
            speaker = dominant_speaker(event["turns"], -1e9, 1e9)
            shown = names.get(speaker, speaker) if speaker else None
            self.sent[segment_id] = shown
            return [{"type": "speaker", "segment_id": segment_id, "speaker": shown, "provisional": True}]
        return []

    def due(self, now: float) -> list[Message]:
        """Finals whose wait ran out: sent without a speaker (a ``speaker`` message may follow)."""
        out = []
        for segment_id, (deadline, segment) in list(self.waiting.items()):
            if deadline <= now:
                del self.waiting[segment_id]
                out.append(self._send(segment))
        return out

    def next_deadline(self) -> float | None:
        return min((d for d, _ in self.waiting.values()), default=None)

    def flush(self) -> list[Message]:
        """Every final still waiting, as it is (the session is ending)."""
        return self.due(float("inf"))

    def _send(self, segment: Message) -> Message:
        self.sent[segment["id"]] = segment.get("speaker")
        return {"type": "final", "segment": segment}

    def revised(self, transcript: dict[str, Any]) -> Message:
        """The labels of the completed transcript for every final sent: its pieces are ``<final id>.<n>``, each
        with one speaker; ``speaker`` is the one who says most of the final's words, ``changed`` whether it
        differs from the provisional label sent."""
        by_final: dict[str, list[dict[str, Any]]] = {}
        for seg in transcript.get("segments") or []:
            by_final.setdefault(seg["id"].rsplit(".", 1)[0], []).append(seg)
        segments = []
        for final_id, was in self.sent.items():
            pieces = by_final.get(final_id, [])
            words: dict[str, int] = {}
            for p in pieces:
                if p.get("speaker"):
                    words[p["speaker"]] = words.get(p["speaker"], 0) + max(1, len(p.get("words") or []))
            speaker = max(words, key=lambda s: (words[s], s)) if words else None
            segments.append({"id": final_id, "speaker": speaker, "provisional_speaker": was,
                             "changed": speaker != was,
                             "pieces": [{"id": p["id"], "speaker": p.get("speaker")} for p in pieces]})
        return {"type": "speakers", "provisional": False, "speakers": transcript.get("speakers") or [],
                "segments": segments}
