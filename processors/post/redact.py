"""Redact personal data (emails, phone numbers, payment cards, national ids) from transcript segments.

Speech recognisers write numbers in many ways: ``" 4111-1111-1111-1111"``, ``" 555,"`` ``" 123,"`` ``" 4567."``,
or word by word (``" four" " one" " one" " one" ...``, ``" double" " four"``, ``" oh"``, ``" forty" " two"``,
``" eight" " hundred"``), and emails as ``" john" " dot" " smith" " at" " example" " dot" " com"``. This module is a
deterministic, framework-free step (regular expressions, a small number-word parser and ``phonenumbers`` for the
plausibility of phone numbers) that finds such spans and replaces them with one placeholder word each.

How numbers are found: the segment's words are joined into one string; digit tokens and number words that follow
each other with only spaces and ``- . , ( )`` between them form a *run*. Each unit of a run (``"4111"``, ``"42"``
from "forty two", ``"800"`` from "eight hundred", ``"44"`` from "double four") remembers what separates it from
the next: a *hard* break (punctuation or whitespace between written digit groups), a *strong* break (comma,
semicolon, sentence end) or a *pause* in the word timings. Candidate spans of a run start and end at such breaks,
and each detector checks a candidate's digits and its grouping:

- card: 13-19 digits passing the Luhn check, grouped like a card (one group, fours, 4-6-5 or 4-6-4);
- id: a valid US SSN grouped 3-2-4, or 9 digits after "social security"/"SSN", or 6+ digits after an id word
  ("passport", "ID", "national insurance", "licence", "account", ...); UK national insurance numbers by pattern;
- phone: 7-15 digits that ``phonenumbers`` considers a possible number, international with ``+``/"plus"/``00``,
  else in the default region (US) grouped like a phone (one group, 3-3-4, 1-3-3-4, 3-4; outside North America
  two to four groups of 3+ digits), or any grouping after a phone word ("call", "phone", "number", ...), then
  also national numbers of a few common regions. Number words said digit by digit must dominate a spoken
  candidate unless a phone word is near, so "twenty twenty four" or counting aloud is never a phone; after
  "order", "reference", "room", ... only a number formatted like a phone is one.
- email: written (``a.b@example.co.uk``) or spoken ("a dot b at example dot co dot uk"), the domain ending in a
  known top-level domain; "at" in a sentence ("I work at example dot com") is left alone.

The longest candidate of a run wins (ties go to the kind the context names), the rest of the run is searched the
same way. Amounts (``$``, ``%``, ``1,000,000``, "... dollars", "... percent", "... million"), decimals, dates and
times, and short numbers stay untouched. Placeholders are opaque to a second pass, so redaction is idempotent.
:func:`redact_segments` also carries context words from one segment to the next of the same speaker, and joins a
number that the recogniser cut between two segments.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise
from typing import Any

import phonenumbers

KINDS: tuple[str, ...] = ("email", "phone", "card", "id")
PLACEHOLDERS: dict[str, str] = {"email": "[EMAIL]", "phone": "[PHONE]", "card": "[CARD]", "id": "[ID]"}

DEFAULT_REGION = "US"
# Regions tried for a number without a country code when a phone word is near ("call me on 020 7946 0958").
CONTEXT_REGIONS: tuple[str, ...] = ("US", "GB", "IE", "CA", "AU", "NZ", "IN", "DE", "FR", "ES", "IT", "NL")
PAUSE_SECONDS = 0.35  # a gap between two spoken number words at least this long groups the digits
CONTEXT_BEFORE = 8  # words looked at before a run for "social security", "passport", "phone", ...
CONTEXT_AFTER = 4
MAX_DIGITS = 30

# ---------------------------------------------------------------- vocabulary

_ONES = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9}
_ZEROS = frozenset({"zero", "oh", "o", "nought", "naught"})
_TEENS = {"ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
          "seventeen": 17, "eighteen": 18, "nineteen": 19}
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fourty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
         "eighty": 80, "ninety": 90}
_REPEAT = {"double": 2, "triple": 3}
_NUMBER_VOCAB = frozenset({*_ONES, *_ZEROS, *_TEENS, *_TENS, *_REPEAT, "hundred", "thousand", "and", "plus"})

_CTX_UNIGRAMS: dict[str, str] = {
    "ssn": "ssn",
    **dict.fromkeys(("passport", "id", "identification", "identity", "license", "licence", "nhs", "medicare",
                     "medicaid", "nino", "tin", "itin", "ein", "iban", "account", "routing", "aadhaar"), "id"),
    **dict.fromkeys(("card", "credit", "debit", "visa", "mastercard", "amex", "cvv", "cvc"), "card"),
    **dict.fromkeys(("phone", "telephone", "cell", "cellphone", "mobile", "call", "calling", "reach", "dial",
                     "fax", "text", "landline", "whatsapp", "extension", "contact", "ring"), "phone"),
    **dict.fromkeys(("number", "numbers", "digits"), "weak"),
    # numbers that are no one's personal data: near these a run is a phone or an id only by its own shape
    **dict.fromkeys(("order", "reference", "confirmation", "tracking", "invoice", "ticket", "booking", "flight",
                     "case", "serial", "model", "part", "zip", "postcode", "room", "page", "item", "version"),
                    "other"),
}
_CTX_BIGRAMS: dict[tuple[str, str], str] = {
    ("social", "security"): "ssn",
    ("social", "insurance"): "id", ("national", "insurance"): "id", ("insurance", "number"): "id",
    ("id", "card"): "id", ("identity", "card"): "id", ("insurance", "card"): "id", ("health", "card"): "id",
    ("medicare", "card"): "id",
}
# Words after a run that make it an amount, not an identifier.
_QUANTITY_AFTER = frozenset({
    "dollar", "dollars", "bucks", "cent", "cents", "euro", "euros", "pound", "pounds", "pence", "yen", "rupees",
    "percent", "per", "million", "millions", "billion", "billions", "trillion", "point",
})
_QUANTITY_BEFORE = frozenset({"point", "$", "€", "£", "¥", "#"})
# A spoken "X at Y dot com" whose X is one of these is a sentence ("I work at example dot com"), not an email.
_EMAIL_STOP = frozenset({
    "i", "me", "you", "he", "him", "she", "her", "it", "we", "us", "they", "them", "this", "that", "there", "here",
    "is", "are", "was", "were", "be", "been", "am", "work", "works", "worked", "working", "live", "lives", "lived",
    "look", "looking", "see", "visit", "stay", "staying", "meet", "available", "online", "find", "found", "shop",
    "buy", "bought", "sign", "signed", "log", "logged", "posted", "check", "read", "go", "went", "get", "got",
    "up", "out", "in", "on", "only", "just", "also", "still", "now", "then", "both", "all", "jobs", "job",
})

# ---------------------------------------------------------------- patterns over the segment's text

_PLACEHOLDER = r"\[(?:EMAIL|PHONE|CARD|ID)\]"
_TOKEN_RE = re.compile(rf"(?P<ph>{_PLACEHOLDER})|(?P<num>\d+)|(?P<word>[^\W\d_]+(?:['’][^\W\d_]+)*)|(?P<sym>[^\s])")

# Atoms and connectors share no character, so a failing match cannot backtrack exponentially ("1-1-1-1-...").
_ATOM = r"[a-z0-9]+"
_LABEL = r"[a-z0-9]+(?:-+[a-z0-9]+)*"
_CONNECT = r"(?:[._%+\-]+|\s+(?:dot|period|point|underscore|under\s+score|dash|hyphen)\s+)"
_AT = r"(?P<at>\s*@\s*|\s+at\s+)"
_DOT = r"(?:\.|\s+(?:dot|period|point)\s+)"
_TLD = (r"(?:com|org|net|edu|gov|mil|info|biz|io|co|uk|us|ca|au|nz|ie|de|fr|es|it|nl|be|ch|at|se|no|dk|fi|pl|pt|"
        r"eu|in|jp|cn|br|mx|ru|me|tv|ai|app|dev|ly)")
_EMAIL_RE = re.compile(
    rf"(?<![\w@.'’%+\-])(?P<local>{_ATOM}(?:{_CONNECT}{_ATOM})*){_AT}{_LABEL}(?:{_DOT}{_LABEL})*?{_DOT}{_TLD}"
    r"(?![\w@\-]|\.\w|\s+(?:dot|period|point)\s+\w|\s+(?:bubble|boom|era|crash|compan)\w*)",
    re.IGNORECASE)
# UK national insurance number, written.
_NINO_RE = re.compile(r"(?<![\w])[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]\s?\d{2}\s?\d{2}\s?\d{2}\s?[A-D](?!\w)")
# Written amounts: 1,000,000 / 3.5 / $1200 / 15% -- never identifiers.
_AMOUNT_RE = re.compile(r"(?<![\d,.])\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\d,]\d)"
                        r"|(?<![\d.])\d+\.\d+(?![\d.]*\d)"
                        r"|[$€£¥]\s?\d[\d,.]*"
                        r"|\d[\d,.]*\s?%")

_JOINERS = frozenset("-–.,()")


# ---------------------------------------------------------------- small checks

def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check of payment card numbers."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = ord(ch) - 48
        if i % 2:
            n *= 2
            if n > 9:
                n -= 9
        total += n
    return total % 10 == 0


def ssn_valid(digits: str) -> bool:
    """Nine digits that the US Social Security Administration could have issued (area, group and serial)."""
    return (len(digits) == 9 and digits.isdigit() and digits[:3] not in ("000", "666") and digits[0] != "9"
            and digits[3:5] != "00" and digits[5:] != "0000")


@lru_cache(maxsize=8192)
def phone_possible(digits: str, region: str | None) -> bool:
    """``phonenumbers``' length check for ``digits`` dialled in ``region`` (None: international, no ``+``)."""
    try:
        num = phonenumbers.parse(digits if region else "+" + digits, region)
    except phonenumbers.NumberParseException:
        return False
    return bool(phonenumbers.is_possible_number(num))


