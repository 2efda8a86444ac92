"""Soak: repeated jobs for an hour (or ``--minutes``), sampling the memory of every process of the embedded stack,
and whether each stays flat once warm.

    .venv/bin/python bench/soak.py [--minutes 60] [--concurrency 2] [--interval 10] [--warmup 0.25] [--out F]

Starts a stack (``streamscribe up --detach`` in a temporary home), then keeps ``--concurrency`` jobs in flight:
a six-minute recording of real speech (read, meeting and call audio laid end to end, acoustic speakers) and a
two-party stereo call (channel speakers), in turn, until the time is up. Every ``--interval`` seconds it records
the resident memory of each process named in ``stack.json``: every stage worker, the gateway, maintenance, the
broker (Tansu), SeaweedFS, and PostgreSQL (the postmaster and all its backends, as proportional set size: their
shared buffers counted once). After the first ``--warmup`` of the run, a process is *flat* when it grew by less
than max(25 MB, 5 %) between the median of the first and the last quarter of the samples that follow, and its
least-squares slope is reported in MB per hour. Prints a Markdown table; ``--out`` keeps every sample as JSON.

The machine may be shared with other work: jobs then take longer, and fewer run in the hour; memory is what the
benchmark measures, and it does not depend on speed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.corpus import SPEECH, write_long_recording
from connectors.ingest.decode import decode_chunks
from streamscribe.client import ApiError, Client
from streamscribe.stack.ports import free_port
from streamscribe.stack.state import read_stack

CLI = [sys.executable, "-m", "streamscribe.cli"]
MB = 1024 * 1024


def _stereo_call(out: Path) -> None:
    """Two read passages, one per channel, alternating: a two-party call of about a minute (16 kHz stereo)."""
    reads = sorted((SPEECH / "read").glob("LJ*.wav"))[:6]
    parts = [np.concatenate([c.frames[:, 0] for c in decode_chunks(f)]) for f in reads]
    total = sum(len(p) for p in parts)
    audio = np.zeros((total, 2), np.int16)
    at = 0
    for i, p in enumerate(parts):
        audio[at:at + len(p), i % 2] = p
        at += len(p)
    with wave.open(str(out), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(audio.tobytes())


def _processes(home: Path) -> dict[str, list[int]]:
    """name -> pids: each worker, the gateway, maintenance; broker, objectstore; postgres (its whole tree)."""
    stack = read_stack(home) or {}
    out: dict[str, list[int]] = {}
    for name, child in {**stack.get("children", {}), **stack.get("infra", {})}.items():
        pid = child.get("pid")
        if not pid:
            continue
        pids = [pid]
        if name == "postgres":
            with contextlib.suppress(psutil.Error):
                pids += [p.pid for p in psutil.Process(pid).children(recursive=True)]
        out[name] = pids
    return out


def _memory(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in bytes."""
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1]) * 1024
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1]) * 1024
    except OSError:
        pass
    return rss, pss


@dataclass
class Sampler:
    home: Path
    interval: float
    samples: list[dict[str, Any]] = field(default_factory=list)
    jobs_done: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        started = time.monotonic()
        while not self.stop.is_set():
            self.sample(time.monotonic() - started)
            self.stop.wait(self.interval)

    def sample(self, t: float = 0.0) -> None:
        """One reading of every process's memory."""
        row: dict[str, Any] = {"t": round(t, 1), "jobs": self.jobs_done}
        for name, pids in _processes(self.home).items():
            mems = [_memory(p) for p in pids]
            # PostgreSQL: proportional set size over its processes (shared buffers counted once)
            row[name] = round((sum(m[1] for m in mems) if name == "postgres" else mems[0][0]) / MB, 1)
        self.samples.append(row)


