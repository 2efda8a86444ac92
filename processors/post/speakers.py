"""Give each recognised word the speaker talking at its time, and name the others heard with it.

Turns may overlap (the overlap-aware backend finds two people talking at once). For each word:

- every speaker's *coverage* is how much of the word's time their turns cover (a word without duration is
  covered by a turn that contains its instant);
- the word goes to the *dominant* speaker: the one covering most of it. Where several cover it about as much
  (within ``tie`` of the word's length; in overlapped speech both usually cover all of it), the recogniser,
  which transcribes one voice, was most likely still following the speaker of the previous word if the word
  follows it without a pause (``pause``): that speaker keeps it. After a pause, the word goes to the voice
  that starts with it (the covering turn that begins nearest the word: someone taking the floor), then to the
  longest turn;
- the other speakers covering at least half of the word are listed as its ``overlap``;
- a word no turn touches goes to the nearest turn within ``max_gap`` seconds (turn edges and word timings
  disagree by a few hundred milliseconds), else to nobody.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Attribution:
    speaker: str | None
    overlap: tuple[str, ...] = ()  # the other speakers heard during the word


class _SpeakerTurns:
    """One speaker's turns, sorted, for interval queries."""

    def __init__(self, turns: list[tuple[float, float]]) -> None:
        turns.sort()
        self.starts = [a for a, _ in turns]
        self.ends = [b for _, b in turns]
        # running maximum of the ends: a turn that started long ago may still be going on
        self.reach: list[float] = []
        for b in self.ends:
            self.reach.append(max(b, self.reach[-1]) if self.reach else b)

    def around(self, a: float, b: float) -> list[int]:
        """Indices of the turns that overlap [a, b] (or contain ``a`` when a == b)."""
        hi = bisect.bisect_right(self.starts, b)
        lo = bisect.bisect_left(self.reach, a)  # turns before lo end before a
        return [i for i in range(lo, hi) if self.ends[i] >= a]

    def coverage(self, a: float, b: float) -> tuple[float, float, float]:
        """(seconds of [a, b] covered, seconds between ``a`` and the nearest start of a covering turn, length
        of the longest covering turn); a zero-length word is covered (1.0) when a turn contains it."""
        covered, nearest, longest = 0.0, float("inf"), 0.0
        for i in self.around(a, b):
            s, e = self.starts[i], self.ends[i]
            part = min(b, e) - max(a, s) if b > a else (1.0 if s <= a <= e else 0.0)
            if part > 0:
                covered += part
                nearest = min(nearest, abs(a - s))
                longest = max(longest, e - s)
        return covered, nearest, longest

    def distance(self, a: float, b: float) -> float:
        """Seconds from [a, b] to the nearest of the turns."""
        i = bisect.bisect_right(self.starts, b)
        before = a - self.reach[i - 1] if i > 0 else float("inf")
        after = self.starts[i] - b if i < len(self.starts) else float("inf")
        return max(0.0, min(before, after))


def attribute(words: list[dict[str, Any]], turns: list[dict[str, Any]], max_gap: float = 2.0,
              tie: float = 0.2, pause: float = 0.3) -> list[Attribution]:
    """An ``Attribution`` per word (dicts with start, end) from turns (dicts with start, end, speaker)."""
    if not turns:
        return [Attribution(None) for _ in words]
    by_speaker: dict[str, list[tuple[float, float]]] = {}
    for t in turns:
        by_speaker.setdefault(t["speaker"], []).append((float(t["start"]), float(t["end"])))
    index = {s: _SpeakerTurns(v) for s, v in by_speaker.items()}
    out: list[Attribution] = []
    previous: str | None = None
    previous_end = float("-inf")
    for w in words:
        a = float(w["start"])
        b = max(float(w["end"]), a)
        cover = {s: c for s, c in ((s, t.coverage(a, b)) for s, t in index.items()) if c[0] > 0}
        if not cover:
            near = min(index, key=lambda s: index[s].distance(a, b))
            speaker = near if index[near].distance(a, b) <= max_gap else None
            out.append(Attribution(speaker))
        else:
            speaker = _dominant(cover, b - a, tie, previous if a - previous_end < pause else None)
            half = 0.5 * (b - a) if b > a else 1.0
            others = tuple(sorted(s for s, c in cover.items() if s != speaker and c[0] >= half))
            out.append(Attribution(speaker, others))
        previous = speaker or previous
        previous_end = b
    return out


def _dominant(cover: dict[str, tuple[float, float, float]], length: float, tie: float,
              following: str | None) -> str:
    """The speaker of a word from each covering speaker's (coverage, distance to turn start, turn length);
    ``following``: the previous word's speaker when the word follows it without a pause."""
    best = max(c for c, _, _ in cover.values())
    margin = tie * length if length > 0 else 0.0
    candidates = [s for s, (c, _, _) in cover.items() if c >= best - margin]
    if following in candidates:
        return following
    return min(candidates, key=lambda s: (cover[s][1], -cover[s][2], s))


def attribute_words(words: list[dict[str, Any]], turns: list[dict[str, Any]],
                    max_gap: float = 2.0) -> list[str | None]:
    """The dominant speaker of each word (see ``attribute``)."""
    return [a.speaker for a in attribute(words, turns, max_gap)]


def dominant_speaker(turns: list[dict[str, Any]], start: float, end: float) -> str | None:
    """The speaker talking most between ``start`` and ``end`` (e.g. over a live utterance)."""
    talk: dict[str, float] = {}
    for t in turns:
        part = min(end, t["end"]) - max(start, t["start"])
        if part > 0:
            talk[t["speaker"]] = talk.get(t["speaker"], 0.0) + part
    return max(talk, key=lambda s: (talk[s], s)) if talk else None
