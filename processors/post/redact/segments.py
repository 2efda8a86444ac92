"""Redaction of plain text, of one transcript segment, and of a transcript's segments in time order (context
words carried from one segment to the next of the same party, a number cut between two segments joined)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

from processors.post.redact.apply import Finding, Segment, apply_spans, segment_pieces
from processors.post.redact.context import CONTEXT_BEFORE, context_words
from processors.post.redact.detector import Detector
from processors.post.redact.tokens import Span, Text, is_numberish
from processors.post.redact.vocabulary import KINDS, PLACEHOLDERS

DEFAULT_REGION = "US"
CHAIN_GAP_SECONDS = 1.5  # a number going on in the next segment of the same party, at most this much later


def check_kinds(kinds: Collection[str] | None) -> frozenset[str]:
    """The chosen kinds (all when None); an unknown kind is a ``ValueError``."""
    if kinds is None:
        return frozenset(KINDS)
    chosen = frozenset((kinds,) if isinstance(kinds, str) else kinds)
    unknown = chosen - set(KINDS)
    if unknown:
        raise ValueError(f"unknown PII kinds {sorted(unknown)}; known: {list(KINDS)}")
    return chosen


def _detect(pieces: list[str], times: list[tuple[float, float]] | None, chosen: frozenset[str], region: str,
            context: Sequence[str]) -> list[Span]:
    return [sp for sp in Detector(Text(pieces, times), region, context).run() if sp[2] in chosen]


def find_pii(text: str, kinds: Collection[str] | None = None, *, region: str = DEFAULT_REGION,
             context: Sequence[str] = ()) -> list[Span]:
    """The PII spans of a plain string as (start char, end char, kind), in order."""
    return _detect([text], None, check_kinds(kinds), region, context)


def redact_text(text: str, kinds: Collection[str] | None = None, *, region: str = DEFAULT_REGION) -> str:
    """``text`` with each PII span replaced by its placeholder."""
    out, pos = [], 0
    for a, b, kind in find_pii(text, kinds, region=region):
        out.append(text[pos:a])
        out.append(PLACEHOLDERS[kind])
        pos = b
    out.append(text[pos:])
    return "".join(out)


def redact_segment(seg: Segment, kinds: Collection[str] | None = None, *, region: str = DEFAULT_REGION,
                   context: Sequence[str] = ()) -> tuple[Segment, list[Finding]]:
    """A redacted copy of a transcript segment and what was found in it.

    Each PII span becomes one word: the placeholder (``[EMAIL]``, ``[PHONE]``, ``[CARD]``, ``[ID]``) with the text
    that shared its first and last words (leading space, punctuation such as ``","`` or ``"."``), from the start
    of the first to the end of the last word it replaces, with their lowest probability; ``text`` is rebuilt from
    the words. A segment without words is redacted on its text. ``kinds`` chooses which kinds are redacted
    (default all); ``region`` is the default phone region; ``context`` holds words said just before the segment
    (see :func:`context_words`). Findings are ``{"type", "start", "end", "segment_id"}`` and never hold the value.
    The input is not modified, and redacting an output again changes nothing.
    """
    chosen = check_kinds(kinds)
    words, pieces, times = segment_pieces(seg)
    return apply_spans(seg, words, pieces, _detect(pieces, times, chosen, region, context))


def redact_segments(segs: Iterable[Segment], kinds: Collection[str] | None = None, *,
                    region: str = DEFAULT_REGION) -> tuple[list[Segment], list[Finding]]:
    """Redact segments in time order. Words at the end of a segment are context for the next one of the same
    speaker and channel ("my social security number is" | "one two three ..."), and a number that a recogniser
    cut between two such segments (at most ``CHAIN_GAP_SECONDS`` apart) is detected as one; each segment then gets
    its own placeholder and finding. Returns (segments, findings)."""
    chosen = check_kinds(kinds)
    segs = list(segs)
    out: list[Segment] = []
    findings: list[Finding] = []
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


def _same_party(a: Segment, b: Segment) -> bool:
    return a.get("speaker") == b.get("speaker") and a.get("channel") == b.get("channel")


def _edge_numberish(seg: Segment, last: bool) -> bool:
    toks = [t for t in Text(segment_pieces(seg)[1], None).toks if t.kind != "sym"]
    return bool(toks) and is_numberish(toks[-1 if last else 0])


def _continues(a: Segment, b: Segment) -> bool:
    """Does a number said at the end of ``a`` go on at the start of ``b`` (a recogniser's segment boundary)?"""
    if not _same_party(a, b):
        return False
    a_end, b_start = a.get("end"), b.get("start")
    if isinstance(a_end, int | float) and isinstance(b_start, int | float) and b_start - a_end > CHAIN_GAP_SECONDS:
        return False
    return _edge_numberish(a, True) and _edge_numberish(b, False)


def _redact_chain(chain: list[Segment], chosen: frozenset[str], region: str,
                  context: Sequence[str]) -> list[tuple[Segment, list[Finding]]]:
    """Segments detected as one text (a number may run across them), each redacted on its own part."""
    parts = [segment_pieces(seg) for seg in chain]
    pieces = [p for _, ps, _ in parts for p in ps]
    all_times = [t for _, _, ts in parts if ts is not None for t in ts]
    times = all_times if len(all_times) == len(pieces) else None
    spans = _detect(pieces, times, chosen, region, context)
    out = []
    base = 0
    for seg, (words, ps, _) in zip(chain, parts, strict=True):
        text = "".join(ps)
        out.append(apply_spans(seg, words, ps, _own_spans(spans, text, base)))
        base += len(text)
    return out


def _own_spans(spans: list[Span], text: str, base: int) -> list[Span]:
    """The parts of ``spans`` (chars of the chain's text) inside one segment's ``text`` starting at ``base``,
    relative to it and without surrounding whitespace."""
    own: list[Span] = []
    for a, b, kind in spans:
        a, b = max(a, base) - base, min(b, base + len(text)) - base
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if a < b:
            own.append((a, b, kind))
    return own
