"""Gateway under load: N concurrent API clients, each with its own key, upload, poll and fetch for a fixed time.

    .venv/bin/python bench/load_gateway.py [--clients 50] [--seconds 60] [--diarize off] [--direct-runs 3]

Starts an embedded stack in a temporary home (``streamscribe up --detach``), creates one API key per client
with the bootstrap admin key (``POST /v1/keys``), then runs the clients for --seconds: each uploads a short real
recording (the 16 LJ Speech reads of ../shared/data/speech/read in rotation, client i starting at read i)
with ``POST /v1/jobs``, polls ``GET /v1/jobs/{id}`` every 0.5 s until the job is done, fetches
``GET /v1/jobs/{id}/transcript`` and starts over. No upload starts after --seconds; jobs in flight then finish
(at most --drain seconds). It records every request's latency per endpoint, every error (a non-2xx answer
other than the expected 409 of a transcript that is not ready, a failed job, an exception, a job that did not
finish), jobs completed and the time from the start of an upload to the transcript in hand. Prints a JSON
report and a Markdown table, stops the stack, and exits non-zero if there was any error. Then, for the
throughput ratio, faster-whisper alone transcribes the same reads one after the other (--direct-runs passes).

The gateway limits each API key to 50 requests/s with a burst of 200 (``AuthSettings``); one key per client
and polling at 2 Hz keep every client far below that, so a 429 here counts as an error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streamscribe.stack.ports import free_port

CLI = [sys.executable, "-m", "streamscribe.cli"]
SHARED = Path(os.environ.get("STREAMSCRIBE_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
READS = SHARED / "data" / "speech" / "read"
POLL_S = 0.5
JOB_TIMEOUT_S = 600.0
UPLOAD, STATUS, TRANSCRIPT = "POST /v1/jobs", "GET /v1/jobs/{id}", "GET /v1/jobs/{id}/transcript"


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    errors: list[str] = field(default_factory=list)
    expected_409: int = 0
    jobs_started: int = 0
    jobs_completed: int = 0
    audio_seconds: float = 0.0
    turnaround: list[float] = field(default_factory=list)

    def error(self, what: str) -> None:
        self.errors.append(what)
        if len(self.errors) <= 20:
            print(f"error: {what}", file=sys.stderr)


async def request(session: aiohttp.ClientSession, stats: Stats, endpoint: str, method: str, url: str,
                  **kwargs: Any) -> tuple[int, Any]:
    started = time.perf_counter()
    async with session.request(method, url, **kwargs) as resp:
        body = await resp.read()
        stats.latencies[endpoint].append(time.perf_counter() - started)
        stats.statuses[endpoint][resp.status] += 1
        try:
            return resp.status, json.loads(body) if body else None
        except ValueError:
            return resp.status, body.decode(errors="replace")


async def one_job(session: aiohttp.ClientSession, url: str, stats: Stats, path: Path, audio: bytes,
                  diarize: str) -> None:
    form = aiohttp.FormData()
    form.add_field("diarize", diarize)
    form.add_field("file", audio, filename=path.name, content_type="audio/wav")
    started = time.perf_counter()
    status, body = await request(session, stats, UPLOAD, "POST", f"{url}/v1/jobs", data=form)
    if status != 202:
        stats.error(f"{UPLOAD} -> {status}: {str(body)[:200]}")
        return
    stats.jobs_started += 1
    job_id = body["job_id"]
    while True:
        await asyncio.sleep(POLL_S)
        status, job = await request(session, stats, STATUS, "GET", f"{url}/v1/jobs/{job_id}")
        if status != 200:
            stats.error(f"{STATUS} -> {status}: {str(job)[:200]}")
            return
        if job["status"] in ("completed", "failed", "cancelled"):
            break
        if time.perf_counter() - started > JOB_TIMEOUT_S:
            stats.error(f"job {job_id} still {job['status']} after {JOB_TIMEOUT_S:.0f} s")
            return
    if job["status"] != "completed":
        stats.error(f"job {job_id} ({path.name}) {job['status']}: {job.get('error')}")
        return
    while True:
        status, transcript = await request(session, stats, TRANSCRIPT, "GET", f"{url}/v1/jobs/{job_id}/transcript")
        if status != 409:
            break
        stats.expected_409 += 1  # not ready yet: the documented flow is to ask again
        await asyncio.sleep(POLL_S)
    if status != 200:
        stats.error(f"{TRANSCRIPT} -> {status}: {str(transcript)[:200]}")
        return
    if not transcript.get("text", "").strip():
        stats.error(f"job {job_id} ({path.name}) has an empty transcript")
        return
    stats.turnaround.append(time.perf_counter() - started)
    stats.jobs_completed += 1
    stats.audio_seconds += transcript.get("duration") or 0.0


async def client(index: int, url: str, key: str, files: list[tuple[Path, bytes]], stop_at: float, stats: Stats,
                 diarize: str) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=120)) as session:
        turn = index
        while time.perf_counter() < stop_at:
            path, audio = files[turn % len(files)]
            turn += 1
            try:
                await one_job(session, url, stats, path, audio, diarize)
            except Exception as exc:  # every exception is an error of the run
                stats.error(f"client {index}: {type(exc).__name__}: {exc}")
                await asyncio.sleep(POLL_S)


async def create_keys(url: str, admin_key: str, count: int) -> list[str]:
    keys = []
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {admin_key}"}) as session:
        for i in range(count):
            async with session.post(f"{url}/v1/keys", json={"name": f"load-client-{i:02d}"}) as resp:
                body = await resp.json()
                if resp.status != 201:
                    raise RuntimeError(f"POST /v1/keys -> {resp.status}: {body}")
                keys.append(str(body["key"]))
    return keys


async def run(url: str, admin_key: str, clients: int, seconds: float, drain: float,
              diarize: str) -> tuple[Stats, float]:
    files = [(p, p.read_bytes()) for p in sorted(READS.glob("LJ*.wav"))]
    if not files:
        raise SystemExit(f"no LJ*.wav under {READS} (set STREAMSCRIBE_SHARED)")
    keys = await create_keys(url, admin_key, clients)
    # warm-up: one job through every stage before the clock starts (first model use, page cache)
    warm = Stats()
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {keys[0]}"}) as session:
        await one_job(session, url, warm, *files[0], diarize)
    if warm.errors:
        raise RuntimeError(f"warm-up failed: {warm.errors}")
    stats = Stats()
    started = time.perf_counter()
    tasks = [asyncio.create_task(client(i, url, keys[i], files, started + seconds, stats, diarize))
             for i in range(clients)]
    _, pending = await asyncio.wait(tasks, timeout=seconds + drain)
    for task in pending:
        task.cancel()
        stats.error("a client was still busy when the drain time ran out")
    await asyncio.gather(*pending, return_exceptions=True)
    return stats, time.perf_counter() - started


def direct_throughput(runs: int) -> dict[str, float]:
    """faster-whisper itself on the same reads, one after the other, model loaded once, same model and
    settings as the asr worker (tiny.en, int8, 2 threads, beam 5, word timestamps): seconds of audio per
    second of wall time, median of ``runs`` passes."""
    from faster_whisper import WhisperModel

    from processors.asr.models import ModelRegistry

    model = WhisperModel(str(ModelRegistry().get("tiny.en").path), device="cpu", compute_type="int8", cpu_threads=2)
    files = sorted(READS.glob("LJ*.wav"))
    audio, passes = 0.0, []
    for _ in range(runs):
        started, audio = time.perf_counter(), 0.0
        for path in files:
            segments, info = model.transcribe(str(path), beam_size=5, word_timestamps=True)
            list(segments)
            audio += info.duration
        passes.append(time.perf_counter() - started)
    wall = statistics.median(passes)
    return {"audio_s": round(audio, 1), "wall_s": round(wall, 2), "x_realtime": round(audio / wall, 2)}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def machine() -> str:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return f"{platform.machine()}, {cpu}, {len(os.sched_getaffinity(0))} cores{mem}"


def report(stats: Stats, wall: float, args: argparse.Namespace) -> dict[str, Any]:
    endpoints = {}
    for name in (UPLOAD, STATUS, TRANSCRIPT):
        lat = stats.latencies.get(name, [])
        endpoints[name] = {
            "requests": len(lat), "statuses": dict(sorted(stats.statuses[name].items())),
            **({f"p{q}_ms": round(percentile(lat, q) * 1000, 1) for q in (50, 95, 99)} if lat else {}),
            "max_ms": round(max(lat) * 1000, 1) if lat else None,
        }
    return {
        "date": date.today().isoformat(), "machine": machine(), "clients": args.clients, "seconds": args.seconds,
        "diarize": args.diarize, "wall_s": round(wall, 1), "errors": len(stats.errors),
        "error_samples": stats.errors[:10], "expected_409": stats.expected_409,
        "jobs_started": stats.jobs_started, "jobs_completed": stats.jobs_completed,
        "audio_s": round(stats.audio_seconds, 1),
        "turnaround_s": {"p50": round(statistics.median(stats.turnaround), 2),
                         "p95": round(percentile(stats.turnaround, 95), 2),
                         "max": round(max(stats.turnaround), 2)} if stats.turnaround else None,
        "requests_per_s": round(sum(len(v) for v in stats.latencies.values()) / wall, 1),
        "x_realtime": round(stats.audio_seconds / wall, 2),
        "endpoints": endpoints,
    }


def markdown(rep: dict[str, Any]) -> str:
    lines = ["| endpoint | requests | non-2xx | p50 | p95 | p99 | max |", "|---|---|---|---|---|---|---|"]
    for name, e in rep["endpoints"].items():
        bad = sum(n for s, n in e["statuses"].items() if not 200 <= int(s) < 300)
        if not e["requests"]:
            lines.append(f"| `{name}` | 0 | 0 | | | | |")
            continue
        lines.append(f"| `{name}` | {e['requests']} | {bad} | {e['p50_ms']:.0f} ms | {e['p95_ms']:.0f} ms | "
                     f"{e['p99_ms']:.0f} ms | {e['max_ms']:.0f} ms |")
    t = rep["turnaround_s"] or {"p50": float("nan"), "p95": float("nan"), "max": float("nan")}
    lines += ["", "| clients | load time | wall (with drain) | jobs completed | audio transcribed | errors | "
                  "upload → transcript p50 | p95 | requests/s |",
              "|---|---|---|---|---|---|---|---|---|",
              f"| {rep['clients']} | {rep['seconds']:.0f} s | {rep['wall_s']:.0f} s | {rep['jobs_completed']} | "
              f"{rep['audio_s'] / 60:.1f} min | **{rep['errors']}** | {t['p50']:.2f} s | {t['p95']:.2f} s | "
              f"{rep['requests_per_s']:.1f} |"]
    if "direct" in rep:
        d = rep["direct"]
        lines += ["", f"throughput: pipeline {rep['x_realtime']:.1f}x real time (audio transcribed / wall time "
                      f"with drain), faster-whisper alone on the same reads {d['x_realtime']:.1f}x "
                      f"({d['audio_s']:.0f} s of audio in {d['wall_s']:.1f} s); ratio {rep['throughput_ratio']:.2f}"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0, help="how long new uploads start")
    parser.add_argument("--drain", type=float, default=600.0, help="at most this long for jobs in flight after")
    parser.add_argument("--diarize", default="off", choices=["off", "auto", "acoustic"])
    parser.add_argument("--direct-runs", type=int, default=3,
                        help="passes of faster-whisper alone over the same reads, for the throughput ratio (0: skip)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ss-load-"))
    home, port = work / "home", free_port()
    subprocess.run([*CLI, "up", "--detach", "--home", str(home), "--port", str(port)], check=True)
    try:
        admin_key = json.loads((home / "secrets" / "credentials.json").read_text())["api_key"]
        stats, wall = asyncio.run(run(f"http://127.0.0.1:{port}", admin_key, args.clients, args.seconds,
                                      args.drain, args.diarize))
    finally:
        subprocess.run([*CLI, "down", "--home", str(home)], check=True)
    rep = report(stats, wall, args)
    if args.direct_runs:
        rep["direct"] = direct_throughput(args.direct_runs)
        rep["throughput_ratio"] = round(rep["x_realtime"] / rep["direct"]["x_realtime"], 2)
    print(json.dumps(rep, indent=2))
    print(markdown(rep))
    if stats.errors:
        sys.exit(1)


if __name__ == "__main__":
    main()