@lru_cache(maxsize=8192)
def _intl_valid(digits: str) -> bool:
    try:
        return bool(phonenumbers.is_valid_number(phonenumbers.parse("+" + digits, None)))
    except phonenumbers.NumberParseException:
        return False


def _card_shape(groups: tuple[int, ...]) -> bool:
    if len(groups) == 1 or groups in ((4, 6, 5), (4, 6, 4)):
        return True
    return all(g == 4 for g in groups[:-1]) and 1 <= groups[-1] <= 4


def _phone_shape(groups: tuple[int, ...], nanp: bool) -> bool:
    """Digit groups as phone numbers are written or said: North American 3-3-4 (after an optional 1) and 3-4;
    elsewhere two to four groups of at least three digits ("020 7946 0958", "07700 900123")."""
    if len(groups) == 1:
        return True
    if not nanp and 2 <= len(groups) <= 4 and min(groups) >= 3:
        return True
    if groups[0] == 1:
        groups = groups[1:]
    return groups in ((3, 3, 4), (3, 7), (3, 4), (10,))


# ---------------------------------------------------------------- tokens, units and runs

@dataclass(slots=True)
class _Tok:
    kind: str  # num, word, sym, opaque (placeholder, email, amount)
    text: str
    low: str
    start: int
    end: int
    glued: bool = False  # a word touching digits ("A1234567")


