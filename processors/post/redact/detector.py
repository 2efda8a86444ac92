"""Find the personal data in a segment's text: written emails and NINOs by pattern (``tokens``), and in every
run of numbers the candidates that ``classify`` accepts.

Candidates of a run start and end at breaks. The longest accepted candidate wins (ties go to the kind the
context names, then to the earlier one), and the rest of the run on either side is searched the same way.
Amounts ("$", "... dollars", "... percent") are skipped whole.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import pairwise

from processors.post.redact.breaks import FINE, Window, break_between
from processors.post.redact.classify import Clues, classify
from processors.post.redact.context import intl_prefix, is_quantity, run_category
from processors.post.redact.numbers import Unit, find_runs, parse_units
from processors.post.redact.tokens import Span, Text, Token, spelled_letters

MAX_DIGITS = 30  # an id has at most this many digits
MAX_CARD_OR_PHONE_DIGITS = 19  # a card has at most 19 digits, a phone 15
MIN_DIGITS = 6


class Detector:
    """The PII spans of one text. ``context`` holds words said just before it (``context.context_words``)."""

    def __init__(self, tx: Text, region: str, context: Sequence[str]) -> None:
        self.tx = tx
        self.region = region
        self.context = [c.lower() for c in context]
        self.spans: list[Span] = list(tx.fixed)

    def run(self) -> list[Span]:
        """Spans in order; of overlapping ones the first is kept."""
        for run in find_runs(self.tx.toks):
            for units in parse_units(self.tx, run):
                self._detect(units)
        out: list[Span] = []
        for s in sorted(self.spans):
            if not out or s[0] >= out[-1][1]:
                out.append(s)
        return out

    def _detect(self, units: list[Unit]) -> None:
        first, last = units[0].first_tok, units[-1].last_tok
        if is_quantity(self.tx.toks, first, last):
            return
        cat, weak = run_category(self.tx, first, last, self.context)
        breaks = [break_between(self.tx, a, b) for a, b in pairwise(units)]
        window = Window(units, breaks, 0, len(units) - 1, intl_prefix(self.tx, first))
        self._search(window, Clues(cat, weak, self.region))

    def _search(self, window: Window, clues: Clues) -> None:
        if window.lo > window.hi:
            return
        best = _best(window, clues)
        if best is None:
            return
        i, j, kind = best
        self.spans.append(self._span(window, i, j, kind, clues))
        self._search(window.part(window.lo, i - 1, window.intl_at), clues)
        self._search(window.part(j + 1, window.hi, None), clues)

    def _span(self, window: Window, i: int, j: int, kind: str, clues: Clues) -> Span:
        """The chars of units i..j with what belongs to them: a "+" or "(" before a phone, an id's letters."""
        first, last = window.units[i], window.units[j]
        start, end = first.start, last.end
        if kind == "phone":
            if i == 0 and window.intl_at is not None:
                start = window.intl_at
            elif start > 0 and self.tx.full[start - 1] == "(":
                start -= 1
        elif kind == "id":
            start, end = self._absorb_letters(first.first_tok, last.last_tok, start, end, clues.id_context)
        return start, end, kind

    def _absorb_letters(self, first_tok: int, last_tok: int, start: int, end: int, spaced: bool) -> tuple[int, int]:
        """An id's letters: glued ones ("A1234567"), with an id word near also spoken ones ("Q Q 1 2 ... C")."""
        toks, full = self.tx.toks, self.tx.full

        def letters(t: Token) -> bool:
            if t.kind == "word" and t.glued:
                return t.text.isalpha() and len(t.text) <= 3
            return spaced and spelled_letters(t)

        k, taken = first_tok - 1, 0
        while k >= 0 and taken < 2 and letters(toks[k]) and not full[toks[k].end:start].strip():
            start, k, taken = toks[k].start, k - 1, taken + 1
        k, taken = last_tok + 1, 0
        while k < len(toks) and taken < 2 and letters(toks[k]) and not full[end:toks[k].start].strip():
            end, k, taken = toks[k].end, k + 1, taken + 1
        return start, end


def _best(window: Window, clues: Clues) -> tuple[int, int, str] | None:
    """(i, j, kind) of the winning candidate of the window: most digits, then the kind the context names, then
    the earliest start."""
    prio = _priorities(clues, window.intl_at)
    best: tuple[int, int, int, int, str] | None = None  # (ndigits, priority, -i, j, kind)
    longest = MAX_DIGITS if clues.id_context else MAX_CARD_OR_PHONE_DIGITS
    for i, j, n in _candidates(window, longest):
        kind = classify(window, i, j, clues, window.intl_at if i == 0 else None)
        if kind is None:
            continue
        cand = (n, prio[kind], -i, j, kind)
        if best is None or cand[:3] > best[:3]:
            best = cand
    return None if best is None else (-best[2], best[3], best[4])


def _priorities(clues: Clues, intl_at: int | None) -> dict[str, int]:
    prio = {"card": 3, "id": 2, "phone": 1}
    if clues.id_context:
        prio["id"] = 5
    elif clues.category == "phone" or intl_at is not None:
        prio["phone"] = 4
    elif clues.category == "card":
        prio["card"] = 5
    return prio


def _candidates(window: Window, longest: int) -> Iterator[tuple[int, int, int]]:
    """(first unit, last unit, digits) of the spans of the window that start and end at a break and hold
    ``MIN_DIGITS`` to ``longest`` digits."""
    for i in range(window.lo, window.hi + 1):
        if not window.breaks_after(i - 1, FINE):
            continue
        n = 0
        for j in range(i, window.hi + 1):
            n += len(window.units[j].digits)
            if n > longest:
                break
            if n >= MIN_DIGITS and window.breaks_after(j, FINE):
                yield i, j, n
