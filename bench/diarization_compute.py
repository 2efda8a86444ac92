"""What the overlap backend's per-window work costs, by how it is cut: wall time, CPU time and peak memory of
``OverlapBackend.embed`` on the demo sample, for each number of workers (threads that share a window's
segmentation chunks and embedding batches, ``processors/diarization/parallel.py``) and each run size (pieces per
CAM++ forward pass).

    .venv/bin/python bench/diarization_compute.py [--runs 5] [--workers 1 2] [--run-sizes 1 2 4 8 16]

torch runs single-threaded in every variant, as the diarization worker does. Each variant runs in a process of
its own (peak memory is the process's high-water mark), once untimed to warm the models, then ``--runs`` times;
medians are printed as a Markdown table. The embeddings of every variant are compared with the first's (they
must agree: a batch's pieces get the same embeddings however it is cut).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.diarization_der import demo_sample, machine

MB = 1024


def variant(workers: int, run_size: int, runs: int, out: Path) -> None:
    """One variant, in this process."""
    import numpy as np
    import torch

    from bench.corpus import read_mono
    from processors.diarization.overlap_backend import OverlapBackend

    torch.set_num_threads(1)
    audio = read_mono(demo_sample()).astype(np.float32) / 32768.0
    backend = OverlapBackend(warmup=False, workers=workers)
    backend.embedder.run_size = run_size
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / MB
    first = backend.embed(audio, 0.0)
    walls, cpus = [], []
    for _ in range(runs):
        wall, cpu = time.perf_counter(), time.process_time()
        backend.embed(audio, 0.0)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    out.write_text(json.dumps({
        "wall": statistics.median(walls), "cpu": statistics.median(cpus), "rows": len(first.embeddings),
        "loaded_mb": before, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / MB,
        "embeddings": first.embeddings.tolist()}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--run-sizes", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--variant", type=int, nargs=2, help=argparse.SUPPRESS)  # workers, run size (a child)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        workers, run_size = args.variant
        variant(workers, run_size, args.runs, args.out)
        return
    import numpy as np

    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {machine()}, demo sample (30 s), median of {args.runs}\n")
    print("| workers | pieces per pass | wall | CPU | rows | peak RSS (model loaded) | embeddings vs first |")
    print("|---|---|---|---|---|---|---|")
    reference = None
    for workers in args.workers:
        for run_size in args.run_sizes:
            out = Path(f"/tmp/diarization-compute-{workers}-{run_size}.json")
            subprocess.run([sys.executable, __file__, "--variant", str(workers), str(run_size), "--runs",
                            str(args.runs), "--out", str(out)], check=True)
            r = json.loads(out.read_text())
            embeddings = np.asarray(r["embeddings"])
            reference = embeddings if reference is None else reference
            diff = float(np.abs(embeddings - reference).max())
            print(f"| {workers} | {run_size} | {r['wall']:.2f} s | {r['cpu']:.2f} s | {r['rows']} | "
                  f"{r['peak_mb']:.0f} MB ({r['loaded_mb']:.0f} MB) | max diff {diff:.1e} |", flush=True)


if __name__ == "__main__":
    main()
