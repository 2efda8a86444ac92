"""Events per second through the stages with recognition stubbed out, and catch-up after a worker is killed.

    .venv/bin/python bench/stage_throughput.py [--kafka tansu|apache] [--jobs 4] [--runs 3] [--kill vad]

Starts a stack whose asr worker answers every speech window at once (bench/stub_asr: no model, one word per
window; the worker's consuming, decoding, producing and committing are the real code), so what is measured is
the pipeline itself: broker, serialisation, the commit protocol (exactly-once on Apache Kafka), VAD, post and
the materializer's upserts. Each run submits --jobs copies of the 7.7-minute recording at once (no
diarization) and waits for all of them; events per second of a stage = the events its worker handled in the
run (``streamscribe_stage_events_total`` from its /metrics) / the run's wall time. Then --runs more runs in which
the --kill worker is killed with SIGKILL 3 s after the uploads: the supervisor restarts it, it restores its
state and takes up its input from the last commit. Catch-up = that run's wall time - the median of the
uninterrupted runs. Prints JSON for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.corpus import write_long_recording
from bench.stack_run import down, machine, up
from streamscribe.client import Client
from streamscribe.stack.state import read_stack

REPO = Path(__file__).resolve().parents[1]


async def events_by_stage(home: Path) -> dict[str, float]:
    """Events each stage's workers have handled so far (all topics), from their /metrics."""
    info = read_stack(home) or {}
    counts: dict[str, float] = {}
    async with aiohttp.ClientSession() as http:
        for child in info.get("children", {}).values():
            if not child.get("metrics_port"):
                continue
            async with http.get(f"http://127.0.0.1:{child['metrics_port']}/metrics") as resp:
                text = await resp.text()
            for family in text_string_to_metric_families(text):
                if family.name == "streamscribe_stage_events":
                    for sample in family.samples:
                        if sample.name.endswith("_total"):
                            stage = sample.labels["stage"]
                            counts[stage] = counts.get(stage, 0.0) + sample.value
    return counts


async def one_job(client: Client, path: Path) -> str:
    job = await client.submit(path, diarize="off")
    final = await client.wait(job["job_id"], interval=0.1)
    return str(final["status"])


async def batch(url: str, home: Path, path: Path, jobs: int, kill: str | None) -> tuple[float, dict[str, float]]:
    """Submit ``jobs`` jobs at once and wait for all; kill the worker ``kill`` 3 s in. Wall time, events."""
    before = await events_by_stage(home)
    async with Client(url) as client:
        started = time.perf_counter()
        tasks = [asyncio.create_task(one_job(client, path)) for _ in range(jobs)]
        if kill:
            await asyncio.sleep(3)
            pid = int((read_stack(home) or {})["children"][kill]["pid"])
            os.kill(pid, signal.SIGKILL)
        statuses = await asyncio.gather(*tasks)
        wall = time.perf_counter() - started
    assert all(s == "completed" for s in statuses), statuses
    for _ in range(100):  # a restarted worker's counters start at zero: wait for it to answer again
        try:
            after = await events_by_stage(home)
            break
        except aiohttp.ClientError:
            await asyncio.sleep(0.2)
    return wall, {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kafka", choices=("tansu", "apache"), default="tansu")
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--kill", default="vad", help="the worker killed in the catch-up runs")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ss-bench-"))
    audio = work / "long.wav"
    duration = write_long_recording(audio)
    home = work / "home"
    path = os.pathsep.join([str(REPO / "bench" / "stub_asr"), str(REPO), os.environ.get("PYTHONPATH", "")])
    url = up(home, args.kafka, {"STREAMSCRIBE_BENCH_STUB_ASR": "1", "PYTHONPATH": path})
    try:
        asyncio.run(batch(url, home, audio, 1, None))  # warm-up
        runs, killed = [], []
        for _ in range(args.runs):
            runs.append(asyncio.run(batch(url, home, audio, args.jobs, None)))
            print(json.dumps({"run_wall_s": round(runs[-1][0], 2), "events": runs[-1][1]}), flush=True)
        for _ in range(args.runs):
            killed.append(asyncio.run(batch(url, home, audio, args.jobs, args.kill))[0])
            print(json.dumps({"killed_run_wall_s": round(killed[-1], 2)}), flush=True)
    finally:
        down(home)
    walls = [w for w, _ in runs]
    rates = {stage: round(statistics.median(ev[stage] / w for w, ev in runs), 1)
             for stage in sorted(runs[0][1]) if runs[0][1][stage]}
    uninterrupted = statistics.median(walls)
    report = {
        "date": date.today().isoformat(), "machine": machine(), "kafka": args.kafka, "jobs": args.jobs,
        "audio_seconds_per_job": round(duration, 1), "runs": args.runs,
        "wall_s": [round(w, 2) for w in walls],
        "audio_seconds_per_second": round(args.jobs * duration / uninterrupted, 1),
        "events_per_second_median": rates,
        "events_per_run": {k: round(v) for k, v in runs[0][1].items()},
        "killed": args.kill, "killed_wall_s": [round(w, 2) for w in killed],
        "catch_up_s_median": round(statistics.median(killed) - uninterrupted, 2),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
