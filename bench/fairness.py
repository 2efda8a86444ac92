"""Fairness (issue 15, target 4): short jobs beside a long recording in the same lane, against the same short
jobs on an idle stack, and the long job's time alone against its time with the short ones beside it.

    .venv/bin/python bench/fairness.py [--minutes 60] [--shorts 20] [--runs 3] [--home DIR | --kafka tansu]

Starts a stack (``streamscribe up --detach`` in a temporary home; or uses the one in ``--home``) and, through
the REST API as users do (``diarize=off``, the normal lane), per run:
1. idle: ``--shorts`` short jobs (LJ Speech reads, 2-10 s each) one after another; each one's time from upload
   to completed;
2. alone: the long recording (the shared speech laid end to end to ``--minutes``), upload to completed;
3. beside: the long recording again, and once it is being recognised (its progress moved), the same short
   jobs one after another while it runs; each short job's time, and the long one's.
Prints the medians over ``--runs`` and the ratios: short beside / short idle (target <= 3) and long beside /
long alone (target: no more than the short jobs' share of the work), with the machine and the date.
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
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.corpus import SPEECH, write_repeated_recording
from bench.stack_run import down, machine, up
from streamscribe.client import Client
from streamscribe.stack.state import read_stack


async def one(client: Client, path: Path) -> float:
    started = time.perf_counter()
    job = await client.submit(path, diarize="off")
    final = await client.wait(job["job_id"], interval=0.05, timeout=7200)
    if final["status"] != "completed":
        raise RuntimeError(f"{path.name}: {final}")
    return time.perf_counter() - started


async def shorts_one_by_one(client: Client, files: list[Path],
                            running: asyncio.Task[float] | None = None) -> list[float]:
    times = []
    for path in files:
        if running is not None and running.done():
            break  # only what ran beside the long job counts
        times.append(await one(client, path))
    return times


async def beside(client: Client, long_path: Path, files: list[Path]) -> tuple[float, list[float]]:
    started = time.perf_counter()
    job = await client.submit(long_path, diarize="off")

    async def finished() -> float:
        final = await client.wait(job["job_id"], interval=0.2, timeout=7200)
        if final["status"] != "completed":
            raise RuntimeError(f"long job: {final}")
        return time.perf_counter() - started

    running = asyncio.create_task(finished())
    while not (await client.job(job["job_id"])).get("progress"):  # wait until it is being recognised
        await asyncio.sleep(0.2)
    shorts = await shorts_one_by_one(client, files, running)
    return await running, shorts


async def run(url: str, long_path: Path, files: list[Path], runs: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"short_idle": [], "short_beside": [], "long_alone": [], "long_beside": [],
                                   "shorts_beside_count": []}
    async with Client(url) as client:
        await one(client, files[0])  # warm-up
        for i in range(runs):
            idle = await shorts_one_by_one(client, files)
            alone = await one(client, long_path)
            long_time, near = await beside(client, long_path, files)
            out["short_idle"].append(statistics.median(idle))
            out["long_alone"].append(alone)
            out["long_beside"].append(long_time)
            out["short_beside"].append(statistics.median(near) if near else float("nan"))
            out["shorts_beside_count"].append(len(near))
            print(f"run {i + 1}: short idle {statistics.median(idle):.2f} s, beside {out['short_beside'][-1]:.2f} s "
                  f"({len(near)} jobs); long alone {alone:.1f} s, with the short ones {long_time:.1f} s", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=60.0, help="length of the long recording")
    parser.add_argument("--shorts", type=int, default=20, help="short jobs per phase")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--home", type=Path, help="use the stack running in this home (else start one)")
    parser.add_argument("--kafka", default="tansu")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="streamscribe-fairness-"))
    long_path = work / "long.wav"
    seconds = write_repeated_recording(long_path, args.minutes)
    reads = sorted((SPEECH / "read").glob("LJ*.wav"))
    files = [reads[i % len(reads)] for i in range(args.shorts)]
    home = args.home or work / "home"
    if args.home is None:
        try:
            url = up(home, args.kafka)
        except Exception:
            with contextlib.suppress(subprocess.CalledProcessError):
                down(home)  # what did start is stopped
            raise
    else:
        stack = read_stack(home)
        if stack is None:
            raise SystemExit(f"no stack is running in {home}")
        url = str(stack["gateway_url"])
        os.environ["STREAMSCRIBE_API_KEY"] = json.loads((home / "secrets" / "credentials.json").read_text())["api_key"]
    try:
        res = asyncio.run(run(url, long_path, files, args.runs))
    finally:
        if args.home is None:
            down(home)
    med = {k: statistics.median(v) for k, v in res.items()}
    print(f"# fairness, {datetime.now(UTC).isoformat(timespec='seconds')}; {machine()}")
    print(f"long recording {seconds / 60:.1f} min, {args.shorts} short jobs per phase, medians of {args.runs} runs")
    print(f"short job, idle stack:        {med['short_idle']:.2f} s")
    print(f"short job, beside the long:   {med['short_beside']:.2f} s  ({med['shorts_beside_count']:.0f} ran beside)")
    print(f"ratio:                        {med['short_beside'] / med['short_idle']:.2f}x  (target <= 3x)")
    print(f"long job alone:               {med['long_alone']:.1f} s")
    print(f"long job with short ones:     {med['long_beside']:.1f} s  "
          f"({med['long_beside'] / med['long_alone']:.2f}x)")


if __name__ == "__main__":
    main()
