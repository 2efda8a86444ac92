"""Online clustering of a live session's embeddings (provisional speakers as utterances arrive) and the labels
revised at its end, on synthetic embeddings around known voices."""

from __future__ import annotations

import numpy as np
import pytest

from processors.diarization.backend import Turn, WindowEmbeddings
from processors.diarization.online import (
    OnlineConfig,
    OnlineSpeakers,
    finish_online,
    label_window,
    refine,
    rename_to_match,
    row_groups,
)

RNG = np.random.default_rng(7)
VOICES = RNG.standard_normal((4, 192)).astype(np.float32)


def voice(k: int, noise: float = 0.3) -> np.ndarray:
    return (VOICES[k] + noise * RNG.standard_normal(192)).astype(np.float32)


def test_each_new_voice_becomes_a_speaker_and_known_voices_join_theirs() -> None:
    online = OnlineSpeakers()
    config = OnlineConfig(threshold=0.5)
    order = [0, 1, 0, 2, 1, 0, 2]
    labels = [int(online.assign(voice(k)[None], np.array([3.0]), np.zeros(1, int), config)[0]) for k in order]
    assert labels == [0, 1, 0, 2, 1, 0, 2]
    assert online.count == 3


def test_the_speaker_count_is_capped_and_short_speech_starts_no_speaker() -> None:
    online = OnlineSpeakers()
    capped = OnlineConfig(threshold=0.5, max_speakers=2)
    got = [int(online.assign(voice(k)[None], np.array([3.0]), np.zeros(1, int), capped)[0]) for k in (0, 1, 2, 3)]
    assert online.count == 2 and got[:2] == [0, 1] and set(got[2:]) <= {0, 1}
    one = OnlineSpeakers()
    one.assign(voice(0)[None], np.array([3.0]), np.zeros(1, int), OnlineConfig())
    brief = one.assign(voice(1)[None], np.array([0.4]), np.zeros(1, int), OnlineConfig(min_new_s=1.0))
    assert one.count == 1 and brief.tolist() == [0]


def test_local_speakers_of_one_chunk_get_different_speakers() -> None:
    online = OnlineSpeakers()
    online.assign(np.stack([voice(0), voice(1)]), np.array([3.0, 3.0]), np.array([0, 1]), OnlineConfig())
    # two rows of one chunk both closest to voice 0: the weaker one goes to the other speaker
    rows = np.stack([voice(0, 0.1), voice(0, 0.6)])
    labels = online.assign(rows, np.array([3.0, 0.5]), np.array([5, 5]), OnlineConfig())
    assert sorted(labels.tolist()) == [0, 1]


def test_the_state_round_trips() -> None:
    online = OnlineSpeakers()
    online.assign(np.stack([voice(0), voice(1)]), np.array([2.0, 2.5]), np.array([0, 1]), OnlineConfig())
    back = OnlineSpeakers.from_bytes(online.to_bytes())
    assert np.array_equal(back.sums, online.sums) and np.array_equal(back.weights, online.weights)
    assert OnlineSpeakers.from_bytes(None).count == 0


def test_final_labels_take_the_provisional_names_they_share_most_speech_with() -> None:
    final = [(0.0, 5.0, "SPEAKER_01"), (5.0, 9.0, "SPEAKER_02"), (9.0, 10.0, "SPEAKER_03")]
    provisional = [(0.0, 4.0, "SPEAKER_02"), (4.0, 9.0, "SPEAKER_01")]
    assert rename_to_match(final, provisional) == {"SPEAKER_01": "SPEAKER_02", "SPEAKER_02": "SPEAKER_01",
                                                   "SPEAKER_03": "SPEAKER_03"}
    assert rename_to_match([(0.0, 1.0, "SPEAKER_02")], [(5.0, 6.0, "SPEAKER_02")]) == {"SPEAKER_02": "SPEAKER_01"}


@pytest.mark.parametrize("bounds, expected", [((None, None), 3), ((2, 2), 2), ((4, 4), 4), ((None, 2), 2)])
def test_refine_honours_the_count_bounds(bounds: tuple[int | None, int | None], expected: int) -> None:
    online = OnlineSpeakers()
    ks = [0, 1, 2] * 6
    x = np.stack([voice(k) for k in ks])
    seconds = np.full(len(ks), 3.0)
    groups = np.arange(len(ks))
    online.assign(x, seconds, groups, OnlineConfig(threshold=0.5))
    labels = refine(x, seconds, groups, online, *bounds)
    assert labels.max() + 1 == expected
    if expected == 3:  # every voice is one speaker
        assert all(len({labels[i] for i, k in enumerate(ks) if k == v}) == 1 for v in range(3))


def test_refine_corrects_an_early_mistake() -> None:
    online = OnlineSpeakers()
    first = voice(1, 0.9)  # a noisy first utterance of voice 1, given to speaker 0 by a lax threshold
    online.assign(voice(0)[None], np.array([3.0]), np.zeros(1, int), OnlineConfig())
    assert online.assign(first[None], np.array([3.0]), np.zeros(1, int), OnlineConfig(threshold=-1.0))[0] == 0
    rest = np.stack([voice(1) for _ in range(6)] + [voice(0) for _ in range(6)])
    online.assign(rest, np.full(12, 3.0), np.arange(12), OnlineConfig(threshold=0.5))
    x = np.concatenate([voice(0)[None], first[None], rest])
    labels = refine(x, np.full(14, 3.0), np.arange(14), online)
    assert labels[1] == labels[2] != labels[0]


class _Labelled:
    """window_turns of a backend that embeds one row per second of a window."""

    def window_turns(self, window: WindowEmbeddings, labels: np.ndarray, names: list[str]) -> list[Turn]:
        return [Turn(float(a), float(b), names[int(k)]) for (a, b), k in zip(window.subsegments, labels,
                                                                               strict=True)]


def _window(start: float, ks: list[int]) -> WindowEmbeddings:
    subs = np.array([[start + i, start + i + 1] for i in range(len(ks))], np.float32)
    return WindowEmbeddings(subs, np.stack([voice(k) for k in ks]), clean=np.full(len(ks), 1.0, np.float32))


def test_a_live_stream_is_labelled_as_it_goes_and_revised_at_the_end() -> None:
    backend = _Labelled()
    online = OnlineSpeakers()
    windows = [_window(0.0, [0, 0, 0]), _window(4.0, [1, 1, 1]), _window(8.0, [0, 0]), _window(11.0, [1, 1])]
    provisional = []
    for w in windows:
        turns = label_window(backend, w, online, OnlineConfig(threshold=0.5))  # type: ignore[arg-type]
        provisional += [(t.start, t.end, t.speaker) for t in turns]
    assert [s for *_, s in provisional] == ["SPEAKER_01"] * 3 + ["SPEAKER_02"] * 3 + ["SPEAKER_01"] * 2 + [
        "SPEAKER_02"] * 2
    final = finish_online(backend, windows, online, provisional, 2, 2)  # type: ignore[arg-type]
    assert [(t.start, t.end, t.speaker) for t in final.turns] == [
        (0.0, 3.0, "SPEAKER_01"), (4.0, 7.0, "SPEAKER_02"), (8.0, 10.0, "SPEAKER_01"), (11.0, 13.0, "SPEAKER_02")]
    assert set(final.centroids) == {"SPEAKER_01", "SPEAKER_02"}


def test_rows_of_one_chunk_share_a_group() -> None:
    w = WindowEmbeddings(np.array([[0, 10], [0, 10], [1, 11]], np.float32), np.zeros((3, 192), np.float32))
    groups = row_groups(w)
    assert groups[0] == groups[1] != groups[2]
