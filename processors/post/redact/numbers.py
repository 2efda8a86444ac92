"""Numbers in a segment's tokens: *runs* and the *units* they say.

Digit tokens and number words that follow each other with only spaces and ``- . , ( )`` between them form a
run. A run says units: ``"4111"`` written, ``"42"`` from "forty two", ``"800"`` from "eight hundred", ``"1200"``
from "twelve hundred", ``"44"`` from "double four", ``"0"`` from "oh". A word that forms no number ("and" on its
own, "plus", a lone "double") splits the run's units into separate groups.
"""

from __future__ import annotations

from dataclasses import dataclass

from processors.post.redact.tokens import Text, Token, is_joiner, is_numberish
from processors.post.redact.vocabulary import ONES, REPEAT, TEENS, TENS, ZEROS

# Words after a lone digit word that make it one digit of several ("five five", "five double five").
_ANOTHER_NUMBER = frozenset({*ONES, *ZEROS, *TEENS, *TENS, *REPEAT})


@dataclass(slots=True)
class Unit:
    digits: str
    start: int  # chars in the joined text
    end: int
    spoken: bool
    single: int  # digits said one word per digit
    value: int
    first_tok: int
    last_tok: int
    zero_word: bool = False


def find_runs(toks: list[Token]) -> list[list[int]]:
    """The runs of numeric tokens, as token indices."""
    runs: list[list[int]] = []
    cur: list[int] = []
    for i, t in enumerate(toks):
        if is_numberish(t):
            if cur and _connected(toks, cur[-1], i):
                cur.append(i)
            else:
                if cur:
                    runs.append(cur)
                cur = [i]
        elif not is_joiner(t):
            if cur:
                runs.append(cur)
            cur = []
    if cur:
        runs.append(cur)
    return runs


def _connected(toks: list[Token], a: int, b: int) -> bool:
    """Tokens a < b are both numeric; may they belong to one run? Only joiners (at most two) between."""
    between = toks[a + 1:b]
    return len(between) <= 2 and all(is_joiner(t) for t in between)


def parse_units(tx: Text, run: list[int]) -> list[list[Unit]]:
    """The units of a run, in groups split by words that form no number."""
    return _RunParser(tx, run).groups()


class _RunParser:
    """Reads a run's tokens (by position k in the run) as units."""

    def __init__(self, tx: Text, run: list[int]) -> None:
        self.toks = tx.toks
        self.full = tx.full
        self.run = run
        self.n = len(run)

    def groups(self) -> list[list[Unit]]:
        out: list[list[Unit]] = [[]]
        k = 0
        while k < self.n:
            unit, k = self._unit_at(k)
            if unit is not None:
                out[-1].append(unit)
            elif out[-1]:
                out.append([])
        groups = [g for g in out if g]
        # "oh" is a zero only among other numbers ("Oh, I see" is not a number)
        return [g for g in groups if not all(u.zero_word for u in g)]

    # ---- the tokens of the run

    def _tok(self, k: int) -> Token:
        return self.toks[self.run[k]]

    def _tight(self, k: int) -> bool:
        """Are run[k] and run[k+1] joined by whitespace or a hyphen only?"""
        return k + 1 < self.n and self.full[self._tok(k).end:self._tok(k + 1).start].strip() in ("", "-")

    def _low(self, k: int) -> str:
        return self._tok(k).low if k < self.n and self._tok(k).kind == "word" else ""

    def _next_is(self, k: int, word: str) -> bool:
        """Is run[k] ``word``, tight after run[k-1]?"""
        return k < self.n and self._tight(k - 1) and self._low(k) == word

    # ---- units

    def _unit_at(self, k: int) -> tuple[Unit | None, int]:
        """The unit starting at run[k] and the position after it; (None, k + 1) if no number starts there."""
        t = self._tok(k)
        if t.kind == "num":
            return Unit(t.text, t.start, t.end, False, len(t.text), int(t.text[:18]), self.run[k], self.run[k]), k + 1
        if t.low in REPEAT:
            return self._repeated(k)
        if t.low in ZEROS:
            return Unit("0", t.start, t.end, True, 1, 0, self.run[k], self.run[k], zero_word=True), k + 1
        if t.low in ONES or t.low in TEENS or t.low in TENS:
            return self._said(k)
        return None, k + 1  # "and", "hundred", "plus": no number here

    def _repeated(self, k: int) -> tuple[Unit | None, int]:
        """"double four", "triple oh", "double 5": one digit said two or three times."""
        if not self._tight(k):
            return None, k + 1
        t, nxt = self._tok(k), self._tok(k + 1)
        if nxt.low in ZEROS:
            d = "0"
        elif nxt.low in ONES:
            d = str(ONES[nxt.low])
        elif nxt.kind == "num" and len(nxt.text) == 1:
            d = nxt.text
        else:
            return None, k + 1
        times = REPEAT[t.low]
        return Unit(d * times, t.start, nxt.end, True, times, int(d * times), self.run[k], self.run[k + 1]), k + 2

    def _said(self, k: int) -> tuple[Unit, int]:
        """A number in words: "seven", "forty two", "eight hundred and five", "twelve thousand three"."""
        t = self._tok(k)
        got = self._small(k)
        assert got is not None
        value, k2 = got
        single = t.low in ONES
        if value < 100 and self._next_is(k2, "hundred"):
            value, k2 = self._plus_tail(value * 100, k2 + 1)
            single = False
        if self._next_is(k2, "thousand"):
            value, k2 = self._plus_tail(value * 1000, k2 + 1, below=1000)
            single = False
        last = self.run[k2 - 1]
        digits = str(value)
        return Unit(digits, t.start, self.toks[last].end, True, len(digits) if single else 0, value, self.run[k],
                    last), k2

    def _small(self, k: int) -> tuple[int, int] | None:
        """1..99 from ones / teens / tens[-ones] at k: (value, next k)."""
        w = self._low(k)
        if w in ONES:
            return ONES[w], k + 1
        if w in TEENS:
            return TEENS[w], k + 1
        if w in TENS:
            if self._tight(k) and self._low(k + 1) in ONES:
                return TENS[w] + ONES[self._low(k + 1)], k + 2
            return TENS[w], k + 1
        return None

    def _plus_tail(self, value: int, k: int, below: int | None = None) -> tuple[int, int]:
        """``value`` plus the number said after "hundred" or "thousand" at k (if it is under ``below``)."""
        rest = self._tail(k)
        if rest is not None and (below is None or rest[0] < below):
            return value + rest[0], rest[1]
        return value, k

    def _tail(self, k: int) -> tuple[int, int] | None:
        """The number under 1000 that continues a compound at k ("... and five", "... twenty one")."""
        if k >= self.n or not self._tight(k - 1):
            return None
        w = self._low(k)
        if w == "and" and self._tight(k):
            return self._below_thousand(k + 1, True)
        if w in TENS or w in TEENS or w in ONES:
            return self._below_thousand(k, False)
        return None

    def _below_thousand(self, k: int, after_and: bool) -> tuple[int, int] | None:
        """A number under 1000 continuing a compound; a lone digit joins only if no digit follows it."""
        if not after_and and self._low(k) in ONES and self._another_number_follows(k):
            return None
        got = self._small(k)
        if got is None:
            return None
        value, k2 = got
        if value < 10 and self._next_is(k2, "hundred"):
            return self._plus_tail(value * 100, k2 + 1)
        return value, k2

    def _another_number_follows(self, k: int) -> bool:
        if k + 1 >= self.n:
            return False
        return self._tok(k + 1).kind == "num" or (self._tight(k) and self._low(k + 1) in _ANOTHER_NUMBER)
