"""Give each recognised word the speaker whose turn covers it best."""

from __future__ import annotations

import bisect
from typing import Any


def attribute_words(words: list[dict[str, Any]], turns: list[dict[str, Any]],
                    max_gap: float = 2.0) -> list[str | None]:
    """For each word: the speaker of the turn overlapping it most; if none overlaps, the nearest turn within
    ``max_gap`` seconds; else None. ``turns`` are dicts with start, end, speaker, sorted by start."""
    if not turns:
        return [None] * len(words)
    starts = [t["start"] for t in turns]
    out: list[str | None] = []
    for w in words:
        a, b = w["start"], max(w["end"], w["start"])
        i = bisect.bisect_right(starts, b)
        best, best_overlap = None, 0.0
        for t in turns[max(0, i - 8): i]:  # turns starting before the word ends; overlaps are near
            overlap = min(b, t["end"]) - max(a, t["start"])
            if overlap > best_overlap or (overlap == best_overlap == 0.0 and a == b and t["start"] <= a <= t["end"]):
                best, best_overlap = t["speaker"], overlap
        if best is None:
            near = min(turns, key=lambda t: max(t["start"] - b, a - t["end"], 0.0))
            if max(near["start"] - b, a - near["end"], 0.0) <= max_gap:
                best = near["speaker"]
        out.append(best)
    return out
