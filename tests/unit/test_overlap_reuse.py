"""Which pieces of a window take an earlier chunk's embedding (``Reuse`` in the overlap backend): a piece whose
frames nearly repeat a piece embedded for one of the two chunks before, and no other."""

from __future__ import annotations

import numpy as np

from processors.diarization.overlap_backend import Reuse

PER_CHUNK = 100


def frames(*ranges: tuple[int, int]) -> np.ndarray:
    use = np.zeros(PER_CHUNK, bool)
    for a, b in ranges:
        use[a:b] = True
    return use


def test_a_piece_that_repeats_the_chunk_before_takes_its_embedding() -> None:
    reuse = Reuse(frames=300, overlap=0.9)
    reuse.add(0, 0, frames((10, 90)), piece_id=0)
    # the next chunk starts 5 frames later: the same 80 frames of speech, seen from there, plus 2 more
    assert reuse.match(1, 5, frames((5, 87))) == 0


def test_a_piece_that_differs_by_more_than_the_bound_is_embedded() -> None:
    reuse = Reuse(frames=300, overlap=0.9)
    reuse.add(0, 0, frames((10, 90)), piece_id=0)
    assert reuse.match(1, 5, frames((5, 60))) is None  # 55 of the 80 frames: 0.69
    assert reuse.match(1, 5, frames((5, 85), (90, 100))) is None  # 80 shared of 90: 0.89


def test_speakers_of_the_same_chunk_never_share_an_embedding() -> None:
    reuse = Reuse(frames=300, overlap=0.9)
    reuse.add(3, 0, frames((10, 90)), piece_id=0)
    assert reuse.match(3, 0, frames((10, 90))) is None


def test_only_the_two_chunks_before_are_looked_at() -> None:
    reuse = Reuse(frames=300, overlap=0.9)
    reuse.add(0, 0, frames((10, 90)), piece_id=0)
    reuse.add(1, 10, frames((0, 5)), piece_id=1)
    reuse.add(2, 20, frames((0, 5)), piece_id=2)
    assert reuse.match(2, 0, frames((10, 90))) == 0
    reuse.add(3, 30, frames((0, 5)), piece_id=3)
    assert reuse.match(3, 0, frames((10, 90))) is None


def test_the_most_recent_repeat_is_chosen_and_a_bound_above_one_turns_reuse_off() -> None:
    reuse = Reuse(frames=300, overlap=0.9)
    reuse.add(0, 0, frames((10, 90)), piece_id=0)
    reuse.add(1, 0, frames((10, 90)), piece_id=4)
    assert reuse.match(2, 0, frames((10, 90))) == 4
    never = Reuse(frames=300, overlap=1.01)
    never.add(0, 0, frames((10, 90)), piece_id=0)
    assert never.match(1, 0, frames((10, 90))) is None
