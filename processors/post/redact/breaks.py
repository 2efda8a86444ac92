"""What separates two units of a run, and the groupings of a candidate's digits that the breaks allow.

Each unit remembers what separates it from the next: a *hard* break (punctuation or spacing between written
digit groups, or a change between written and spoken digits), a *strong* break (comma, semicolon, sentence end)
or a *pause* in the word timings. A *view* chooses which breaks count; each view groups a candidate's digits
differently ("555, 123, 4567" is 3-3-4 by commas, "5551234567" one group).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from processors.post.redact.numbers import Unit
from processors.post.redact.tokens import Text
from processors.post.redact.validators import Shape

PAUSE_SECONDS = 0.35  # a gap between two spoken number words at least this long groups the digits


@dataclass(slots=True)
class Break:
    hard: bool
    strong: bool
    pause: bool


View = tuple[bool, bool, bool]  # (hard, strong, pause) breaks that count
# By every break, by punctuation and written spacing, by commas and pauses, by commas only.
VIEWS: tuple[View, ...] = ((True, True, True), (True, True, False), (False, True, True), (False, True, False))
FINE, SOFT = VIEWS[0], VIEWS[2]


def counts_in(b: Break, view: View) -> bool:
    hard, strong, pause = view
    return (hard and b.hard) or (strong and b.strong) or (pause and b.pause)


def break_between(tx: Text, a: Unit, b: Unit) -> Break:
    gap = tx.full[a.end:b.start]
    strong = bool(re.search(r"[,;]|\.(?:\s|$)", gap))
    hard = strong or bool(gap.strip()) or (bool(gap) and not (a.spoken and b.spoken)) or a.spoken != b.spoken
    pause = False
    if tx.times is not None:
        wa, wb = tx.word_of(a.end - 1), tx.word_of(b.start)
        pause = wb != wa and tx.times[wb][0] - tx.times[wa][1] >= PAUSE_SECONDS
    return Break(hard, strong, pause)


@dataclass(frozen=True, slots=True)
class Window:
    """Units ``lo..hi`` of a run, searched for PII; a break always falls at its edges. ``intl_at`` is the char of
    a "+" or "plus" right before the run's first unit."""

    units: list[Unit]
    breaks: list[Break]  # breaks[k]: between units k and k + 1
    lo: int
    hi: int
    intl_at: int | None

    def part(self, lo: int, hi: int, intl_at: int | None) -> Window:
        return replace(self, lo=lo, hi=hi, intl_at=intl_at)

    def breaks_after(self, k: int, view: View) -> bool:
        return k < self.lo or k >= self.hi or counts_in(self.breaks[k], view)

    def digits(self, i: int, j: int) -> str:
        return "".join(u.digits for u in self.units[i:j + 1])

    def shapes(self, i: int, j: int) -> tuple[set[Shape], bool]:
        """The groupings of units i..j in every view whose breaks fall at both ends, and whether the span is
        soft-aligned (its ends are at commas or pauses)."""
        shapes: set[Shape] = set()
        soft_aligned = False
        dictated = False  # written one digit a token ("4 1 1 1 ..."): its commas may be the only grouping
        for view in VIEWS:
            if not (self.breaks_after(i - 1, view) and self.breaks_after(j, view)):
                continue
            soft_aligned = soft_aligned or view == SOFT
            groups = self._groups(i, j, view)
            if view == FINE:
                dictated = all(g == 1 for g in groups)
            # without hard breaks, "10 15 20 25" is one group: take that only for digits dictated one by one
            if len(groups) > 1 or view[0] or dictated:
                shapes.add(groups)
        return shapes, soft_aligned

    def _groups(self, i: int, j: int, view: View) -> Shape:
        groups: list[int] = [0]
        for k in range(i, j + 1):
            groups[-1] += len(self.units[k].digits)
            if k < j and self.breaks_after(k, view):
                groups.append(0)
        return tuple(groups)
