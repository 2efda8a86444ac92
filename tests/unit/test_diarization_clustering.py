"""The overlap backend's pure parts: speaker-count bounds of the clustering at any length, the per-chunk
constraint, turn reconstruction with overlap, frame selection and the window state's serialisation."""

from __future__ import annotations

import numpy as np
import pytest

import processors.diarization.clustering as clustering
from processors.diarization.backend import Turn, WindowEmbeddings
from processors.diarization.clustering import ClusteringConfig, cluster_embeddings
from processors.diarization.reconstruct import join_touching, turns_from_activity, window_activity
from processors.diarization.segmentation import FrameGrid

CONFIG = ClusteringConfig()


def voices(speakers: int, per_speaker: int, seed: int = 0, spread: float = 0.35,
           dim: int = 192) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings of ``speakers`` voices (random unit directions plus noise of norm about ``spread``),
    interleaved as in a conversation."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((speakers, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    truth = np.tile(np.arange(speakers), per_speaker)
    x = centres[truth] + spread * rng.standard_normal((len(truth), dim)) / np.sqrt(dim)
    return x.astype(np.float32), truth


def run(x: np.ndarray, lo: int | None, hi: int | None, config: ClusteringConfig = CONFIG) -> clustering.SpeakerClusters:
    return cluster_embeddings(x, np.arange(len(x)), np.ones(len(x), bool), config, lo, hi)


def purity(labels: np.ndarray, truth: np.ndarray) -> float:
    return sum(np.bincount(truth[labels == k]).max() for k in np.unique(labels)) / len(labels)


def test_the_speaker_count_is_estimated_when_not_given() -> None:
    x, truth = voices(4, 30)
    found = run(x, None, None)
    assert len(found.centroids) == 4
    assert purity(found.labels, truth) == 1.0


@pytest.mark.parametrize("speakers", [1, 2, 3, 5, 6])
def test_an_exact_count_is_honoured(speakers: int) -> None:
    x, _ = voices(4, 30)
    found = run(x, speakers, speakers)
    assert len(found.centroids) == speakers
    assert len(np.unique(found.labels)) == speakers


def test_min_and_max_bound_the_estimate() -> None:
    x, truth = voices(4, 30)
    assert len(run(x, None, 2).centroids) == 2
    assert len(run(x, 6, None).centroids) == 6
    assert len(run(x, 2, 6).centroids) == 4  # inside the bounds the estimate stands
    at_most_two = run(x, 1, 2)
    assert purity(at_most_two.labels, truth) >= 0.5  # whole voices merged, not voices cut apart
    with pytest.raises(ValueError, match="above max_speakers"):
        run(x, 3, 2)


def test_a_multi_hour_stream_keeps_the_bounds_and_a_bounded_dendrogram(monkeypatch: pytest.MonkeyPatch) -> None:
    """60,000 local-speaker embeddings (about 8 hours at one chunk a second) of 3 voices."""
    sizes: list[int] = []
    real_linkage = clustering.linkage

    def spy(x: np.ndarray, *args: object, **kwargs: object) -> np.ndarray:
        sizes.append(len(x))
        return real_linkage(x, *args, **kwargs)

    monkeypatch.setattr(clustering, "linkage", spy)
    x, truth = voices(3, 20_000, seed=3)
    config = ClusteringConfig(max_representatives=500)
    unbounded = run(x, None, None, config)
    assert len(unbounded.centroids) == 3 and purity(unbounded.labels, truth) > 0.99
    assert len(run(x, 3, 3, config).centroids) == 3
    assert len(run(x, None, 2, config).centroids) == 2
    assert len(run(x, 5, 8, config).centroids) == 5
    assert unbounded.representatives == 500
    assert sizes and max(sizes) <= 500  # the quadratic step never sees more than the representatives
    assert len(unbounded.labels) == len(x)  # yet every embedding gets a speaker


def test_local_speakers_of_one_chunk_are_different_people() -> None:
    x, _ = voices(2, 10, seed=5)
    near_a = x[0] + 0.01  # two rows of the same chunk that both sound like voice A
    both = np.vstack([x, near_a, near_a + 0.02])
    groups = np.concatenate([np.arange(len(x)), [999, 999]])
    found = cluster_embeddings(both, groups, np.ones(len(both), bool), CONFIG, 2, 2)
    assert found.labels[-1] != found.labels[-2]


