"""Compare two transcripts of the same audio (e.g. two revisions made with different models): a word-level
diff, the word error rate between them, and each one's WER against a reference text when one is given."""

from __future__ import annotations

import difflib
import re
from typing import Any

import jiwer


def words(text: str) -> list[str]:
    """Lower-cased words without punctuation: what WER is computed on."""
    text = text.lower().replace("-", " ")
    return re.sub(r"[^\w' ]", " ", text).split()


def wer(reference: str, hypothesis: str) -> float | None:
    ref = " ".join(words(reference))
    if not ref:
        return None
    return round(float(jiwer.wer(ref, " ".join(words(hypothesis)) or "")), 4)


def diff(a: str, b: str) -> list[dict[str, Any]]:
    """Word-level edit script from ``a`` to ``b``: runs of equal, replace, delete and insert."""
    wa, wb = words(a), words(b)
    out = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=wa, b=wb, autojunk=False).get_opcodes():
        out.append({"op": op, "a": " ".join(wa[i1:i2]), "b": " ".join(wb[j1:j2])})
    return out


def compare(a: str, b: str, reference: str | None = None) -> dict[str, Any]:
    ops = diff(a, b)
    result: dict[str, Any] = {
        "wer_between": wer(a, b),
        "changed_words": sum(max(len(o["a"].split()), len(o["b"].split())) for o in ops if o["op"] != "equal"),
        "diff": ops,
    }
    if reference is not None:
        result["wer_a"] = wer(reference, a)
        result["wer_b"] = wer(reference, b)
    return result
