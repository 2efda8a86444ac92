"""CAM++ embeddings from the optimized TorchScript graph are the eager model's, on real speech of every length
the overlap backend embeds (down to one analysis frame, which goes the eager way)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from bench.corpus import read_mono
from processors.diarization.speaker_embedding import (
    MIN_SAMPLES,
    MIN_TRACED_FRAMES,
    RATE,
    CamppEmbedder,
    fbank,
    frame_count,
)


@pytest.fixture(scope="module")
def embedder() -> CamppEmbedder:
    return CamppEmbedder()


@pytest.fixture(scope="module")
def reading(speech: Path) -> np.ndarray:
    """An LJ Speech read as the pipeline hears it (decoded and resampled to 16 kHz as ingest does)."""
    return read_mono(speech / "read" / "LJ001-0001.wav").astype(np.float32) / 32768.0


def eager(embedder: CamppEmbedder, pieces: list[np.ndarray]) -> np.ndarray:
    graph = embedder.graph
    embedder.graph = embedder.model
    try:
        return embedder(pieces)
    finally:
        embedder.graph = graph


@pytest.mark.parametrize("seconds", [0.025, 0.1, 0.16, 0.5, 1.5, 4.0, 8.0])
def test_the_optimized_graph_gives_the_eager_embeddings(embedder: CamppEmbedder, reading: np.ndarray,
                                                        seconds: float) -> None:
    n = max(MIN_SAMPLES, int(seconds * RATE))
    pieces = [reading[o: o + n] for o in (0, RATE // 2, RATE)]
    assert all(len(p) == n for p in pieces)
    got, want = embedder(pieces), eager(embedder, pieces)
    assert np.isfinite(got).all()
    assert np.abs(got).max() > 1e-3  # a real embedding, not zeros
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_pieces_too_short_for_the_graph_run_eagerly(embedder: CamppEmbedder, reading: np.ndarray) -> None:
    """One analysis frame: the traced statistics pooling would give NaN there; the eager model does not."""
    with torch.inference_mode():
        traced = embedder.graph(torch.zeros(1, MIN_TRACED_FRAMES // 8, 80) + 0.1)
    assert not torch.isfinite(traced).all(), "the graph now handles tiny inputs: MIN_TRACED_FRAMES can go"
    got = embedder([reading[RATE: RATE + MIN_SAMPLES]])
    assert np.isfinite(got).all()


def _reference_fbank(audio: np.ndarray) -> np.ndarray:
    """Kaldi filter banks from kaldi-native-fbank (Kaldi's own code), mean-normalised like ``fbank``."""
    import kaldi_native_fbank as knf

    opts = knf.FbankOptions()
    opts.frame_opts.samp_freq = RATE
    opts.frame_opts.dither = 0.0
    opts.mel_opts.num_bins = 80
    extractor = knf.OnlineFbank(opts)
    extractor.accept_waveform(RATE, audio.tolist())
    extractor.input_finished()
    feats = np.stack([extractor.get_frame(i) for i in range(extractor.num_frames_ready)]).astype(np.float32)
    return feats - feats.mean(axis=0, keepdims=True)


@pytest.mark.parametrize("seconds", [0.025, 0.5, 3.3, 10.0])
def test_filter_banks_are_kaldis(reading: np.ndarray, seconds: float) -> None:
    piece = reading[RATE // 3: RATE // 3 + max(MIN_SAMPLES, int(seconds * RATE)) + 77]
    ours, kaldi = fbank(piece), _reference_fbank(piece)
    assert ours.shape == kaldi.shape == (frame_count(len(piece)), 80)
    assert np.abs(ours - kaldi).max() < 5e-3, np.abs(ours - kaldi).max()  # log mel energies, measured <= 5e-4
    assert np.abs(ours - kaldi).mean() < 1e-4