def test_unreliable_embeddings_are_assigned_but_do_not_shape_the_speakers() -> None:
    x, truth = voices(2, 20, seed=7)
    rng = np.random.default_rng(1)
    noise = rng.standard_normal((15, x.shape[1])).astype(np.float32) * 5  # short, noisy pieces
    found = cluster_embeddings(np.vstack([x, noise]), np.arange(len(x) + 15),
                               np.concatenate([np.ones(len(x), bool), np.zeros(15, bool)]), CONFIG)
    assert len(found.centroids) == 2 and len(found.labels) == len(x) + 15
    assert purity(found.labels[: len(x)], truth) == 1.0


def test_an_empty_stream_has_no_speakers() -> None:
    found = run(np.zeros((0, 192), np.float32), None, None)
    assert len(found.labels) == 0 and len(found.centroids) == 0


def test_two_speakers_at_once_give_overlapping_turns() -> None:
    frames = 100
    a = np.zeros(frames, bool)
    b = np.zeros(frames, bool)
    a[0:60] = True
    b[40:100] = True
    count = (a.astype(np.uint8) + b.astype(np.uint8))
    binary = window_activity(np.array([0, 0]), np.stack([a, b]), np.array([0, 1]), count, 2)
    assert binary[40:60].all() and binary[:40, 1].sum() == 0 and binary[60:, 0].sum() == 0
    turns = turns_from_activity(binary, ["S1", "S2"], start=10.0, step=0.1, duration=0.1, end=20.0)
    assert [(t.speaker, t.start, t.end) for t in turns] == [("S1", 10.05, 16.05), ("S2", 14.05, 20.0)]


def test_the_frame_count_limits_how_many_speakers_talk() -> None:
    a = np.ones(10, bool)
    b = np.ones(10, bool)
    count = np.ones(10, np.uint8)  # the segmentation hears one voice at a time
    # speaker 0 is active in two overlapping chunks, speaker 1 in one: speaker 0 wins every frame
    binary = window_activity(np.array([0, 0, 0]), np.stack([a, b, a]), np.array([0, 1, 0]), count, 2)
    assert binary[:, 0].all() and not binary[:, 1].any()
    # a frame nobody was heard in stays silent even if the count says otherwise
    silent = window_activity(np.array([0]), np.zeros((1, 10), bool), np.array([0]), count, 1)
    assert not silent.any()


def test_turns_touching_across_windows_are_joined() -> None:
    turns = [Turn(0.0, 5.0, "A"), Turn(4.0, 6.0, "B"), Turn(5.02, 9.0, "A"), Turn(12.0, 13.0, "A")]
    assert [(t.start, t.end, t.speaker) for t in join_touching(turns)] == [
        (0.0, 9.0, "A"), (4.0, 6.0, "B"), (12.0, 13.0, "A")]


def test_frame_selection_takes_the_samples_under_the_frames() -> None:
    grid = FrameGrid(step=0.01, duration=0.01, per_chunk=100)
    audio = np.arange(16_000, dtype=np.float32)
    frames = np.zeros(100, bool)
    frames[10:20] = True
    frames[50:55] = True
    picked = grid.select(audio, frames)
    assert len(picked) == 10 * 160 + 5 * 160
    assert picked[0] == 1600 and picked[1600] == 8000


def test_window_state_round_trips_with_and_without_activity() -> None:
    plain = WindowEmbeddings(np.array([[0.0, 1.5]], np.float32), np.ones((1, 192), np.float32))
    back = WindowEmbeddings.from_bytes(plain.to_bytes())
    assert back.activity is None and np.array_equal(back.embeddings, plain.embeddings)
    full = WindowEmbeddings(np.array([[3.0, 13.0]], np.float32), np.ones((1, 192), np.float32),
                            activity=np.packbits(np.ones((1, 589), bool), axis=1), clean=np.array([2.5], np.float32),
                            count=np.ones(700, np.uint8), grid=np.array([3.0, 0.016875, 0.0619375, 589.0]))
    back = WindowEmbeddings.from_bytes(full.to_bytes())
    assert back.activity is not None and back.activity.shape == (1, 74)
    assert back.count is not None and back.count.sum() == 700
    assert back.grid is not None and back.grid[3] == 589