@dataclass(slots=True)
class _Unit:
    digits: str
    start: int  # chars in the joined text
    end: int
    spoken: bool
    single: int  # digits said one word per digit
    value: int
    first_tok: int
    last_tok: int
    zero_word: bool = False


@dataclass(slots=True)
class _Brk:
    hard: bool
    strong: bool
    pause: bool


# The ways a run's digits can be grouped: by every break, by punctuation and written spacing, by commas and
# pauses, by commas only.
_View = tuple[bool, bool, bool]
_VIEWS: tuple[_View, ...] = ((True, True, True), (True, True, False), (False, True, True),
                                               (False, True, False))


def _brk_in(b: _Brk, view: _View) -> bool:
    hard, strong, pause = view
    return (hard and b.hard) or (strong and b.strong) or (pause and b.pause)


class _Text:
    """The joined text of a segment's words, its tokens and the word each character belongs to."""

    def __init__(self, pieces: list[str], times: list[tuple[float, float]] | None) -> None:
        self.pieces = pieces
        self.times = times
        self.offsets: list[int] = []
        pos = 0
        for p in pieces:
            self.offsets.append(pos)
            pos += len(p)
        self.full = "".join(pieces)
        self.fixed: list[tuple[int, int, str]] = []  # email and NINO spans
        self.toks = self._tokens()

    def word_of(self, char: int) -> int:
        return bisect.bisect_right(self.offsets, char) - 1

    def _tokens(self) -> list[_Tok]:
        full = self.full
        opaque: list[tuple[int, int]] = []
        for m in _EMAIL_RE.finditer(full):
            local = m.group("local")
            if m.group("at").strip() != "@" and re.fullmatch(_ATOM, local, re.I) and local.lower() in _EMAIL_STOP:
                continue
            self.fixed.append((m.start(), m.end(), "email"))
        for m in _NINO_RE.finditer(full):
            if not any(a < m.end() and m.start() < b for a, b, _ in self.fixed):
                self.fixed.append((m.start(), m.end(), "id"))
        self.fixed.sort()
        opaque = [(a, b) for a, b, _ in self.fixed]
        for m in _AMOUNT_RE.finditer(full):
            if not any(a < m.end() and m.start() < b for a, b in opaque):
                opaque.append((m.start(), m.end()))
        opaque.sort()
        toks: list[_Tok] = []
        pos = 0
        for a, b in [*opaque, (len(full), len(full))]:
            for m in _TOKEN_RE.finditer(full, pos, a):
                kind = m.lastgroup or "sym"
                toks.append(_Tok("opaque" if kind == "ph" else kind, m.group(), m.group().lower(), m.start(), m.end()))
            if b > a:
                toks.append(_Tok("opaque", full[a:b], full[a:b].lower(), a, b))
            pos = b
        for i, t in enumerate(toks):
            if t.kind == "word" and ((i > 0 and toks[i - 1].kind == "num" and toks[i - 1].end == t.start)
                                     or (i + 1 < len(toks) and toks[i + 1].kind == "num"
                                         and toks[i + 1].start == t.end)):
                t.glued = True
        return toks


def _is_numberish(t: _Tok) -> bool:
    return t.kind == "num" or (t.kind == "word" and t.low in _NUMBER_VOCAB)


def _letters(t: _Tok) -> bool:
    """Spelled letters that may belong to an id ("QQ", "C"), never a keyword such as "ID"."""
    return (t.kind == "word" and t.text.isalpha() and t.text.isupper() and len(t.text) <= 2
            and t.text not in ("I", "A", "OK") and t.low not in _CTX_UNIGRAMS)


