"""The VAD segmenter on real speech: cuts are sane, bounded, non-overlapping and deterministic across a
restart from persisted state."""

from __future__ import annotations

import json
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

from connectors.ingest.decode import decode_chunks
from processors.vad.segmenter import RATE, Cut, Segmenter, SegmenterConfig, SegmenterState, shorten_pauses


def _chunks(path: Path) -> list[np.ndarray]:
    return [c.frames.astype(np.int32).mean(axis=1).astype(np.int16) for c in decode_chunks(path)]


def _run(chunks: list[np.ndarray], cfg: SegmenterConfig, restart_at: int | None = None) -> list[Cut]:
    seg = Segmenter(cfg)
    cuts: list[Cut] = []
    for i, chunk in enumerate(chunks):
        if i == restart_at:
            # persist and rebuild, as the VAD stage does after a crash
            state = SegmenterState.from_json(json.loads(json.dumps(seg.st.to_json())))
            seg = Segmenter(cfg, state, seg.buf.copy(), seg.buf_start)
        cuts += seg.feed(chunk)
        seg.trim(seg.retain_from())
    return cuts + seg.finish()


@pytest.fixture(scope="module")
def meeting(speech: Path) -> list[np.ndarray]:
    return _chunks(speech / "meetings" / "ami_dev00.flac") + _chunks(speech / "calls" / "call_center_phone_call.mp3")


@pytest.mark.parametrize("mode", ["merge", "utterance"])
def test_cuts_are_ordered_bounded_and_cover_speech(meeting: list[np.ndarray], mode: str) -> None:
    cfg = SegmenterConfig(mode=mode)  # type: ignore[arg-type]
    finals = [c for c in _run(meeting, cfg) if c.kind == "FINAL"]
    total = sum(len(c) for c in meeting)
    assert len(finals) >= 3
    for a, b in pairwise(finals):
        assert a.end <= b.start
    for c in finals:
        assert 0 <= c.start < c.end <= total
        assert c.end - c.start <= cfg.max_segment_s * RATE + cfg.pad
        assert len(c.audio) == c.end - c.start
    speech_time = sum(c.end - c.start for c in finals) / total
    assert 0.5 < speech_time <= 1.0  # conversations are mostly speech; silence at the edges is dropped


def test_merge_mode_fills_whisper_windows(meeting: list[np.ndarray]) -> None:
    finals = [c for c in _run(meeting, SegmenterConfig(mode="merge")) if c.kind == "FINAL"]
    utterances = [c for c in _run(meeting, SegmenterConfig(mode="utterance")) if c.kind == "FINAL"]
    assert len(finals) < len(utterances) / 3
    assert max(c.end - c.start for c in finals) > 20 * RATE


def test_utterance_mode_sends_growing_partials(meeting: list[np.ndarray]) -> None:
    cuts = _run(meeting, SegmenterConfig(mode="utterance", partial_interval_s=0.8))
    partials = [c for c in cuts if c.kind == "PARTIAL"]
    assert partials
    finals = [c for c in cuts if c.kind == "FINAL"]
    for p in partials:  # each partial grows from the start of the utterance its final will cover
        assert any(f.start == p.start for f in finals), p


def test_merge_windows_too_long_to_read_whole_list_a_whisper_window_of_speech(meeting: list[np.ndarray]) -> None:
    cfg = SegmenterConfig(mode="merge", max_window_span_s=60.0)
    finals = [c for c in _run(meeting, cfg) if c.kind == "FINAL"]
    assert any(c.pieces for c in finals)
    for c in finals:
        assert c.end - c.start <= cfg.max_window_span_s * RATE + cfg.pad
        assert len(c.audio) == c.end - c.start  # the event carries the whole span; the pieces say what to read
        if c.end - c.start <= cfg.max_segment_s * RATE:
            assert c.pieces is None  # read whole, pauses and all
            continue
        pieces = c.pieces or []
        assert pieces[0][0] == c.start and pieces[-1][1] == c.end
        for a, b in pieces:
            assert c.start <= a < b <= c.end
        for (_, b), (a, _) in pairwise(pieces):
            assert b < a  # ordered, apart
        assert sum(b - a for a, b in pieces) <= cfg.max_segment_s * RATE + cfg.pad
    # the pauses shortened make room: fewer windows than when a window's span is what Whisper reads
    contiguous = [c for c in _run(meeting, SegmenterConfig(mode="merge")) if c.kind == "FINAL"]
    assert not any(c.pieces for c in contiguous)
    assert len(finals) < len(contiguous)


def test_pauses_are_shortened_to_one_common_length_that_fills_the_room() -> None:
    s = RATE  # one second
    pieces = [(0, 5 * s), (6 * s, 10 * s), (14 * s, 20 * s), (30 * s, 33 * s)]  # pauses of 1, 4 and 10 s; 18 s speech
    out = shorten_pauses(pieces, 25 * s)  # 7 s of room for pauses: 1 s whole, then 3 s of each long one
    assert out == [(0, 11.5 * s), (12.5 * s, 21.5 * s), (28.5 * s, 33 * s)]
    assert sum(b - a for a, b in out) == 25 * s
    assert shorten_pauses(pieces, 18 * s) == pieces  # no room: the pieces as they are
    assert shorten_pauses(pieces, 40 * s) == [(0, 33 * s)]  # room for everything: one stretch


@pytest.mark.parametrize("restart_at", [3, 17, 41])
def test_restart_from_persisted_state_cuts_identically(meeting: list[np.ndarray], restart_at: int) -> None:
    cfg = SegmenterConfig(mode="merge", max_window_span_s=60.0)
    straight = [(c.kind, c.start, c.end, c.pieces) for c in _run(meeting, cfg)]
    restarted = [(c.kind, c.start, c.end, c.pieces) for c in _run(meeting, cfg, restart_at)]
    assert restarted == straight


def test_a_window_persisted_before_windows_listed_their_pieces_is_one_stretch() -> None:
    state = SegmenterState(pos=RATE * 5, total=RATE * 5, win_start=RATE, win_end=RATE * 3)
    state_json = state.to_json()
    del state_json["win_pieces"]  # what an older worker persisted
    seg = Segmenter(SegmenterConfig(mode="merge"), SegmenterState.from_json(state_json),
                    np.zeros(RATE * 5, dtype=np.int16), 0)
    cut = seg.finish()[0]
    assert (cut.start, cut.end, cut.pieces) == (RATE, RATE * 3, None)


def test_silence_gives_no_segments() -> None:
    cuts = _run([np.zeros(RATE, dtype=np.int16)] * 5, SegmenterConfig())
    assert cuts == []


def test_long_speech_is_cut_at_a_quiet_point(speech: Path) -> None:
    # the read set without its pauses is one long stretch of speech
    audio = np.concatenate([c for f in sorted((speech / "read").glob("LJ*.wav"))[:6] for c in _chunks(f)])
    cfg = SegmenterConfig(mode="utterance", end_silence_ms=3000, max_segment_s=10.0)
    finals = [c for c in _run([audio[i:i + RATE] for i in range(0, len(audio), RATE)], cfg) if c.kind == "FINAL"]
    assert all(c.end - c.start <= 10 * RATE + cfg.pad for c in finals)
    assert len(finals) >= 3
