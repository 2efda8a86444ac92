"""The joined text of a segment's words and its tokens.

Emails and UK national insurance numbers written out, and written amounts (``1,000,000``, ``3.5``, ``$1200``,
``15%``), are found first by pattern; each becomes one opaque token, so the number parser never reads the digits
inside them. Placeholders of an earlier pass are opaque too, which makes redaction idempotent.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise

from processors.post.redact.vocabulary import CTX_UNIGRAMS, EMAIL_STOP, NUMBER_VOCAB, PLACEHOLDERS

Span = tuple[int, int, str]  # (start char, end char, kind) in a joined text

_PLACEHOLDER = "(?:" + "|".join(re.escape(p) for p in PLACEHOLDERS.values()) + ")"
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

JOINERS = frozenset("-–.,()")  # symbols that may stand between the numbers of one run


@dataclass(slots=True)
class Token:
    kind: str  # num, word, sym, opaque (placeholder, email, amount)
    text: str
    low: str
    start: int
    end: int
    glued: bool = False  # a word touching digits ("A1234567")


class Joined:
    """Strings (a segment's words) joined into one text, and the string each character belongs to."""

    def __init__(self, pieces: list[str]) -> None:
        self.pieces = pieces
        self.offsets: list[int] = []
        pos = 0
        for p in pieces:
            self.offsets.append(pos)
            pos += len(p)
        self.full = "".join(pieces)

    def word_of(self, char: int) -> int:
        return bisect.bisect_right(self.offsets, char) - 1


class Text(Joined):
    """A segment's joined text with its word timings, its written emails and NINOs (``fixed``) and its tokens."""

    def __init__(self, pieces: list[str], times: list[tuple[float, float]] | None) -> None:
        super().__init__(pieces)
        self.times = times
        self.fixed = fixed_spans(self.full)
        self.toks = tokenize(self.full, self.fixed)


def fixed_spans(full: str) -> list[Span]:
    """Emails and UK national insurance numbers written in ``full``, in order; "at" in a sentence is no email."""
    fixed = [(m.start(), m.end(), "email") for m in _EMAIL_RE.finditer(full) if not _sentence_at(m)]
    for m in _NINO_RE.finditer(full):
        if not _overlaps(m.start(), m.end(), ((a, b) for a, b, _ in fixed)):
            fixed.append((m.start(), m.end(), "id"))
    fixed.sort()
    return fixed


def _sentence_at(m: re.Match[str]) -> bool:
    """A spoken "X at Y dot com" whose X is a word such as "work" or "I" ("I work at example dot com")."""
    local = m.group("local")
    return m.group("at").strip() != "@" and bool(re.fullmatch(_ATOM, local, re.I)) and local.lower() in EMAIL_STOP


def _overlaps(start: int, end: int, spans: Iterable[tuple[int, int]]) -> bool:
    return any(a < end and start < b for a, b in spans)


def _opaque_spans(full: str, fixed: list[Span]) -> list[tuple[int, int]]:
    """The fixed spans and the written amounts that do not overlap them, in order."""
    opaque = [(a, b) for a, b, _ in fixed]
    for m in _AMOUNT_RE.finditer(full):
        if not _overlaps(m.start(), m.end(), opaque):
            opaque.append((m.start(), m.end()))
    opaque.sort()
    return opaque


def tokenize(full: str, fixed: list[Span]) -> list[Token]:
    """Placeholders, digit strings, words and single symbols of ``full``; each opaque span is one token."""
    toks: list[Token] = []
    pos = 0
    for a, b in [*_opaque_spans(full, fixed), (len(full), len(full))]:
        for m in _TOKEN_RE.finditer(full, pos, a):
            kind = m.lastgroup or "sym"
            toks.append(Token("opaque" if kind == "ph" else kind, m.group(), m.group().lower(), m.start(), m.end()))
        if b > a:
            toks.append(Token("opaque", full[a:b], full[a:b].lower(), a, b))
        pos = b
    for prev, tok in pairwise(toks):
        if prev.end == tok.start and prev.kind == "num" and tok.kind == "word":
            tok.glued = True
        elif prev.end == tok.start and prev.kind == "word" and tok.kind == "num":
            prev.glued = True
    return toks


def is_numberish(t: Token) -> bool:
    """Digits or a number word: what a run of numbers is made of."""
    return t.kind == "num" or (t.kind == "word" and t.low in NUMBER_VOCAB)


def is_joiner(t: Token) -> bool:
    return t.kind == "sym" and t.text in JOINERS


def spelled_letters(t: Token) -> bool:
    """Spelled letters that may belong to an id ("QQ", "C"), never a keyword such as "ID"."""
    return (t.kind == "word" and t.text.isalpha() and t.text.isupper() and len(t.text) <= 2
            and t.text not in ("I", "A", "OK") and t.low not in CTX_UNIGRAMS)


def is_context_word(t: Token) -> bool:
    """Tokens that count towards the context window: real words, not numbers, letters, placeholders."""
    return (t.kind == "word" and not t.glued and len(t.text) > 1 and t.low not in NUMBER_VOCAB
            and not spelled_letters(t))
