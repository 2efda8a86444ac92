"""Cost growth with length (issue 15, target 6): one recording of each length through the embedded stack, upload
to completed transcript, and the peak memory of every process while it ran.

    .venv/bin/python bench/growth.py [--minutes 7.7 60 240] [--diarize off|auto] [--out F]

Recordings: the shared speech (``bench/corpus.py``, ``long_sources``: LJ Speech reads, AMI meeting excerpts, a
phone call; 7.7 minutes) laid end to end to each length (``write_repeated_recording``), 16 kHz mono WAV. One
stack (``streamscribe up`` in a temporary home), one job at a time, shortest first, after an untimed warm-up job
of the shortest (the workers load their models at their first stream). Per length: wall seconds from the start
of the upload to the completed transcript, seconds per hour of audio and its ratio to the shortest's (linear
growth gives 1.0; the target is within 10 %), the job's segment count, and the peak resident memory of every
process of the stack (each worker, the gateway, maintenance, the broker, the object store; PostgreSQL as the
proportional set size of all its processes) sampled every 2 s while the job ran, and once more 10 s after it
completed (what each process keeps once idle).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.corpus import write_long_recording, write_repeated_recording
from bench.diarization_der import machine
from bench.soak import CLI, Sampler
from streamscribe.client import Client
from streamscribe.stack.ports import free_port


async def transcribe(url: str, path: Path, diarize: str) -> tuple[float, dict[str, Any]]:
    async with Client(url) as client:
        t0 = time.monotonic()
        job = await client.submit(path, diarize=diarize)
        final = await client.wait(job["job_id"], interval=1.0, timeout=6 * 3600)
        took = time.monotonic() - t0
        if final["status"] != "completed":
            raise RuntimeError(f"{path.name}: {final['status']} {final.get('error')}")
        transcript = await client.transcript(job["job_id"])
        return took, {"segments": len(transcript["segments"]),
                      "speakers": len({s.get("speaker") for s in transcript["segments"]} - {None})}


def peaks(samples: list[dict[str, Any]]) -> dict[str, float]:
    names = {k for s in samples for k in s if k not in ("t", "jobs")}
    return {n: max(s[n] for s in samples if n in s) for n in sorted(names)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[7.7, 60.0, 240.0])
    parser.add_argument("--diarize", default="off")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    lengths = sorted(args.minutes)
    with tempfile.TemporaryDirectory(prefix="bench-growth-") as tmp:
        home, port = Path(tmp), free_port()
        files: list[tuple[Path, float]] = []
        for minutes in lengths:
            path = home / f"speech-{minutes:g}min.wav"
            seconds = (write_long_recording(path) if minutes <= 7.7
                       else write_repeated_recording(path, minutes))
            files.append((path, seconds))
        env = {**os.environ, "STREAMSCRIBE_HOME": tmp}
        subprocess.run([*CLI, "up", "--detach", "--home", tmp, "--port", str(port), "--timeout", "900"], check=True,
                       env=env)
        url = f"http://127.0.0.1:{port}"
        os.environ["STREAMSCRIBE_API_KEY"] = json.loads((home / "secrets" / "credentials.json").read_text())["api_key"]
        print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {machine()}, embedded stack, "
              f"diarize={args.diarize}\n", flush=True)
        rows = []
        try:
            asyncio.run(transcribe(url, files[0][0], args.diarize))  # warm-up, untimed
            for path, seconds in files:
                sampler = Sampler(home, 2.0)
                thread = threading.Thread(target=sampler.run, daemon=True)
                thread.start()
                try:
                    took, info = asyncio.run(transcribe(url, path, args.diarize))
                finally:
                    sampler.stop.set()
                    thread.join()
                time.sleep(10)  # the workers go idle and give their freed heap back (streams.runtime.memory)
                after = Sampler(home, 0.0)
                after.sample()
                rows.append({"audio_s": seconds, "wall_s": took, **info, "peak_mb": peaks(sampler.samples),
                             "after_mb": peaks(after.samples)})
                print(f"{seconds / 60:.1f} min: {took:.1f} s ({info})", flush=True)
        finally:
            subprocess.run([*CLI, "down", "--home", tmp], env=env, capture_output=True)
    report(rows)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))


def report(rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    base = rows[0]["wall_s"] / rows[0]["audio_s"] * 3600
    names = sorted({n for r in rows for n in r["peak_mb"]})
    print("\n| audio | wall | s per audio hour | vs shortest | segments | speakers |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        per_hour = r["wall_s"] / r["audio_s"] * 3600
        print(f"| {r['audio_s'] / 60:.1f} min | {r['wall_s']:.1f} s | {per_hour:.0f} s | {per_hour / base:.2f} "
              f"| {r['segments']} | {r['speakers']} |")
    print("\nPeak RSS while the job ran (MB):\n")
    print("| process | " + " | ".join(f"{r['audio_s'] / 60:.0f} min" for r in rows) + " |")
    print("|---|" + "---|" * len(rows))
    for n in names:
        print(f"| {n} | " + " | ".join(f"{r['peak_mb'].get(n, 0):.0f}" for r in rows) + " |")
    print("\nRSS 10 s after each job completed (MB):\n")
    print("| process | " + " | ".join(f"{r['audio_s'] / 60:.0f} min" for r in rows) + " |")
    print("|---|" + "---|" * len(rows))
    for n in names:
        print(f"| {n} | " + " | ".join(f"{r['after_mb'].get(n, 0):.0f}" for r in rows) + " |")


if __name__ == "__main__":
    main()
