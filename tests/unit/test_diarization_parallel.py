"""A window's model work split across threads gives what one thread gives: the same local activity and the
same embeddings, on real speech; and the split itself is even and complete."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from bench.corpus import read_mono
from processors.diarization.overlap_backend import OverlapBackend
from processors.diarization.parallel import Workers, even_slices


@pytest.mark.parametrize(("n", "parts", "cap"), [(1, 2, 8), (5, 2, 8), (21, 2, 8), (21, 1, 8), (16, 2, 16),
                                                  (9, 3, 4), (2, 4, 8), (100, 2, 7)])
def test_even_slices_cover_everything_once_in_equal_shares(n: int, parts: int, cap: int) -> None:
    slices = even_slices(n, parts, cap)
    covered = [i for s in slices for i in range(n)[s]]
    assert covered == list(range(n))
    sizes = [s.stop - s.start for s in slices]
    assert max(sizes) <= cap and max(sizes) - min(sizes) <= 1
    assert len(slices) % parts == 0 or len(slices) == n  # each worker gets the same number, where n allows


def test_even_slices_of_nothing_and_bad_arguments() -> None:
    assert even_slices(0, 2, 8) == []
    with pytest.raises(ValueError):
        even_slices(3, 0, 8)


def test_workers_run_at_once_and_keep_the_order() -> None:
    seen: set[str] = set()
    both = threading.Barrier(2, timeout=10)

    def work(i: int) -> int:
        seen.add(threading.current_thread().name)
        if i < 2:
            both.wait()  # would time out if the two first items did not run at the same time
        return i * i

    pool = Workers(2)
    try:
        assert pool.map(work, list(range(6))) == [i * i for i in range(6)]
    finally:
        pool.close()
    assert len(seen) == 2


@pytest.fixture(scope="module")
def meeting(speech: Path) -> np.ndarray:
    """30 s of an AMI meeting (several speakers, overlaps) as the pipeline hears it."""
    audio = read_mono(sorted((speech / "meetings").glob("*.flac"))[0]).astype(np.float32) / 32768.0
    return audio[: 30 * 16_000]


def test_two_workers_give_the_one_thread_result_on_a_meeting(meeting: np.ndarray) -> None:
    one = OverlapBackend(warmup=False, workers=1)
    two = OverlapBackend(warmup=False, workers=2)
    two.segmenter.model, two.embedder.model, two.embedder.graph = (
        one.segmenter.model, one.embedder.model, one.embedder.graph)  # the same weights, loaded once
    a, b = one.embed(meeting, 3.0), two.embed(meeting, 3.0)
    assert len(a.embeddings) >= 10  # a real window: many chunks with local speakers
    np.testing.assert_array_equal(a.subsegments, b.subsegments)
    np.testing.assert_array_equal(a.activity, b.activity)
    np.testing.assert_array_equal(a.count, b.count)
    np.testing.assert_allclose(a.embeddings, b.embeddings, atol=1e-5)
    two.workers.close()