def _context_word(t: _Tok) -> bool:
    """Tokens that count towards the context window: real words, not numbers, letters, placeholders."""
    return (t.kind == "word" and not t.glued and len(t.text) > 1 and t.low not in _NUMBER_VOCAB
            and not _letters(t))


def context_words(words: Sequence[dict[str, Any]] | None, text: str = "") -> list[str]:
    """The last context words of a segment, for the next segment's ``context`` (lower case)."""
    pieces = [w["word"] for w in words] if words else [text]
    tx = _Text(pieces, None)
    out = [t.low for t in tx.toks if _context_word(t)]
    return out[-CONTEXT_BEFORE:]


def _category(words: list[str], nearest_last: bool) -> tuple[str | None, bool]:
    """(the nearest specific category, whether a weak "number" word is there) of words in reading order."""
    weak = False
    best: str | None = None
    order = range(len(words) - 1, -1, -1) if nearest_last else range(len(words))
    for k in order:
        w = words[k]
        cat = (_CTX_BIGRAMS.get((words[k - 1], w)) if k > 0 else None) or _CTX_UNIGRAMS.get(w)
        if cat == "weak":
            weak = True
        elif cat and best is None:
            best = cat
    return best, weak


class _Detector:
    def __init__(self, tx: _Text, region: str, context: Sequence[str]) -> None:
        self.tx = tx
        self.region = region
        self.context = [c.lower() for c in context]
        self.spans: list[tuple[int, int, str]] = list(tx.fixed)

    # ---- runs

    def _connected(self, a: int, b: int) -> bool:
        """Tokens a < b are both numeric; may they belong to one run? Only joiners (at most two) between."""
        between = self.tx.toks[a + 1:b]
        return len(between) <= 2 and all(t.kind == "sym" and t.text in _JOINERS for t in between)

    def _runs(self) -> list[list[int]]:
        toks = self.tx.toks
        runs: list[list[int]] = []
        cur: list[int] = []
        for i, t in enumerate(toks):
            if _is_numberish(t):
                if cur and self._connected(cur[-1], i):
                    cur.append(i)
                else:
                    if cur:
                        runs.append(cur)
                    cur = [i]
            elif t.kind == "sym" and t.text in _JOINERS:
                continue
            else:
                if cur:
                    runs.append(cur)
                cur = []
        if cur:
            runs.append(cur)
        return runs

    def _units(self, run: list[int]) -> list[list[_Unit]]:
        """Parse a run's tokens into units; words that form no number split the run."""
        toks = self.tx.toks
        full = self.tx.full
        out: list[list[_Unit]] = [[]]

        def tight(k: int) -> bool:  # run[k] and run[k+1] joined by whitespace or a hyphen only
            return k + 1 < len(run) and full[toks[run[k]].end:toks[run[k + 1]].start].strip() in ("", "-")

        def low(k: int) -> str:
            return toks[run[k]].low if k < len(run) and toks[run[k]].kind == "word" else ""

        def small(k: int) -> tuple[int, int] | None:
            """1..99 from ones / teens / tens[-ones] at k: (value, next k)."""
            w = low(k)
            if w in _ONES:
                return _ONES[w], k + 1
            if w in _TEENS:
                return _TEENS[w], k + 1
            if w in _TENS:
                if k + 1 < len(run) and tight(k) and low(k + 1) in _ONES:
                    return _TENS[w] + _ONES[low(k + 1)], k + 2
                return _TENS[w], k + 1
            return None

        def below_thousand(k: int, after_and: bool) -> tuple[int, int] | None:
            """A number under 1000 continuing a compound; a lone digit joins only if no digit follows it."""
            w = low(k)
            if w in _ONES and not after_and:
                nxt = low(k + 1) if k + 1 < len(run) and tight(k) else ""
                if nxt in _ONES or nxt in _ZEROS or nxt in _TEENS or nxt in _TENS or nxt in _REPEAT \
                        or (k + 1 < len(run) and toks[run[k + 1]].kind == "num"):
                    return None
            got = small(k)
            if got is None:
                return None
            v, k2 = got
            if k2 < len(run) and tight(k2 - 1) and low(k2) == "hundred" and v < 10:
                v, k2 = v * 100, k2 + 1
                rest = tail(k2)
                if rest:
                    v, k2 = v + rest[0], rest[1]
            return v, k2

        def tail(k: int) -> tuple[int, int] | None:
            if k >= len(run) or not tight(k - 1):
                return None
            if low(k) == "and" and k + 1 < len(run) and tight(k):
                got = below_thousand(k + 1, True)
                return got
            w = low(k)
            if w in _TENS or w in _TEENS or w in _ONES:
                return below_thousand(k, False)
            return None

        k = 0
        while k < len(run):
            t = toks[run[k]]
            first = run[k]
            unit: _Unit | None = None
            if t.kind == "num":
                unit = _Unit(t.text, t.start, t.end, False, len(t.text), int(t.text[:18]), first, first)
                k += 1
            elif t.low in _REPEAT and k + 1 < len(run) and tight(k):
                nxt = toks[run[k + 1]]
                d = "0" if nxt.low in _ZEROS else (str(_ONES[nxt.low]) if nxt.low in _ONES else
                                                   (nxt.text if nxt.kind == "num" and len(nxt.text) == 1 else ""))
                if d:
                    n = _REPEAT[t.low]
                    unit = _Unit(d * n, t.start, nxt.end, True, n, int(d * n), first, run[k + 1])
                    k += 2
            elif t.low in _ZEROS:
                unit = _Unit("0", t.start, t.end, True, 1, 0, first, first, zero_word=True)
                k += 1
            elif t.low in _ONES or t.low in _TEENS or t.low in _TENS:
                got = small(k)
                assert got is not None
                v, k2 = got
                single = t.low in _ONES
                if k2 < len(run) and tight(k2 - 1) and low(k2) == "hundred" and v < 100:
                    v, k2, single = v * 100, k2 + 1, False
                    rest = tail(k2)
                    if rest:
                        v, k2 = v + rest[0], rest[1]
                if k2 < len(run) and tight(k2 - 1) and low(k2) == "thousand":
                    v, k2, single = v * 1000, k2 + 1, False
                    rest = tail(k2)
                    if rest and rest[0] < 1000:
                        v, k2 = v + rest[0], rest[1]
                last = run[k2 - 1]
                digits = str(v)
                unit = _Unit(digits, t.start, toks[last].end, True, len(digits) if single else 0, v, first, last)
                k = k2
            if unit is None:  # "and", "hundred", "plus", a lone "double": no number here
                if out[-1]:
                    out.append([])
                k += 1
                continue
            out[-1].append(unit)
        groups = [u for u in out if u]
        # "oh" is a zero only among other numbers ("Oh, I see" is not a number)
        return [g for g in groups if not all(u.zero_word for u in g)]

    def _break(self, a: _Unit, b: _Unit) -> _Brk:
        gap = self.tx.full[a.end:b.start]
        strong = bool(re.search(r"[,;]|\.(?:\s|$)", gap))
        hard = strong or bool(gap.strip()) or (bool(gap) and not (a.spoken and b.spoken)) or a.spoken != b.spoken
        pause = False
        times = self.tx.times
        if times is not None:
            wa, wb = self.tx.word_of(a.end - 1), self.tx.word_of(b.start)
            pause = wb != wa and times[wb][0] - times[wa][1] >= PAUSE_SECONDS
        return _Brk(hard, strong, pause)

    # ---- context

    def _context(self, first_tok: int, last_tok: int) -> tuple[str | None, bool]:
        toks = self.tx.toks
        before: list[str] = []
        i = first_tok - 1
        while i >= 0 and len(before) < CONTEXT_BEFORE:
            if _context_word(toks[i]):
                before.append(toks[i].low)
            i -= 1
        if len(before) < CONTEXT_BEFORE:
            before.extend(reversed(self.context[-(CONTEXT_BEFORE - len(before)):]))
        before.reverse()
        after: list[str] = []
        i = last_tok + 1
        while i < len(toks) and len(after) < CONTEXT_AFTER:
            if _context_word(toks[i]):
                after.append(toks[i].low)
            i += 1
        cat, weak = _category(before, True)
        if cat is None:
            cat_after, weak_after = _category(after, False)
            cat, weak = cat_after, weak or weak_after
        return cat, weak

    def _quantity(self, first_tok: int, last_tok: int) -> bool:
        toks = self.tx.toks
        prev = toks[first_tok - 1] if first_tok > 0 else None
        nxt = toks[last_tok + 1] if last_tok + 1 < len(toks) else None
        if prev is not None and (prev.low in _QUANTITY_BEFORE or (prev.kind == "sym" and prev.text in "$€£¥")):
            return True
        return nxt is not None and (nxt.low in _QUANTITY_AFTER or nxt.text == "%")

    def _intl_prefix(self, first_tok: int) -> int | None:
        """The char where a "+" or spoken "plus" right before the run starts."""
        toks = self.tx.toks
        if first_tok == 0:
            return None
        prev = toks[first_tok - 1]
        if (prev.text == "+" or prev.low == "plus") and not self.tx.full[prev.end:toks[first_tok].start].strip():
            return prev.start
        return None

    # ---- detection

    def run(self) -> list[tuple[int, int, str]]:
        for run in self._runs():
            for units in self._units(run):
                first, last = units[0].first_tok, units[-1].last_tok
                if self._quantity(first, last):
                    continue
                cat, weak = self._context(first, last)
                brks = [self._break(a, b) for a, b in pairwise(units)]
                self._search(units, brks, 0, len(units) - 1, cat, weak, self._intl_prefix(first))
        self.spans.sort()
        out: list[tuple[int, int, str]] = []
        for s in self.spans:
            if not out or s[0] >= out[-1][1]:
                out.append(s)
        return out

    def _search(self, units: list[_Unit], brks: list[_Brk], lo: int, hi: int, cat: str | None, weak: bool,
                intl_at: int | None) -> None:
        if lo > hi:
            return
        best: tuple[int, int, int, int, str] | None = None  # (ndigits, priority, -i, j, kind)
        prio = {"card": 3, "id": 2, "phone": 1}
        if cat in ("id", "ssn"):
            prio["id"] = 5
        elif cat == "phone" or intl_at is not None:
            prio["phone"] = 4
        elif cat == "card":
            prio["card"] = 5

        def brk(k: int, view: _View) -> bool:  # break after unit k (edges always break)
            return k < lo or k >= hi or _brk_in(brks[k], view)

        fine = _VIEWS[0]
        longest = MAX_DIGITS if cat in ("id", "ssn") else 19  # a card has at most 19 digits, a phone 15
        for i in range(lo, hi + 1):
            if not brk(i - 1, fine):
                continue
            n = 0
            for j in range(i, hi + 1):
                n += len(units[j].digits)
                if n > longest:
                    break
                if n < 6 or not brk(j, fine):
                    continue
                kind = self._judge(units, i, j, brk, cat, weak, intl_at if i == 0 else None)
                if kind is not None:
                    cand = (n, prio[kind], -i, j, kind)
                    if best is None or cand[:3] > best[:3]:
                        best = cand
        if best is None:
            return
        _, _, neg_i, j, kind = best
        i = -neg_i
        start, end = units[i].start, units[j].end
        full = self.tx.full
        if kind == "phone":
            if i == 0 and intl_at is not None:
                start = intl_at
            elif start > 0 and full[start - 1] == "(":
                start -= 1
        elif kind == "id":
            start, end = self._absorb_letters(units[i].first_tok, units[j].last_tok, start, end,
                                              cat in ("id", "ssn"))
        self.spans.append((start, end, kind))
        self._search(units, brks, lo, i - 1, cat, weak, intl_at)
        self._search(units, brks, j + 1, hi, cat, weak, None)

    def _absorb_letters(self, first_tok: int, last_tok: int, start: int, end: int, spaced: bool) -> tuple[int, int]:
        """An id's letters: glued ones ("A1234567"), with an id word near also spoken ones ("Q Q 1 2 ... C")."""
        toks = self.tx.toks

        def letters(t: _Tok) -> bool:
            if t.kind == "word" and t.glued:
                return t.text.isalpha() and len(t.text) <= 3
            return spaced and _letters(t)

        k, taken = first_tok - 1, 0
        while k >= 0 and taken < 2 and letters(toks[k]) and not self.tx.full[toks[k].end:start].strip():
            start, k, taken = toks[k].start, k - 1, taken + 1
        k, taken = last_tok + 1, 0
        while k < len(toks) and taken < 2 and letters(toks[k]) and not self.tx.full[end:toks[k].start].strip():
            end, k, taken = toks[k].end, k + 1, taken + 1
        return start, end

    def _judge(self, units: list[_Unit], i: int, j: int, brk: Callable[[int, _View], bool], cat: str | None, weak: bool,
               intl_at: int | None) -> str | None:
        digits = "".join(u.digits for u in units[i:j + 1])
        n = len(digits)
        shapes: set[tuple[int, ...]] = set()
        soft_aligned = False
        dictated = False  # written one digit a token ("4 1 1 1 ..."): its commas may be the only grouping
        for view in _VIEWS:
            if not (brk(i - 1, view) and brk(j, view)):
                continue
            if view == _VIEWS[2]:
                soft_aligned = True
            groups: list[int] = [0]
            for k in range(i, j + 1):
                groups[-1] += len(units[k].digits)
                if k < j and brk(k, view):
                    groups.append(0)
            if view == _VIEWS[0]:
                dictated = all(g == 1 for g in groups)
            # without hard breaks, "10 15 20 25" is one group: take that only for digits dictated one by one
            if len(groups) > 1 or view[0] or dictated:
                shapes.add(tuple(groups))
        id_ctx = cat in ("id", "ssn")
        if 13 <= n <= 19 and luhn_valid(digits) and any(_card_shape(s) for s in shapes) and not id_ctx:
            return "card"
        if n == 9 and ssn_valid(digits) and ((3, 2, 4) in shapes or (cat == "ssn" and soft_aligned)):
            return "id"
        if id_ctx and soft_aligned:
            return "id"
        if 13 <= n <= 19 and luhn_valid(digits) and any(_card_shape(s) for s in shapes):
            return "card"
        if cat == "other":  # "order number 1234567890": only a number formatted as a phone is one
            shapes = {s for s in shapes if len(s) > 1}
        if self._phone(units, i, j, digits, shapes, soft_aligned, cat == "phone" or (weak and cat is None),
                       intl_at):
            return "phone"
        return None

    def _phone(self, units: list[_Unit], i: int, j: int, digits: str, shapes: set[tuple[int, ...]],
               soft_aligned: bool, phone_ctx: bool, intl_at: int | None) -> bool:
        if intl_at is not None or (digits.startswith("00") and len(digits) > 9):
            d = digits[2:] if intl_at is None else digits
            return 7 <= len(d) <= 15 and phone_possible(d, None)
        if not 7 <= len(digits) <= 15:
            return False
        cand = units[i:j + 1]
        if phone_ctx:
            return soft_aligned and (phone_possible(digits, self.region) or _intl_valid(digits)
                                     or any(phone_possible(digits, r) for r in CONTEXT_REGIONS))
        if any(u.spoken for u in cand):
            said_singly = sum(u.single if u.spoken else len(u.digits) for u in cand)
            if said_singly < 0.6 * len(digits):
                return False
            values = [u.value for u in cand]
            if len(values) >= 5 and all(u.spoken for u in cand) and (
                    all(b - a == 1 for a, b in pairwise(values))
                    or all(a - b == 1 for a, b in pairwise(values))):
                return False  # counting aloud
        if len(digits) == 7 and (3, 4) not in shapes:
            return False
        if len(digits) < 10 and not soft_aligned:  # "555 1234" out of "020 7946 0958" would leave a part
            return False
        if digits.endswith("000000") and not any(len(s) > 1 for s in shapes):  # 2500000000 is an amount
            return False
        nanp = phonenumbers.country_code_for_region(self.region) == 1
        return any(_phone_shape(s, nanp) for s in shapes) and phone_possible(digits, self.region)


