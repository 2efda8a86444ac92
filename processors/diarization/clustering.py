"""Cluster local-speaker embeddings into the speakers of a whole stream, honouring a speaker count.

In the style of pyannote's agglomerative clustering step, with a bound on cost:

1. Only reliable embeddings (enough clean speech behind them) shape the clusters. If there are more than
   ``max_representatives`` of them, an evenly spaced (in time) subset of that size is used, so the
   quadratic part (the dendrogram) has a fixed size however long the stream is.
2. A dendrogram (centroid linkage on unit-length embeddings) is cut at ``threshold``. Clusters with fewer
   than ``min_cluster_size`` members are too small to be a speaker of their own; the large ones are the
   estimated speaker count, which is then clipped to ``[min_speakers, max_speakers]`` (an exact count is
   ``min == max``). When the count changes, the dendrogram is cut again where it yields that many large
   clusters.
3. Every embedding, reliable or not, goes to the most similar speaker centroid, with the constraint that
   the local speakers of one chunk are different people (an assignment problem per chunk, at most three
   rows each). This part is linear in the number of embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.optimize import linear_sum_assignment


@dataclass(frozen=True)
class ClusteringConfig:
    # Cut height of the dendrogram, as a Euclidean distance between unit vectors (cosine distance = d^2 / 2).
    threshold: float = 0.7
    # A cluster smaller than this (or than a tenth of the embeddings, for short streams) is not a speaker.
    min_cluster_size: int = 12
    max_representatives: int = 1000


@dataclass
class SpeakerClusters:
    labels: np.ndarray  # int (n,) speaker index of every embedding, 0 .. k-1 in order of first appearance
    centroids: np.ndarray  # float32 (k, dim) unit-length mean of each speaker's reliable embeddings
    representatives: int  # embeddings the dendrogram was built on (<= max_representatives)


def unit(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


def cluster_embeddings(embeddings: np.ndarray, groups: np.ndarray, reliable: np.ndarray,
                       config: ClusteringConfig, min_speakers: int | None = None,
                       max_speakers: int | None = None) -> SpeakerClusters:
    """``groups[i]`` is the chunk of embedding ``i`` (embeddings of one chunk are different speakers);
    ``reliable[i]`` says whether it may shape the clusters. Rows are expected in time order."""
    n = len(embeddings)
    if min_speakers is not None and max_speakers is not None and min_speakers > max_speakers:
        raise ValueError(f"min_speakers ({min_speakers}) is above max_speakers ({max_speakers})")
    if n == 0:
        return SpeakerClusters(np.zeros(0, int), np.zeros((0, embeddings.shape[1]), np.float32), 0)
    x = unit(embeddings)
    train = np.flatnonzero(reliable)
    if len(train) < 2:
        train = np.arange(n)
    if len(train) > config.max_representatives:
        train = train[np.linspace(0, len(train) - 1, config.max_representatives).round().astype(int)]
    members = _partition(x[train], config, min_speakers, max_speakers)
    centroids = unit(np.stack([x[train][members == k].mean(axis=0) for k in range(members.max() + 1)]))
    labels = assign(x, centroids, groups)
    # speakers numbered in order of first appearance; a centroid no embedding chose is dropped
    order = list(dict.fromkeys(labels.tolist()))
    remap = np.full(len(centroids), -1)
    remap[order] = np.arange(len(order))
    return SpeakerClusters(remap[labels], centroids[order], len(train))


def _partition(x: np.ndarray, config: ClusteringConfig, min_speakers: int | None,
               max_speakers: int | None) -> np.ndarray:
    """Cluster index (0 .. k-1, only large clusters) for each row of ``x``; small clusters join the
    closest large one."""
    n = len(x)
    if n == 1:
        return np.zeros(1, int)
    lo = max(1, min(min_speakers or 1, n))
    hi = max(lo, min(max_speakers or n, n))
    tree = linkage(x, method="centroid", metric="euclidean")
    labels = fcluster(tree, t=config.threshold, criterion="distance") - 1
    # small streams have few embeddings per speaker; a required count must stay reachable
    size = max(1, min(config.min_cluster_size, round(0.1 * n), n // (2 * lo)))
    found = _large(labels, size)
    k = int(np.clip(len(found), lo, hi))
    if k != len(found):
        labels, found = _cut_into(tree, n, k, size)
    return _join_small(x, labels, found)


def _large(labels: np.ndarray, size: int) -> np.ndarray:
    ids, counts = np.unique(labels, return_counts=True)
    large = ids[counts >= size]
    return large if len(large) else ids[np.argmax(counts)][None]


def _cut_into(tree: np.ndarray, n: int, k: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The coarsest cut of the dendrogram with ``k`` large clusters (or exactly ``k`` clusters if none).

    Centroid linkage can merge at a lower height than an earlier merge, so cuts are made by merge order
    (heights replaced by the merge index, as pyannote does): cutting after merge ``i`` leaves ``n - i``
    clusters exactly."""
    ordered = tree.copy()
    ordered[:, 2] = np.arange(n - 1)
    for m in range(k, min(n, 4 * k + 20) + 1):
        labels = fcluster(ordered, t=m, criterion="maxclust") - 1
        found = _large(labels, size)
        if len(found) == k:
            return labels, found
        if len(found) > k:
            break
    labels = fcluster(ordered, t=k, criterion="maxclust") - 1
    return labels, np.unique(labels)


def _join_small(x: np.ndarray, labels: np.ndarray, large: np.ndarray) -> np.ndarray:
    centroids = unit(np.stack([x[labels == c].mean(axis=0) for c in large]))
    out = np.searchsorted(large, labels)
    small = ~np.isin(labels, large)
    if small.any():
        out[small] = np.argmax(x[small] @ centroids.T, axis=1)
    return out


def assign(x: np.ndarray, centroids: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Most similar centroid per row, the rows of one group going to different centroids where possible."""
    sims = x @ centroids.T
    labels = np.argmax(sims, axis=1)
    if len(centroids) < 2:
        return labels
    order = np.argsort(groups, kind="stable")
    bounds = np.flatnonzero(np.diff(groups[order])) + 1
    for rows in np.split(order, bounds):
        if len(rows) < 2 or len(set(labels[rows].tolist())) == len(rows):
            continue
        r, c = linear_sum_assignment(sims[rows], maximize=True)
        labels[rows[r]] = c  # rows beyond the number of speakers keep their closest speaker
    return labels
