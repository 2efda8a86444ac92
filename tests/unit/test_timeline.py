"""Packing a window's pieces of speech for the recogniser, and mapping packed times back to the stream."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest

from processors.audio.timeline import pack

RATE = 16_000


def _window(seconds: float) -> np.ndarray:
    return np.arange(int(seconds * RATE), dtype=np.float32)  # every sample names its own position


def test_pieces_are_laid_end_to_end_without_the_silences() -> None:
    audio = _window(10.0)  # the window begins 100 s into the stream
    packed = pack(audio, 100.0, [(100.5, 102.0), (105.0, 106.0), (109.0, 110.0)])
    assert len(packed.audio) == int(3.5 * RATE)
    assert packed.audio[0] == 0.5 * RATE  # the first piece starts 0.5 s into the window
    assert packed.audio[int(1.5 * RATE)] == 5.0 * RATE  # the second follows the first at once
    assert packed.packed_starts == (0.0, 1.5, 2.5)
    assert packed.stream_starts == (100.5, 105.0, 109.0)


def test_packed_times_map_back_to_where_they_were_said() -> None:
    packed = pack(_window(10.0), 100.0, [(100.5, 102.0), (105.0, 106.0), (109.0, 110.0)])
    assert packed.to_stream(0.0) == pytest.approx(100.5)
    assert packed.to_stream(1.0) == pytest.approx(101.5)
    assert packed.to_stream(2.0) == pytest.approx(105.5)
    assert packed.to_stream(3.2) == pytest.approx(109.7)
    # the seam between two pieces: a word ending there ends with the first, a word starting there starts the second
    assert packed.to_stream(1.5, end=True) == pytest.approx(102.0)
    assert packed.to_stream(1.5) == pytest.approx(105.0)
    # times beyond the packed audio stay inside the last piece
    assert packed.to_stream(9.0) == pytest.approx(110.0)
    assert packed.to_stream(-1.0) == pytest.approx(100.5)


def test_a_mapped_time_never_goes_backwards() -> None:
    packed = pack(_window(30.0), 0.0, [(0.2, 4.0), (4.0, 9.5), (12.0, 20.0), (25.0, 29.9)])
    times = np.linspace(0, 22, 500)
    mapped = [packed.to_stream(float(t)) for t in times]
    assert all(b >= a for a, b in pairwise(mapped))


def test_pieces_outside_the_audio_are_dropped_and_none_means_all() -> None:
    audio = _window(4.0)
    packed = pack(audio, 10.0, [(8.0, 9.0), (11.0, 12.0), (20.0, 21.0)])
    assert packed.stream_starts == (11.0,) and len(packed.audio) == RATE
    whole = pack(audio, 10.0, [(30.0, 31.0)])
    assert len(whole.audio) == len(audio) and whole.to_stream(2.0) == pytest.approx(12.0)
