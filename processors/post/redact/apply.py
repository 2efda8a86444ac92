"""A segment as text pieces, and a copy of the segment with PII spans of that text replaced by placeholders.

Spans sharing a word become one new word; it holds the placeholders with the text that shared its first and last
words, spans from the start of the first to the end of the last word it replaces, and takes their lowest
probability. A segment without words is redacted on its text.
"""

from __future__ import annotations

import re
from typing import Any

from processors.post.redact.tokens import Joined, Span
from processors.post.redact.vocabulary import PLACEHOLDERS

Segment = dict[str, Any]
Finding = dict[str, Any]
_Replacement = tuple[int, int, str]  # (first word, last word, new text)


def segment_pieces(seg: Segment) -> tuple[list[dict[str, Any]], list[str], list[tuple[float, float]] | None]:
    """A segment's words, the strings that make its text (its words, or its text cut at spaces) and timings."""
    words: list[dict[str, Any]] = list(seg.get("words") or [])
    if not words:
        return [], re.findall(r"\s*\S+\s*", str(seg.get("text") or "")) or [""], None
    pieces = [str(w.get("word") or "") for w in words]
    if all(isinstance(w.get("start"), int | float) and isinstance(w.get("end"), int | float) for w in words):
        return words, pieces, [(float(w["start"]), float(w["end"])) for w in words]
    return words, pieces, None


def apply_spans(seg: Segment, words: list[dict[str, Any]], pieces: list[str],
                spans: list[Span]) -> tuple[Segment, list[Finding]]:
    """A copy of ``seg`` with ``spans`` (chars of the joined ``pieces``) replaced, and the findings."""
    out = dict(seg)
    out["words"] = [dict(w) for w in words]
    if not spans:
        return out, []
    joined = Joined(pieces)
    clusters = _clusters(joined, spans)
    replaced = [_replacement(joined, cluster) for cluster in clusters]
    if words:
        new_words, findings = _replace_words(seg, words, replaced, clusters)
        out["words"] = new_words
        out["text"] = "".join(w["word"] for w in new_words).strip()
        return out, findings
    out["text"] = _replace_pieces(pieces, replaced)
    return out, [{"type": kind, "start": seg.get("start"), "end": seg.get("end"), "segment_id": seg.get("id")}
                 for cluster in clusters for _, _, kind in cluster]


def _clusters(joined: Joined, spans: list[Span]) -> list[list[Span]]:
    """Spans grouped by the words they touch: spans sharing a word are one group."""
    clusters: list[list[Span]] = []
    for sp in spans:
        if clusters and joined.word_of(sp[0]) <= joined.word_of(clusters[-1][-1][1] - 1):
            clusters[-1].append(sp)
        else:
            clusters.append([sp])
    return clusters


def _replacement(joined: Joined, cluster: list[Span]) -> _Replacement:
    """The words a cluster touches and their text with each span replaced by its placeholder."""
    wa, wb = joined.word_of(cluster[0][0]), joined.word_of(cluster[-1][1] - 1)
    parts, pos = [], joined.offsets[wa]
    for a, b, kind in cluster:
        parts.append(joined.full[pos:a])
        parts.append(PLACEHOLDERS[kind])
        pos = b
    parts.append(joined.full[pos:joined.offsets[wb] + len(joined.pieces[wb])])
    return wa, wb, "".join(parts)


def _replace_words(seg: Segment, words: list[dict[str, Any]], replaced: list[_Replacement],
                   clusters: list[list[Span]]) -> tuple[list[dict[str, Any]], list[Finding]]:
    new_words: list[dict[str, Any]] = []
    findings: list[Finding] = []
    k = 0
    for (wa, wb, text), cluster in zip(replaced, clusters, strict=True):
        new_words.extend(dict(w) for w in words[k:wa])
        word = {**words[wa], "start": words[wa]["start"], "end": words[wb]["end"], "word": text}
        if "probability" in words[wa]:
            probs = [w["probability"] for w in words[wa:wb + 1] if w.get("probability") is not None]
            word["probability"] = min(probs) if probs else None
        new_words.append(word)
        findings.extend({"type": kind, "start": word["start"], "end": word["end"], "segment_id": seg.get("id")}
                        for _, _, kind in cluster)
        k = wb + 1
    new_words.extend(dict(w) for w in words[k:])
    return new_words, findings


def _replace_pieces(pieces: list[str], replaced: list[_Replacement]) -> str:
    result, k = [], 0
    for wa, wb, text in replaced:
        result.extend(pieces[k:wa])
        result.append(text)
        k = wb + 1
    result.extend(pieces[k:])
    return "".join(result).strip()