# ---------------------------------------------------------------- public API

def _check_kinds(kinds: Collection[str] | None) -> frozenset[str]:
    if kinds is None:
        return frozenset(KINDS)
    chosen = frozenset((kinds,) if isinstance(kinds, str) else kinds)
    unknown = chosen - set(KINDS)
    if unknown:
        raise ValueError(f"unknown PII kinds {sorted(unknown)}; known: {list(KINDS)}")
    return chosen


def find_pii(text: str, kinds: Collection[str] | None = None, *, region: str = DEFAULT_REGION,
             context: Sequence[str] = ()) -> list[tuple[int, int, str]]:
    """The PII spans of a plain string as (start char, end char, kind), in order."""
    chosen = _check_kinds(kinds)
    spans = _Detector(_Text([text], None), region, context).run()
    return [s for s in spans if s[2] in chosen]


def redact_text(text: str, kinds: Collection[str] | None = None, *, region: str = DEFAULT_REGION) -> str:
    """``text`` with each PII span replaced by its placeholder."""
    out, pos = [], 0
    for a, b, kind in find_pii(text, kinds, region=region):
        out.append(text[pos:a])
        out.append(PLACEHOLDERS[kind])
        pos = b
    out.append(text[pos:])
    return "".join(out)


Span = tuple[int, int, str]


