"""Where the time goes in a batch job: py-spy profiles of every worker and the per-stage metrics, in one run.

    .venv/bin/python bench/profile_stages.py [--kafka tansu|apache] [--diarize off|auto] [--top 8]

Starts a stack, submits the 7.7-minute recording once to warm it, then again while ``py-spy record`` samples
every pipeline worker and the gateway (100 Hz, idle samples included: a worker's main thread waiting for
CTranslate2's or torch's native threads, or for the broker, is where its wall time goes). For each process: the
wall seconds of its main thread over the job, and the functions that took most of them by self time and by
inclusive time. From the workers' /metrics: batches, mean batch time and the event age (from production to
handling) per stage. Prints JSON for BENCHMARKS.md. Needs py-spy (``pip install -e .[bench]``) and ptrace
rights (root, or ``kernel.yama.ptrace_scope`` 0).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.corpus import write_long_recording
from bench.stack_run import down, machine, stage_delta, stage_metrics, up
from streamscribe.client import Client
from streamscribe.stack.state import read_stack

PROFILED = ("ingest", "vad", "asr", "diarization", "post", "materializer", "gateway")
RATE = 100


def _py_spy() -> str:
    return str(Path(sys.executable).with_name("py-spy"))


def start_profiles(home: Path, out: Path, seconds: int) -> dict[str, tuple[subprocess.Popen[bytes], Path]]:
    """``py-spy record`` (raw collapsed stacks) on each profiled process for up to ``seconds``."""
    children = (read_stack(home) or {})["children"]
    running: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
    for name in PROFILED:
        pid = children.get(name, {}).get("pid")
        if not pid:
            continue
        path = out / f"{name}.txt"
        proc = subprocess.Popen([_py_spy(), "record", "--pid", str(pid), "--rate", str(RATE), "--format", "raw",
                                 "--duration", str(seconds), "--nonblocking", "--idle", "--output", str(path)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        running[name] = (proc, path)
    return running


def stop_profiles(running: dict[str, tuple[subprocess.Popen[bytes], Path]]) -> None:
    for proc, _ in running.values():
        proc.send_signal(2)  # py-spy writes what it has on SIGINT
    for proc, _ in running.values():
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _frame(frame: str) -> str:
    """``function (path/to/module.py:line)`` → ``module.function`` (short enough for a table)."""
    name, _, where = frame.partition(" (")
    module = Path(where.split(":")[0]).stem if where else "?"
    return f"{module}.{name}"


def summarise(path: Path, top: int) -> dict[str, object]:
    """Wall seconds of the main thread, and the functions with most of them by self and by inclusive time
    (other threads, rooted in ``threading``, are left out: health servers and pollers that mostly wait)."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    if path.exists():
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            frames = [f for f in stack.split(";") if f and not f.startswith("process ") and not f.startswith("thread ")]
            if not frames or frames[0].startswith("Thread._bootstrap "):
                continue
            total += n
            own[_frame(frames[-1])] += n
            for name in {_frame(f) for f in frames}:
                inclusive[name] += n
    share = (lambda c: [(k, round(v / total, 3)) for k, v in c.most_common(top)]) if total else (lambda c: [])
    entry = ("cli.", "core.", "workers.run_worker", "runner.StageRunner.run", "?")  # every sample's ancestors
    busiest = Counter({k: v for k, v in inclusive.items() if "runpy" not in k and not k.startswith(entry)})
    return {"wall_seconds": round(total / RATE, 1), "self": share(own), "inclusive": share(busiest)}


async def run_job(url: str, audio: Path, diarize: str) -> float:
    async with Client(url) as client:
        started = time.perf_counter()
        job = await client.submit(audio, diarize=diarize)
        final = await client.wait(job["job_id"], interval=0.05)
        await client.transcript(job["job_id"])
    assert final["status"] == "completed", final
    return round(time.perf_counter() - started, 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kafka", choices=("tansu", "apache"), default="tansu")
    ap.add_argument("--diarize", default="off")
    ap.add_argument("--top", type=int, default=8)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="ss-profile-") as tmp:
        base = Path(tmp)
        audio = base / "recording.wav"
        seconds = write_long_recording(audio)
        home = base / "home"
        url = up(home, args.kafka)
        try:
            warm = asyncio.run(run_job(url, audio, args.diarize))
            before = asyncio.run(stage_metrics(home))
            profiles = base / "profiles"
            profiles.mkdir()
            running = start_profiles(home, profiles, 600)
            time.sleep(1.0)  # py-spy attached
            wall = asyncio.run(run_job(url, audio, args.diarize))
            stop_profiles(running)
            metrics = stage_delta(before, asyncio.run(stage_metrics(home)))
            report = {"date": date.today().isoformat(), "machine": machine(), "kafka": args.kafka,
                      "diarize": args.diarize, "audio_seconds": round(seconds, 1), "warm_run_s": warm,
                      "profiled_run_s": wall, "stages": metrics,
                      "profiles": {name: summarise(path, args.top) for name, (_, path) in running.items()}}
        finally:
            down(home)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
