"""The parts of redaction under the detector: number words read as units, and the digit groupings that
punctuation, commas and pauses give a run."""

from __future__ import annotations

from itertools import pairwise

import pytest

from processors.post.redact.breaks import Window, break_between
from processors.post.redact.numbers import find_runs, parse_units
from processors.post.redact.tokens import Text


def _units(text: str) -> list[list[str]]:
    tx = Text([text], None)
    return [[u.digits for u in group] for run in find_runs(tx.toks) for group in parse_units(tx, run)]


@pytest.mark.parametrize(("text", "units"), [
    ("forty two", [["42"]]),
    ("twenty-one", [["21"]]),
    ("eight hundred and five", [["805"]]),
    ("twelve hundred", [["1200"]]),
    ("forty two hundred", [["4200"]]),
    ("ninety nine hundred and ninety nine", [["9999"]]),
    ("two thousand twenty four", [["2024"]]),
    ("one hundred and twenty three thousand", [["123000"]]),
    ("five hundred fifty five thousand five hundred fifty five", [["555555"]]),
    ("nineteen eighty five", [["19", "85"]]),
    ("double four", [["44"]]),
    ("triple 5", [["555"]]),
    ("oh seven seven double oh nine", [["0", "7", "7", "00", "9"]]),
    ("five five five", [["5", "5", "5"]]),  # a lone digit before another digit stays a digit
    ("five, five", [["5", "5"]]),
    ("555-123-4567", [["555", "123", "4567"]]),
    ("call 555 1234 now or 4111", [["555", "1234"], ["4111"]]),  # a word that is no number ends the run
    ("one and two", [["1"], ["2"]]),  # "and" that continues no compound splits the units
    ("seven plus two", [["7"], ["2"]]),
    ("2 thousand", [["2"]]),  # scale words follow number words only
    ("double check", []),
    ("Oh, I see", []),  # "oh" is a zero only among other numbers
])
def test_number_words_become_units(text: str, units: list[list[str]]) -> None:
    assert _units(text) == units


def _window(pieces: list[str], times: list[tuple[float, float]] | None = None) -> Window:
    tx = Text(pieces, times)
    (run,) = find_runs(tx.toks)
    (units,) = parse_units(tx, run)
    return Window(units, [break_between(tx, a, b) for a, b in pairwise(units)], 0, len(units) - 1, None)


@pytest.mark.parametrize(("text", "shapes"), [
    ("555 123 4567", {(3, 3, 4)}),
    ("123-45-6789", {(3, 2, 4)}),
    ("5551234567", {(10,)}),
    ("five five five, one two three, four five six seven", {(3, 3, 4)}),  # spoken: only commas group
    ("4 1 1 1", {(1, 1, 1, 1), (4,)}),  # dictated digit by digit: also one group
    ("10 15 20 25", {(2, 2, 2, 2)}),  # written groups are never joined into one
])
def test_groupings_by_punctuation_and_spacing(text: str, shapes: set[tuple[int, ...]]) -> None:
    window = _window([text])
    assert window.shapes(0, window.hi) == (shapes, True)


def test_pauses_group_spoken_digits() -> None:
    words = [" one", " two", " three", " four", " five", " six", " seven", " eight", " nine"]
    silence = [0.0, 0.0, 0.0, 0.6, 0.6, 1.2, 1.2, 1.2, 1.2]  # before "four" and before "six"
    times = [(0.35 * i + s, 0.35 * i + s + 0.3) for i, s in enumerate(silence)]
    window = _window(words, times)
    assert [b.pause for b in window.breaks] == [False, False, True, False, True, False, False, False]
    assert window.shapes(0, window.hi) == ({(9,), (3, 2, 4)}, True)
    assert _window(words).shapes(0, window.hi) == ({(9,)}, True)  # no timings, no pauses
    # a candidate inside the run, between two pauses: "four five"
    assert window.shapes(3, 4) == ({(2,)}, True)