def _pieces(seg: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str], list[tuple[float, float]] | None]:
    """A segment's words, the strings that make its text (its words, or its text cut at spaces) and timings."""
    words: list[dict[str, Any]] = list(seg.get("words") or [])
    if not words:
        return [], re.findall(r"\s*\S+\s*", str(seg.get("text") or "")) or [""], None
    pieces = [str(w.get("word") or "") for w in words]
    if all(isinstance(w.get("start"), int | float) and isinstance(w.get("end"), int | float) for w in words):
        return words, pieces, [(float(w["start"]), float(w["end"])) for w in words]
    return words, pieces, None


def _apply(seg: dict[str, Any], words: list[dict[str, Any]], pieces: list[str],
           spans: list[Span]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A copy of ``seg`` with ``spans`` (chars of the joined ``pieces``) replaced, and the findings."""
    out = dict(seg)
    out["words"] = [dict(w) for w in words]
    if not spans:
        return out, []
    offsets, pos = [], 0
    for piece in pieces:
        offsets.append(pos)
        pos += len(piece)
    full = "".join(pieces)

    def word_of(char: int) -> int:
        return bisect.bisect_right(offsets, char) - 1

    # spans sharing a word become one new word; each new word covers words [wa, wb]
    clusters: list[list[Span]] = []
    for sp in spans:
        if clusters and word_of(sp[0]) <= word_of(clusters[-1][-1][1] - 1):
            clusters[-1].append(sp)
        else:
            clusters.append([sp])
    replaced: list[tuple[int, int, str]] = []  # (first word, last word, new text)
    for cl in clusters:
        wa, wb = word_of(cl[0][0]), word_of(cl[-1][1] - 1)
        parts, pos = [], offsets[wa]
        for a, b, kind in cl:
            parts.append(full[pos:a])
            parts.append(PLACEHOLDERS[kind])
            pos = b
        parts.append(full[pos:offsets[wb] + len(pieces[wb])])
        replaced.append((wa, wb, "".join(parts)))
    findings: list[dict[str, Any]] = []
    if words:
        new_words: list[dict[str, Any]] = []
        k = 0
        for (wa, wb, text), cl in zip(replaced, clusters, strict=True):
            new_words.extend(dict(w) for w in words[k:wa])
            word = {**words[wa], "start": words[wa]["start"], "end": words[wb]["end"], "word": text}
            if "probability" in words[wa]:
                probs = [w["probability"] for w in words[wa:wb + 1] if w.get("probability") is not None]
                word["probability"] = min(probs) if probs else None
            new_words.append(word)
            findings.extend({"type": kind, "start": word["start"], "end": word["end"], "segment_id": seg.get("id")}
                            for _, _, kind in cl)
            k = wb + 1
        new_words.extend(dict(w) for w in words[k:])
        out["words"] = new_words
        out["text"] = "".join(w["word"] for w in new_words).strip()
    else:
        result, k = [], 0
        for wa, wb, text in replaced:
            result.extend(pieces[k:wa])
            result.append(text)
            k = wb + 1
        result.extend(pieces[k:])
        out["text"] = "".join(result).strip()
        findings = [{"type": kind, "start": seg.get("start"), "end": seg.get("end"), "segment_id": seg.get("id")}
                    for cl in clusters for _, _, kind in cl]
    return out, findings


def redact_segment(seg: dict[str, Any], kinds: Collection[str] | None = None, *, region: str = DEFAULT_REGION,
                   context: Sequence[str] = ()) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A redacted copy of a transcript segment and what was found in it.

    Each PII span becomes one word: the placeholder (``[EMAIL]``, ``[PHONE]``, ``[CARD]``, ``[ID]``) with the text
    that shared its first and last words (leading space, punctuation such as ``","`` or ``"."``), from the start
    of the first to the end of the last word it replaces, with their lowest probability; ``text`` is rebuilt from
    the words. A segment without words is redacted on its text. ``kinds`` chooses which kinds are redacted
    (default all); ``region`` is the default phone region; ``context`` holds words said just before the segment
    (see :func:`context_words`). Findings are ``{"type", "start", "end", "segment_id"}`` and never hold the value.
    The input is not modified, and redacting an output again changes nothing.
    """
    chosen = _check_kinds(kinds)
    words, pieces, times = _pieces(seg)
    spans = [sp for sp in _Detector(_Text(pieces, times), region, context).run() if sp[2] in chosen]
    return _apply(seg, words, pieces, spans)


CHAIN_GAP_SECONDS = 1.5  # a number going on in the next segment of the same party, at most this much later


def _same_party(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a.get("speaker") == b.get("speaker") and a.get("channel") == b.get("channel")


def _edge_numberish(seg: dict[str, Any], last: bool) -> bool:
    toks = [t for t in _Text(_pieces(seg)[1], None).toks if t.kind != "sym"]
    return bool(toks) and _is_numberish(toks[-1 if last else 0])


def _continues(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Does a number said at the end of ``a`` go on at the start of ``b`` (a recogniser's segment boundary)?"""
    if not _same_party(a, b):
        return False
    a_end, b_start = a.get("end"), b.get("start")
    if isinstance(a_end, int | float) and isinstance(b_start, int | float) and b_start - a_end > CHAIN_GAP_SECONDS:
        return False
    return _edge_numberish(a, True) and _edge_numberish(b, False)


def _redact_chain(chain: list[dict[str, Any]], chosen: frozenset[str], region: str,
                  context: Sequence[str]) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Segments detected as one text (a number may run across them), each redacted on its own part."""
    parts = [_pieces(seg) for seg in chain]
    pieces = [p for _, ps, _ in parts for p in ps]
    all_times = [t for _, _, ts in parts if ts is not None for t in ts]
    times = all_times if len(all_times) == len(pieces) else None
    spans = [sp for sp in _Detector(_Text(pieces, times), region, context).run() if sp[2] in chosen]
    out = []
    base = 0
    for seg, (words, ps, _) in zip(chain, parts, strict=True):
        text = "".join(ps)
        lo, hi = base, base + len(text)
        own: list[Span] = []
        for a, b, kind in spans:
            a, b = max(a, lo) - base, min(b, hi) - base
            while a < b and text[a].isspace():
                a += 1
            while b > a and text[b - 1].isspace():
                b -= 1
            if a < b:
                own.append((a, b, kind))
        out.append(_apply(seg, words, ps, own))
        base = hi
    return out


def redact_segments(segs: Iterable[dict[str, Any]], kinds: Collection[str] | None = None, *,
                    region: str = DEFAULT_REGION) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Redact segments in time order. Words at the end of a segment are context for the next one of the same
    speaker and channel ("my social security number is" | "one two three ..."), and a number that a recogniser
    cut between two such segments (at most ``CHAIN_GAP_SECONDS`` apart) is detected as one; each segment then gets
    its own placeholder and finding. Returns (segments, findings)."""
    chosen = _check_kinds(kinds)
    segs = list(segs)
    out: list[dict[str, Any]] = []
    findings: list[dict[str, Any]] = []
    ctx: list[str] = []
    i = 0
    while i < len(segs):
        if i > 0 and not _same_party(segs[i - 1], segs[i]):
            ctx = []
        j = i
        while j + 1 < len(segs) and _continues(segs[j], segs[j + 1]):
            j += 1
        for red, found in _redact_chain(segs[i:j + 1], chosen, region, ctx):
            out.append(red)
            findings.extend(found)
        for seg in segs[i:j + 1]:
            ctx = [*ctx, *context_words(seg.get("words"), str(seg.get("text") or ""))][-CONTEXT_BEFORE:]
        i = j + 1
    return out, findings
