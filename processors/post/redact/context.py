"""What the words around a run of numbers say about it: the nearest context category ("social security" ->
``ssn``, "passport" -> ``id``, "call" -> ``phone``, "order" -> ``other``...), whether it is an amount ("$", "...
dollars", "... percent"), and whether a "+" or "plus" dials it internationally."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from processors.post.redact.tokens import Text, Token, is_context_word
from processors.post.redact.vocabulary import CTX_BIGRAMS, CTX_UNIGRAMS, QUANTITY_AFTER, QUANTITY_BEFORE

CONTEXT_BEFORE = 8  # words looked at before a run for "social security", "passport", "phone", ...
CONTEXT_AFTER = 4


def context_words(words: Sequence[dict[str, Any]] | None, text: str = "") -> list[str]:
    """The last context words of a segment, for the next segment's ``context`` (lower case)."""
    pieces = [w["word"] for w in words] if words else [text]
    tx = Text(pieces, None)
    out = [t.low for t in tx.toks if is_context_word(t)]
    return out[-CONTEXT_BEFORE:]


def category(words: list[str], nearest_last: bool) -> tuple[str | None, bool]:
    """(the nearest specific category, whether a weak "number" word is there) of words in reading order."""
    weak = False
    best: str | None = None
    order = range(len(words) - 1, -1, -1) if nearest_last else range(len(words))
    for k in order:
        w = words[k]
        cat = (CTX_BIGRAMS.get((words[k - 1], w)) if k > 0 else None) or CTX_UNIGRAMS.get(w)
        if cat == "weak":
            weak = True
        elif cat and best is None:
            best = cat
    return best, weak


def run_category(tx: Text, first_tok: int, last_tok: int, carried: Sequence[str]) -> tuple[str | None, bool]:
    """The category of the words before the run (topped up with ``carried``, the words said before the segment),
    else of the words after it; and whether a weak "number" word is near."""
    cat, weak = category(_words_before(tx.toks, first_tok, carried), True)
    if cat is None:
        cat_after, weak_after = category(_words_after(tx.toks, last_tok), False)
        cat, weak = cat_after, weak or weak_after
    return cat, weak


def _words_before(toks: list[Token], first_tok: int, carried: Sequence[str]) -> list[str]:
    before: list[str] = []
    i = first_tok - 1
    while i >= 0 and len(before) < CONTEXT_BEFORE:
        if is_context_word(toks[i]):
            before.append(toks[i].low)
        i -= 1
    if len(before) < CONTEXT_BEFORE:
        before.extend(reversed(carried[-(CONTEXT_BEFORE - len(before)):]))
    before.reverse()
    return before


def _words_after(toks: list[Token], last_tok: int) -> list[str]:
    after: list[str] = []
    i = last_tok + 1
    while i < len(toks) and len(after) < CONTEXT_AFTER:
        if is_context_word(toks[i]):
            after.append(toks[i].low)
        i += 1
    return after


def is_quantity(toks: list[Token], first_tok: int, last_tok: int) -> bool:
    """Is the run an amount: after "$", "#", "point", or before "dollars", "percent", "million", "%"?"""
    prev = toks[first_tok - 1] if first_tok > 0 else None
    nxt = toks[last_tok + 1] if last_tok + 1 < len(toks) else None
    if prev is not None and (prev.low in QUANTITY_BEFORE or (prev.kind == "sym" and prev.text in "$€£¥")):
        return True
    return nxt is not None and (nxt.low in QUANTITY_AFTER or nxt.text == "%")


def intl_prefix(tx: Text, first_tok: int) -> int | None:
    """The char where a "+" or spoken "plus" right before the run starts."""
    toks = tx.toks
    if first_tok == 0:
        return None
    prev = toks[first_tok - 1]
    if (prev.text == "+" or prev.low == "plus") and not tx.full[prev.end:toks[first_tok].start].strip():
        return prev.start
    return None
