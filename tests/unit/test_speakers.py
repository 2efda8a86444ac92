from __future__ import annotations

import numpy as np

from processors.diarization.backend import Turn
from processors.diarization.identify import Profile, identify
from processors.diarization.senko_backend import carve, speech_seconds
from processors.post.render import render, to_rttm
from processors.post.speakers import attribute, attribute_words
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
    pieces = split_segment(seg, attribution=attribute(seg["words"], TURNS))
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


# -- word-level attribution with overlapping turns --------------------------------------------------------
OVERLAPPING = [{"start": 0.0, "end": 5.0, "speaker": "A"}, {"start": 4.0, "end": 9.0, "speaker": "B"},
               {"start": 6.0, "end": 6.5, "speaker": "A"}]


def test_in_overlap_a_word_following_without_a_pause_keeps_its_speaker() -> None:
    words = [_w(3.5, 3.9), _w(4.0, 4.4), _w(4.45, 4.9), _w(5.2, 5.6)]
    got = attribute(words, OVERLAPPING)
    assert [a.speaker for a in got] == ["A", "A", "A", "B"]
    assert [a.overlap for a in got] == [(), ("B",), ("B",), ()]


def test_in_overlap_after_a_pause_the_voice_that_starts_with_the_word_takes_it() -> None:
    words = [_w(2.0, 3.4), _w(4.05, 4.5)]  # 0.65 s pause, then a word where A and B both talk: B just began
    assert [a.speaker for a in attribute(words, OVERLAPPING)] == ["A", "B"]


def test_a_backchannel_inside_a_long_turn_marks_overlap_but_does_not_take_the_words() -> None:
    words = [_w(5.6, 5.9), _w(6.0, 6.4), _w(6.6, 7.0)]
    got = attribute(words, OVERLAPPING)
    assert [a.speaker for a in got] == ["B", "B", "B"]
    assert got[1].overlap == ("A",) and got[0].overlap == () and got[2].overlap == ()


def test_coverage_decides_before_any_tie_rule() -> None:
    turns = [{"start": 0.0, "end": 1.0, "speaker": "A"}, {"start": 0.9, "end": 3.0, "speaker": "B"}]
    got = attribute([_w(0.5, 0.8), _w(0.85, 1.5)], turns)
    assert [a.speaker for a in got] == ["A", "B"]  # B covers 0.6 s of the second word, A 0.15 s
    assert got[1].overlap == ()  # A covers less than half of it


def test_a_turn_that_began_long_before_many_short_ones_is_still_found() -> None:
    turns = [{"start": 0.0, "end": 100.0, "speaker": "A"}] + [
        {"start": 10.0 + i, "end": 10.3 + i, "speaker": "B"} for i in range(30)]
    got = attribute([_w(50.5, 50.8), _w(95.0, 95.4)], turns)
    assert [a.speaker for a in got] == ["A", "A"]


def test_words_without_duration_are_attributed_at_their_instant() -> None:
    got = attribute([_w(4.5, 4.5), _w(7.0, 7.0)], OVERLAPPING)
    assert got[0].speaker in ("A", "B") and set(got[0].overlap) | {got[0].speaker} == {"A", "B"}
    assert got[1].speaker == "B"


def test_pieces_and_words_carry_speakers_and_overlap() -> None:
    seg = {"segment_id": "w", "start": 0.0, "end": 9.0, "channel": None, "text": "",
           "words": [_w(3.5, 3.9, " one"), _w(4.0, 4.4, " two"), _w(5.2, 5.6, " three"), _w(5.6, 6.4, " four")]}
    pieces = split_segment(seg, attribution=attribute(seg["words"], OVERLAPPING))
    assert [(p.speaker, p.text, p.overlap) for p in pieces] == [("A", "one two", ["B"]), ("B", "three four", ["A"])]
    event = pieces[0].to_event(0)
    assert event["words"][1] == {"start": 4.0, "end": 4.4, "word": " two", "probability": 1.0, "speaker": "A",
                                 "overlap": ["B"]}
    assert event["overlap"] == ["B"]


def test_overlapped_speech_is_marked_in_subtitles_and_text() -> None:
    transcript = {"segments": [
        {"start": 0.0, "end": 1.5, "text": "Hello there.", "speaker": "Alice", "overlap": ["Bob"]},
        {"start": 2.0, "end": 3.0, "text": "Hi.", "speaker": "Bob", "overlap": []},
        {"start": 3.0, "end": 4.0, "text": "No one.", "speaker": None}]}
    srt = render(transcript, "srt")
    assert "Alice [overlap: Bob]: Hello there." in srt and "\nBob: Hi.\n" in srt and "\nNo one.\n" in srt
    vtt = render(transcript, "vtt")
    assert "<v Alice>Hello there. <c.overlap>[overlap: Bob]</c>" in vtt and "<v Bob>Hi.\n" in vtt
    assert render(transcript, "txt").splitlines() == ["Alice [overlap: Bob]: Hello there.", "Bob: Hi.", "No one."]


def test_a_carved_turn_cuts_the_turns_under_it() -> None:
    turns = [Turn(0.0, 4.0, "A"), Turn(4.0, 6.0, "B"), Turn(7.0, 9.0, "A")]
    assert carve(turns, Turn(3.0, 4.5, "C")) == [Turn(0.0, 3.0, "A"), Turn(3.0, 4.5, "C"), Turn(4.5, 6.0, "B"),
                                                  Turn(7.0, 9.0, "A")]
    assert carve(turns, Turn(1.0, 2.0, "C")) == [Turn(0.0, 1.0, "A"), Turn(1.0, 2.0, "C"), Turn(2.0, 4.0, "A"),
                                                  Turn(4.0, 6.0, "B"), Turn(7.0, 9.0, "A")]
    assert carve(turns, Turn(6.2, 6.8, "C")) == [*turns[:2], Turn(6.2, 6.8, "C"), turns[2]]