def verdict(values: list[tuple[float, float]]) -> dict[str, Any]:
    """Growth after warm-up: first- and last-quarter medians, the slope (MB/h), flat or not."""
    times = [t for t, _ in values]
    mem = [v for _, v in values]
    q = max(1, len(mem) // 4)
    first, last = statistics.median(mem[:q]), statistics.median(mem[-q:])
    slope = float(np.polyfit(np.array(times) / 3600, mem, 1)[0]) if len(mem) > 2 else 0.0
    growth = last - first
    return {"warm_mb": round(first, 1), "end_mb": round(last, 1), "peak_mb": round(max(mem), 1),
            "growth_mb": round(growth, 1), "slope_mb_per_h": round(slope, 1),
            "flat": growth < max(25.0, 0.05 * first)}


async def _load(url: str, files: list[Path], concurrency: int, until: float, sampler: Sampler,
                took: list[float]) -> None:
    """Keep ``concurrency`` jobs in flight until ``until``, each job's seconds into ``took``. A gateway that does
    not answer for a moment (a loaded machine: 504) is asked again; a job that does not complete stops the run."""
    turn = 0

    async def wait(client: Client, job_id: str) -> dict[str, Any]:
        while True:
            try:
                return await client.wait(job_id, interval=1.0, timeout=3600)
            except (ApiError, aiohttp.ClientError, TimeoutError) as exc:
                if isinstance(exc, ApiError) and exc.status < 500:
                    raise
                await asyncio.sleep(5)

    async def worker() -> None:
        nonlocal turn
        async with Client(url) as client:
            while time.monotonic() < until:
                path = files[turn % len(files)]
                turn += 1
                t0 = time.monotonic()
                job = await client.submit(path)
                final = await wait(client, job["job_id"])
                if final["status"] != "completed":
                    raise RuntimeError(f"job {job['job_id']} ended {final['status']}: {final.get('error')}")
                took.append(time.monotonic() - t0)
                sampler.jobs_done += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--interval", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=0.25, help="share of the run before growth is judged")
    parser.add_argument("--out", type=Path, default=None, help="write every sample here (JSON)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp:
        home, port = Path(tmp), free_port()
        files = [home / "long.wav", home / "call.wav"]
        write_long_recording(files[0])
        _stereo_call(files[1])
        env = {**os.environ, "STREAMSCRIBE_HOME": tmp}
        subprocess.run([*CLI, "up", "--detach", "--home", tmp, "--port", str(port), "--timeout", "900"], check=True,
                       env=env)
        url = f"http://127.0.0.1:{port}"
        os.environ["STREAMSCRIBE_API_KEY"] = json.loads((home / "secrets" / "credentials.json").read_text())["api_key"]
        sampler = Sampler(home, args.interval)
        thread = threading.Thread(target=sampler.run, daemon=True)
        thread.start()
        took: list[float] = []
        try:
            asyncio.run(_load(url, files, args.concurrency, time.monotonic() + args.minutes * 60, sampler, took))
        finally:  # the samples are reported whatever ended the run
            sampler.stop.set()
            thread.join()
            subprocess.run([*CLI, "down", "--home", tmp], env=env, capture_output=True)
            report(sampler.samples, took, args)


def report(samples: list[dict[str, Any]], took: list[float], args: argparse.Namespace) -> None:
    names = sorted({k for s in samples for k in s if k not in ("t", "jobs")})
    end = samples[-1]["t"] if samples else 0.0
    warm = [s for s in samples if s["t"] >= end * args.warmup]
    print(f"{len(took)} jobs in {end / 60:.1f} min (median {statistics.median(took) if took else 0:.0f} s each), "
          f"{len(samples)} samples every {args.interval:.0f} s; judged after the first {args.warmup:.0%}")
    print("| process | start MB | warm MB | end MB | peak MB | growth MB | slope MB/h | flat |")
    print("|---|---|---|---|---|---|---|---|")
    results = {}
    for name in names:
        values = [(s["t"], s[name]) for s in warm if name in s]
        if len(values) < 4:
            continue
        v = results[name] = {"start_mb": next(s[name] for s in samples if name in s), **verdict(values)}
        print(f"| {name} | {v['start_mb']} | {v['warm_mb']} | {v['end_mb']} | {v['peak_mb']} | {v['growth_mb']} "
              f"| {v['slope_mb_per_h']} | {'yes' if v['flat'] else 'NO'} |")
    if args.out:
        args.out.write_text(json.dumps({"samples": samples, "jobs_s": took, "results": results}, indent=1))


if __name__ == "__main__":
    main()
