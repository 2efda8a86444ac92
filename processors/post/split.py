"""Split recognised windows into readable transcript segments.

Whisper windows from an upload are up to ~28 s long. A transcript reads better (and subtitles work) when
segments follow sentences: split at sentence-final punctuation, at long pauses, and before a segment grows
past a readable length. Word timings come from the recogniser; ids are derived from the window's id so a
redelivered window yields the same segments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from processors.post.speakers import Attribution

SENTENCE_END = (".", "?", "!", "…")


@dataclass(frozen=True)
class SplitRules:
    max_seconds: float = 12.0
    max_chars: int = 160
    min_seconds: float = 1.0
    pause_seconds: float = 0.8


@dataclass
class Piece:
    id: str
    start: float
    end: float
    text: str
    words: list[dict[str, Any]] = field(default_factory=list)
    confidence: float | None = None
    channel: int | None = None
    speaker: str | None = None
    overlap: list[str] = field(default_factory=list)  # other speakers heard during the piece

    def to_event(self, index: int) -> dict[str, Any]:
        return {"id": self.id, "index": index, "start": self.start, "end": self.end, "text": self.text,
                "speaker": self.speaker, "channel": self.channel, "confidence": self.confidence,
                "words": self.words, "overlap": self.overlap}


def _join(words: list[dict[str, Any]]) -> str:
    return "".join(w["word"] for w in words).strip()


def _confidence(words: list[dict[str, Any]]) -> float | None:
    if not words:
        return None
    return round(sum(w["probability"] for w in words) / len(words), 4)


def _word(w: dict[str, Any], who: Attribution) -> dict[str, Any]:
    return {"start": w["start"], "end": w["end"], "word": w["word"], "probability": w["probability"],
            "speaker": who.speaker, "overlap": list(who.overlap)}


def split_segment(seg: dict[str, Any], rules: SplitRules = SplitRules(),
                  attribution: list[Attribution] | None = None) -> list[Piece]:
    """One recognised segment (``asr.segments`` FINAL) -> readable pieces, in time order. With an
    ``attribution`` per word (its speaker and the others heard with it), a piece never spans two speakers,
    carries its speaker, and lists the other speakers heard during it (``overlap``); every word carries its
    own."""
    base = seg["segment_id"]
    raw: list[dict[str, Any]] = list(seg.get("words") or [])
    if not raw:
        text = (seg.get("text") or "").strip()
        if not text:
            return []
        return [Piece(f"{base}.0", seg["start"], seg["end"], text, [], None, seg.get("channel"))]
    attrs = attribution if attribution is not None else [Attribution(None)] * len(raw)
    words = [_word(w, a) for w, a in zip(raw, attrs, strict=True)]
    who = [a.speaker for a in attrs]
    groups: list[list[int]] = [[]]
    for i, w in enumerate(words):
        cur = [words[j] for j in groups[-1]]
        if cur:
            span = w["end"] - cur[0]["start"]
            pause = w["start"] - cur[-1]["end"]
            long_enough = cur[-1]["end"] - cur[0]["start"] >= rules.min_seconds
            sentence_done = cur[-1]["word"].strip().endswith(SENTENCE_END)
            too_long = span > rules.max_seconds or len(_join([*cur, w])) > rules.max_chars
            new_speaker = who[i] != who[groups[-1][-1]]
            if new_speaker or (long_enough and (sentence_done or pause >= rules.pause_seconds)) or too_long:
                groups.append([])
        groups[-1].append(i)
    pieces = []
    for k, idx in enumerate(x for x in groups if x):
        g = [words[j] for j in idx]
        overlap = sorted({s for w in g for s in w["overlap"]})
        pieces.append(Piece(f"{base}.{k}", round(g[0]["start"], 3), round(g[-1]["end"], 3), _join(g), g,
                            _confidence(g), seg.get("channel"), who[idx[0]], overlap))
    return pieces
