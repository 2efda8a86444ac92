"""Recognised windows rebuilt from a stored transcript, so that a replay which does not run recognition can feed
post-processing the same words again.

Transcript segment ids are ``<window id>.<n>``: the pieces post-processing cut a recognised window into
(``split.py``). Joining a window's pieces in order gives back its words, each with its timing and
probability, as the recogniser published them; windows are numbered in time order. A window whose
recognition gave no words left no segment and is not rebuilt (it adds nothing to a transcript).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

WORD_FIELDS = ("start", "end", "word", "probability")


@dataclass
class Window:
    segment_id: str
    index: int
    start: float
    end: float
    channel: int | None
    text: str
    words: list[dict[str, Any]] = field(default_factory=list)


def window_id(segment_id: str) -> str:
    return segment_id.rsplit(".", 1)[0] if "." in segment_id else segment_id


def windows_from_segments(segments: list[dict[str, Any]]) -> list[Window]:
    """Stored segments (segment_id, start, end, text, channel, words) -> the recognised windows they came from,
    in time order, indexed from 0."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for seg in segments:
        grouped.setdefault(window_id(seg["segment_id"]), []).append(seg)
    windows: list[Window] = []
    for wid, pieces in grouped.items():
        pieces.sort(key=lambda p: (float(p["start"]), _piece_number(p["segment_id"])))
        words = [{k: w[k] for k in WORD_FIELDS} for p in pieces for w in p.get("words") or []]
        text = "".join(w["word"] for w in words).strip() if words else " ".join(
            str(p.get("text") or "").strip() for p in pieces).strip()
        windows.append(Window(wid, 0, float(pieces[0]["start"]), max(float(p["end"]) for p in pieces),
                              pieces[0].get("channel"), text, words))
    windows.sort(key=lambda w: (w.start, w.segment_id))
    for i, w in enumerate(windows):
        w.index = i
    return windows


def _piece_number(segment_id: str) -> int:
    tail = segment_id.rsplit(".", 1)[-1]
    return int(tail) if tail.isdigit() else 0
