"""Phrase hits: where the phrases an organization listed were said, by whom, with fuzzy matching.

A phrase is matched against each speaker's words in time order (a phrase is said by one speaker): every run
of as many words as the phrase has, one fewer or one more, is compared with it by RapidFuzz's normalized
Indel similarity (``fuzz.ratio``, 0-100) after both are lower-cased and stripped of punctuation; runs scoring
at least the phrase's threshold are hits, the best-scoring first, never two overlapping hits of one phrase.
Recognition errors ("cancel my count" for "cancel my account") and an extra or missing word still match.

A phrase may name the speaker who must say it (a channel name such as ``agent``, or an enrolled voice's name):
then only that speaker's words are searched. Required phrases that have no hit are reported as missing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from rapidfuzz import fuzz, process, utils

PhraseKind = Literal["required", "watched"]
DEFAULT_THRESHOLD = 85


def normalize(text: str) -> str:
    """Lower case, punctuation removed, single spaces: what is compared."""
    return " ".join(utils.default_process(text).split())


@dataclass(frozen=True)
class Phrase:
    phrase_id: str
    text: str
    kind: PhraseKind = "watched"
    speaker: str | None = None  # the named speaker who must say it; None: anyone
    threshold: int = DEFAULT_THRESHOLD

    @property
    def tokens(self) -> int:
        return len(normalize(self.text).split())


@dataclass(frozen=True)
class SpokenWord:
    start: int  # ms
    end: int
    text: str  # as recognised
    speaker: str


@dataclass(frozen=True)
class Hit:
    phrase_id: str
    phrase: str
    kind: PhraseKind
    speaker: str
    start: int  # ms
    end: int
    text: str  # the words as recognised
    score: float


def _runs(words: Sequence[SpokenWord], normalized: Sequence[str], size: int) -> list[tuple[int, str]]:
    """(first word index, normalized text) of every run of ``size`` words."""
    return [(i, " ".join(normalized[i:i + size])) for i in range(len(words) - size + 1)]


def _candidates(words: Sequence[SpokenWord], phrases: Sequence[Phrase]) -> list[tuple[float, int, int, Phrase]]:
    """(score, first word, word count, phrase) of every run that matches a phrase."""
    normalized = [normalize(w.text) for w in words]
    out: list[tuple[float, int, int, Phrase]] = []
    sizes = sorted({k for p in phrases for k in (p.tokens - 1, p.tokens, p.tokens + 1) if k >= 1})
    for size in sizes:
        runs = [(i, text) for i, text in _runs(words, normalized, size) if text]
        near = [p for p in phrases if abs(p.tokens - size) <= 1]
        if not runs or not near:
            continue
        scores = process.cdist([t for _, t in runs], [normalize(p.text) for p in near], scorer=fuzz.ratio,
                               processor=None)
        for r, (first, _text) in enumerate(runs):
            for c, phrase in enumerate(near):
                score = float(scores[r][c])
                if score >= phrase.threshold:
                    out.append((round(score, 1), first, size, phrase))
    return out


def _hits_of_speaker(words: Sequence[SpokenWord], phrases: Sequence[Phrase]) -> list[Hit]:
    taken: dict[str, list[tuple[int, int]]] = {}
    hits: list[Hit] = []
    # best score first; then the earlier, then the shorter run
    for score, first, size, phrase in sorted(_candidates(words, phrases),
                                             key=lambda c: (-c[0], c[1], c[2], c[3].phrase_id)):
        last = first + size - 1
        spans = taken.setdefault(phrase.phrase_id, [])
        if any(first <= b and a <= last for a, b in spans):
            continue
        spans.append((first, last))
        run = words[first:last + 1]
        hits.append(Hit(phrase.phrase_id, phrase.text, phrase.kind, run[0].speaker, run[0].start, run[-1].end,
                        "".join(w.text for w in run).strip(), score))
    return hits


def find_hits(words: Iterable[SpokenWord], phrases: Sequence[Phrase], names: dict[str, str | None]) -> list[Hit]:
    """Every hit of ``phrases`` in ``words``, in time order. ``names``: speaker id -> the speaker's name (a
    channel name or an enrolled voice's), for phrases that name who must say them."""
    by_speaker: dict[str, list[SpokenWord]] = {}
    for w in words:
        by_speaker.setdefault(w.speaker, []).append(w)
    hits: list[Hit] = []
    for speaker, spoken in sorted(by_speaker.items()):
        spoken.sort(key=lambda w: (w.start, w.end))
        name = (names.get(speaker) or "").casefold()
        mine = [p for p in phrases if p.speaker is None or p.speaker.casefold() == name]
        if mine and spoken:
            hits += _hits_of_speaker(spoken, mine)
    return sorted(hits, key=lambda h: (h.start, h.end, h.phrase_id))


def missing_required(phrases: Sequence[Phrase], hits: Sequence[Hit]) -> list[Phrase]:
    found = {h.phrase_id for h in hits}
    return [p for p in phrases if p.kind == "required" and p.phrase_id not in found]
