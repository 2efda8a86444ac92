"""How the end-of-stream clustering of speakers grows with the stream's length (issue 15, target 6): the time of
``processors.diarization.clustering.cluster_embeddings`` for the embeddings of streams of several lengths.

    .venv/bin/python bench/clustering_growth.py [--hours 0.125 1 4 16] [--runs 5] [--per-hour 4700]

The embeddings are drawn around a few speakers' voices (unit CAM++-sized vectors, 192 dimensions, noise that
puts an embedding at a cosine of about 0.9 from its speaker, 0.8 from another of the same speaker), as many per
hour as the overlap backend makes of meeting audio (``--per-hour``: a 10 s chunk every second, one to three local
speakers each), two in three reliable, in chunks of one or two. Linear growth gives a constant time per hour; a
dendrogram over every embedding would grow with the square. Medians of ``--runs``, after one untimed run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.diarization_der import machine
from processors.diarization.clustering import ClusteringConfig, cluster_embeddings, unit
from processors.diarization.speaker_embedding import DIMENSION


def stream(hours: float, per_hour: int, speakers: int, rng: np.random.Generator
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(embeddings, chunk of each, reliable) of a stream of ``hours``, in time order."""
    n = int(hours * per_hour)
    voices = unit(rng.standard_normal((speakers, DIMENSION)))
    who = rng.integers(0, speakers, n)
    noise = unit(rng.standard_normal((n, DIMENSION)))
    embeddings = unit(voices[who] + 0.5 * noise)  # cos(voice, embedding) about 0.9, between two about 0.8
    groups = np.cumsum(rng.integers(0, 2, n))  # runs of one or two rows share a chunk
    reliable = rng.random(n) < 2 / 3
    return embeddings.astype(np.float32), groups, reliable


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hours", type=float, nargs="+", default=[0.125, 1.0, 4.0, 16.0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--per-hour", type=int, default=4700)
    parser.add_argument("--speakers", type=int, default=4)
    args = parser.parse_args()
    print(datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), machine())
    config = ClusteringConfig()
    rows = []
    for hours in args.hours:
        embeddings, groups, reliable = stream(hours, args.per_hour, args.speakers, np.random.default_rng(0))
        cluster_embeddings(embeddings, groups, reliable, config)  # untimed
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            found = cluster_embeddings(embeddings, groups, reliable, config)
            times.append(time.perf_counter() - start)
        median = statistics.median(times)
        rows.append((hours, len(embeddings), found.representatives, len(found.centroids), median))
    base = rows[0][4] / rows[0][0]
    print("\n| audio | embeddings | dendrogram over | speakers | clustering (median) | s per hour | vs shortest |")
    print("|---|---|---|---|---|---|---|")
    for hours, n, reps, k, median in rows:
        print(f"| {hours:g} h | {n} | {reps} | {k} | {median * 1000:.0f} ms | {median / hours:.3f} | "
              f"{median / hours / base:.2f} |")


if __name__ == "__main__":
    main()
