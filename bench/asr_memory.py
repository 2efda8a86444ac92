"""Resident memory of the recogniser across repeated batches, in one process (what the asr worker does): batches
of real speech windows of varying lengths (2 to 28 s, as the pipeline's VAD cuts them) are recognised again and
again with the worker's settings (tiny.en, int8, 2 threads, batch 8, beam 5, word timestamps), and the RSS is
read after each batch.

    .venv/bin/python bench/asr_memory.py [--batches 60] [--model tiny.en] [--no-release]

Prints the RSS after loading and warming the model, after each tenth batch, and the medians of the first and the
last quarter of the batches. Without ``--no-release`` the process calls ``release_memory()`` after each batch, as
the worker does when it goes idle (``streams.runtime.memory.IdleRelease``); with it, glibc keeps what it freed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.corpus import long_sources, mono_pcm
from foundation.settings import Settings
from processors.asr.models import ModelRegistry
from processors.asr.transcriber import DecodeOptions, Request, Transcriber
from processors.audio.pcm import to_float
from streams.runtime.memory import release_memory

RATE = 16_000
MB = 1024 * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--no-release", action="store_true")
    args = parser.parse_args()
    a = Settings().asr
    audio = to_float(mono_pcm(long_sources()))
    transcriber = Transcriber(ModelRegistry(a.model_paths, Settings().model_cache), compute_type=a.compute_type,
                              cpu_threads=a.cpu_threads, batch_size=a.batch_size)
    transcriber.warm_up(args.model)
    proc = psutil.Process()
    print(f"model loaded and warm: {proc.memory_info().rss / MB:.0f} MB", flush=True)
    rng = np.random.default_rng(11)
    options = DecodeOptions(model=args.model, beam_size=a.beam_size, word_timestamps=True)
    rss: list[float] = []
    t0 = time.monotonic()
    for n in range(args.batches):
        requests = []
        for _ in range(int(rng.integers(1, a.batch_size + 1))):
            length = int(rng.uniform(2.0, 28.0) * RATE)
            start = int(rng.integers(0, len(audio) - length))
            requests.append(Request(np.ascontiguousarray(audio[start:start + length]), start / RATE, options))
        transcriber.transcribe(requests)
        del requests
        if not args.no_release:
            release_memory()
        rss.append(proc.memory_info().rss / MB)
        if (n + 1) % 10 == 0:
            print(f"batch {n + 1}: {rss[-1]:.0f} MB ({time.monotonic() - t0:.0f} s)", flush=True)
    q = max(1, len(rss) // 4)
    first, last = statistics.median(rss[:q]), statistics.median(rss[-q:])
    print(f"{'no release' if args.no_release else 'release after each batch'}: first quarter {first:.0f} MB, "
          f"last quarter {last:.0f} MB ({last - first:+.0f} MB), peak {max(rss):.0f} MB")


if __name__ == "__main__":
    main()
