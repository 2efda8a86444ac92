"""Who spoke when, as integer milliseconds: the interval arithmetic the conversation metrics are made of.

Times are whole milliseconds so that sums, differences and comparisons are exact (a talk time computed here
equals one computed by hand from the same turns, to the millisecond). ``to_ms`` is the one rounding step.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise

Span = tuple[int, int]  # [start, end) in milliseconds


def to_ms(seconds: float) -> int:
    return round(seconds * 1000)


def seconds(ms: int) -> float:
    return round(ms / 1000, 3)


@dataclass(frozen=True, order=True)
class Speech:
    """One stretch of one speaker's speech (a diarization turn, or a transcript segment)."""

    start: int
    end: int
    speaker: str


def union(spans: Iterable[Span]) -> list[Span]:
    """The spans merged where they overlap or touch, in time order; empty spans dropped."""
    out: list[Span] = []
    for start, end in sorted(s for s in spans if s[1] > s[0]):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def measure(spans: Iterable[Span]) -> int:
    """Total length of spans already merged by ``union``."""
    return sum(end - start for start, end in spans)


def gaps(merged: Sequence[Span]) -> list[Span]:
    """The stretches between consecutive merged spans (nothing before the first, nothing after the last)."""
    return [(a[1], b[0]) for a, b in pairwise(merged)]


def concurrency(by_speaker: dict[str, list[Span]]) -> list[tuple[int, int, frozenset[str]]]:
    """The timeline cut where any speaker starts or stops: (start, end, who talks) for every piece in which
    somebody talks. ``by_speaker`` holds each speaker's merged spans."""
    edges: dict[int, list[tuple[int, str]]] = {}
    for speaker, spans in by_speaker.items():
        for start, end in spans:
            edges.setdefault(start, []).append((1, speaker))
            edges.setdefault(end, []).append((-1, speaker))
    out: list[tuple[int, int, frozenset[str]]] = []
    active: set[str] = set()
    times = sorted(edges)
    for t, nxt in pairwise(times):
        for step, speaker in edges[t]:
            if step < 0:
                active.discard(speaker)
        for step, speaker in edges[t]:
            if step > 0:
                active.add(speaker)
        if active:
            out.append((t, nxt, frozenset(active)))
    return out


def talking_at(spans: Sequence[Span], t: int) -> bool:
    """Whether ``t`` falls strictly inside one of the merged ``spans`` (started before, still going after)."""
    return any(start < t < end for start, end in spans)
