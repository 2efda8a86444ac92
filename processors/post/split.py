"""Split recognised windows into readable transcript segments.

Whisper windows from an upload are up to ~28 s long. A transcript reads better (and subtitles work) when
segments follow sentences: split at sentence-final punctuation, at long pauses, and before a segment grows
past a readable length. Word timings come from the recogniser; ids are derived from the window's id so a
redelivered window yields the same segments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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

    def to_event(self, index: int) -> dict[str, Any]:
        return {"id": self.id, "index": index, "start": self.start, "end": self.end, "text": self.text,
                "speaker": self.speaker, "channel": self.channel, "confidence": self.confidence,
                "words": self.words}


def _join(words: list[dict[str, Any]]) -> str:
    return "".join(w["word"] for w in words).strip()


def _confidence(words: list[dict[str, Any]]) -> float | None:
    if not words:
        return None
    return round(sum(w["probability"] for w in words) / len(words), 4)


def split_segment(seg: dict[str, Any], rules: SplitRules = SplitRules(),
                  speakers: list[str | None] | None = None) -> list[Piece]:
    """One recognised segment (``asr.segments`` FINAL) -> readable pieces, in time order. With ``speakers``
    (one per word) a piece never spans two speakers and carries its speaker."""
    words: list[dict[str, Any]] = list(seg.get("words") or [])
    base = seg["segment_id"]
    if not words:
        text = (seg.get("text") or "").strip()
        if not text:
            return []
        return [Piece(f"{base}.0", seg["start"], seg["end"], text, [], None, seg.get("channel"))]
    who = speakers if speakers is not None else [None] * len(words)
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
        pieces.append(Piece(f"{base}.{k}", round(g[0]["start"], 3), round(g[-1]["end"], 3), _join(g), g,
                            _confidence(g), seg.get("channel"), who[idx[0]]))
    return pieces
