"""Online clustering for live sessions: every embedding of an utterance gets a provisional speaker as soon as
the utterance is final, from the speakers heard so far in the session.

Each speaker is the weighted sum of the (unit-length) embeddings given to them, weighted by the seconds of
clean speech behind each. An embedding joins the most similar speaker when the cosine similarity reaches
``threshold``; otherwise it starts a new speaker, unless the session already has ``max_speakers`` or the
embedding rests on too little speech to tell (``min_new_s``), in which case it joins the most similar one.
The embeddings of one segmentation chunk are different people (the local speakers of the overlap backend),
so they never join the same speaker while another is free. The state is a few floats per speaker, kept per
stream; the labels are revised by the offline clustering of the whole session when it ends.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np

from processors.diarization.backend import Clustering, DiarizationBackend, Turn, WindowEmbeddings
from processors.diarization.clustering import assign
from processors.diarization.labels import acoustic_speaker
from processors.diarization.reconstruct import join_touching


@dataclass(frozen=True)
class OnlineConfig:
    threshold: float = 0.5
    min_new_s: float = 1.0  # seconds of clean speech an embedding needs to start a new speaker
    max_speakers: int = 20


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)).astype(np.float32)


@dataclass
class OnlineSpeakers:
    sums: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))  # (k, dim)
    weights: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # (k,)

    @property
    def count(self) -> int:
        return len(self.weights)

    def assign(self, embeddings: np.ndarray, seconds: np.ndarray, groups: np.ndarray,
               config: OnlineConfig) -> np.ndarray:
        """A speaker index per embedding (0 .. count-1, new speakers numbered on), updating the speakers."""
        x = _unit(np.asarray(embeddings, np.float32))
        labels = np.full(len(x), -1, int)
        for group in dict.fromkeys(groups.tolist()):
            rows = [int(r) for r in np.flatnonzero(groups == group)]
            taken: set[int] = set()
            for r in sorted(rows, key=lambda r: -float(seconds[r])):
                labels[r] = self._choose(x[r], float(seconds[r]), taken, config)
                taken.add(int(labels[r]))
                self._add(int(labels[r]), x[r], float(seconds[r]))
        return labels

    def _choose(self, x: np.ndarray, seconds: float, taken: set[int], config: OnlineConfig) -> int:
        if self.count == 0:
            return self.count  # the first speaker
        sims = _unit(self.sums) @ x
        free = [k for k in range(self.count) if k not in taken]
        best = max(free, key=lambda k: sims[k]) if free else int(np.argmax(sims))
        if free and sims[best] >= config.threshold:
            return best
        if self.count < config.max_speakers and (seconds >= config.min_new_s or not free):
            return self.count  # a new speaker
        return best

    def _add(self, k: int, x: np.ndarray, seconds: float) -> None:
        weight = max(seconds, 0.1)
        if k == self.count:
            dim = len(x)
            sums = self.sums if self.sums.size else np.zeros((0, dim), np.float32)
            self.sums = np.concatenate([sums, (weight * x)[None, :]]).astype(np.float32)
            self.weights = np.append(self.weights, np.float32(weight)).astype(np.float32)
        else:
            self.sums[k] += weight * x
            self.weights[k] += weight

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.savez_compressed(buf, allow_pickle=False, sums=self.sums, weights=self.weights)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, raw: bytes | None) -> OnlineSpeakers:
        if not raw:
            return cls()
        data = np.load(io.BytesIO(raw))
        return cls(data["sums"].astype(np.float32), data["weights"].astype(np.float32))


def rename_to_match(final: list[tuple[float, float, str]], provisional: list[tuple[float, float, str]]
                    ) -> dict[str, str]:
    """New names for the ``final`` speakers: each takes the provisional label it shares the most speech with
    (one-to-one, most shared time first), so that a live session's labels change only where the final
    clustering disagrees; the others get labels not used yet. Turns are (start, end, speaker)."""
    shared: dict[tuple[str, str], float] = {}
    for a, b, f in final:
        for c, d, p in provisional:
            part = min(b, d) - max(a, c)
            if part > 0:
                shared[(f, p)] = shared.get((f, p), 0.0) + part
    out: dict[str, str] = {}
    used: set[str] = set()
    for (f, p), _ in sorted(shared.items(), key=lambda kv: (-kv[1], kv[0])):
        if f not in out and p not in used:
            out[f] = p
            used.add(p)
    taken = used | {p for _, _, p in provisional}
    for f in sorted({f for _, _, f in final} - set(out)):
        if f not in taken:
            out[f] = f
        else:
            n = 0
            while acoustic_speaker(n) in taken:
                n += 1
            out[f] = acoustic_speaker(n)
        taken.add(out[f])
    return out


def refine(embeddings: np.ndarray, seconds: np.ndarray, groups: np.ndarray, online: OnlineSpeakers,
           min_speakers: int | None = None, max_speakers: int | None = None, min_talk_s: float = 1.0,
           rounds: int = 5) -> np.ndarray:
    """The session's final speakers, starting from the online ones: speakers with less than ``min_talk_s`` of
    clean speech are dropped (a voice heard once, briefly), the count is clipped to ``[min_speakers,
    max_speakers]`` (merging the closest speakers, or splitting the widest one), then every embedding is given
    again to the closest speaker (the local speakers of a chunk to different ones) and the speakers recomputed
    from their embeddings, a few rounds. Early utterances, labelled before the voices were well known, are
    corrected; the count found online is kept within the bounds. Returns a speaker index per embedding,
    numbered in order of first appearance."""
    x = _unit(np.asarray(embeddings, np.float32))
    if not len(x):
        return np.zeros(0, int)
    w = np.maximum(np.asarray(seconds, np.float32), 0.1)
    keep = [k for k in range(online.count) if online.weights[k] >= min_talk_s] or (
        [int(np.argmax(online.weights))] if online.count else [])
    centroids = _unit(online.sums[keep]) if keep else x[:1]
    hi = max_speakers or len(x)
    lo = min(min_speakers or 1, len(x))
    while len(centroids) > hi:
        centroids = _merge_closest(centroids)
    for _ in range(rounds):
        while len(centroids) < lo:
            centroids = _split_widest(x, w, assign(x, centroids, groups), centroids)
        labels = assign(x, centroids, groups)
        used = [k for k in range(len(centroids)) if (labels == k).any()]
        fresh = _unit(np.stack([(w[labels == k, None] * x[labels == k]).sum(axis=0) for k in used]))
        if len(fresh) == len(centroids) and np.allclose(fresh, centroids, atol=1e-5):
            break
        centroids = fresh
    labels = assign(x, centroids, groups)
    order = list(dict.fromkeys(labels.tolist()))
    remap = np.full(len(centroids), -1)
    remap[order] = np.arange(len(order))
    return np.asarray(remap[labels], int)


def _merge_closest(centroids: np.ndarray) -> np.ndarray:
    sims = centroids @ centroids.T
    np.fill_diagonal(sims, -np.inf)
    a, b = np.unravel_index(int(np.argmax(sims)), sims.shape)
    merged = _unit(centroids[a] + centroids[b])
    rest = [k for k in range(len(centroids)) if k not in (a, b)]
    return np.concatenate([centroids[rest], merged[None, :]])


def _split_widest(x: np.ndarray, w: np.ndarray, labels: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """One more speaker: the embedding of the largest speaker farthest from its centroid seeds it."""
    talk = np.array([w[labels == k].sum() for k in range(len(centroids))])
    k = int(np.argmax(talk))
    rows = np.flatnonzero(labels == k)
    if len(rows) < 2:
        return np.concatenate([centroids, centroids[k:k + 1]])
    far = rows[int(np.argmin(x[rows] @ centroids[k]))]
    return np.concatenate([centroids, x[far:far + 1]])


def row_groups(window: WindowEmbeddings) -> np.ndarray:
    """Rows describing the same stretch of audio (the local speakers of one segmentation chunk) share a group."""
    _, groups = np.unique(np.round(window.subsegments, 3), axis=0, return_inverse=True)
    return np.asarray(groups, int).reshape(-1)


def row_seconds(window: WindowEmbeddings) -> np.ndarray:
    """Seconds of speech behind each row: its clean speech when the backend measures it, else its length."""
    if window.clean is not None:
        return np.asarray(window.clean, np.float32)
    return (window.subsegments[:, 1] - window.subsegments[:, 0]).astype(np.float32)


def label_window(backend: DiarizationBackend, window: WindowEmbeddings, online: OnlineSpeakers,
                 config: OnlineConfig) -> list[Turn]:
    """Provisional turns of one window of a live stream, updating the online speakers."""
    if not len(window.embeddings):
        return []
    labels = online.assign(window.embeddings, row_seconds(window), row_groups(window), config)
    return backend.window_turns(window, labels, [acoustic_speaker(k) for k in range(online.count)])


def finish_online(backend: DiarizationBackend, windows: list[WindowEmbeddings], online: OnlineSpeakers,
                  provisional: list[tuple[float, float, str]], min_speakers: int | None,
                  max_speakers: int | None) -> Clustering:
    """The final speakers of a live stream (``refine`` from its online speakers), named after the provisional
    labels they share the most speech with."""
    windows = [w for w in windows if len(w.embeddings)]
    if not windows:
        return Clustering([], {})
    embeddings = np.concatenate([w.embeddings for w in windows])
    seconds = np.concatenate([row_seconds(w) for w in windows])
    groups = np.concatenate([row_groups(w) + 100_000 * i for i, w in enumerate(windows)])
    labels = refine(embeddings, seconds, groups, online, min_speakers, max_speakers)
    names = [acoustic_speaker(k) for k in range(int(labels.max()) + 1)]
    turns: list[Turn] = []
    first = 0
    for w in windows:
        turns += backend.window_turns(w, labels[first: first + len(w.embeddings)], names)
        first += len(w.embeddings)
    rename = rename_to_match([(t.start, t.end, t.speaker) for t in turns], provisional)
    turns = join_touching([Turn(t.start, t.end, rename.get(t.speaker, t.speaker)) for t in turns])
    centroids = {rename.get(name, name): embeddings[labels == k].mean(axis=0)
                 for k, name in enumerate(names) if (labels == k).any()}
    return Clustering(sorted(turns, key=lambda t: (t.start, t.end)), centroids)
