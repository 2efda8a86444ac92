"""Sentiment of transcript text with VADER (``vaderSentiment``): a rule-based model whose lexicon of ~7,500
scored English words and emoticons ships inside the PyPI wheel, so it runs offline and needs no model
download. It scores a text's compound polarity from -1 (most negative) to +1 (most positive), with rules
for negation, intensifiers and contrast ("but"). It was made for short informal English, which suits
utterances of a conversation; it knows no other language, so other languages get no score.
"""

from __future__ import annotations

from functools import cache

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer


@cache
def _analyzer() -> SentimentIntensityAnalyzer:
    return SentimentIntensityAnalyzer()  # reads the lexicon files from the installed package once


def scores_language(language: str | None) -> bool:
    """Whether VADER can score text of ``language`` (unknown languages are taken as English: tiny.en)."""
    return language is None or language.lower().startswith("en")


def compound(text: str) -> float:
    """VADER's compound score of ``text``, rounded to 3 decimals (0.0 for text without scored words)."""
    return round(float(_analyzer().polarity_scores(text)["compound"]), 3)


def weighted_mean(scores: list[tuple[float, int]]) -> float | None:
    """Mean of (score, weight) pairs; None without weight."""
    total = sum(w for _, w in scores)
    return round(sum(s * w for s, w in scores) / total, 3) if total else None
