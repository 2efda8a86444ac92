"""Live latency: M concurrent WebSocket sessions of real speech paced in real time.

    .venv/bin/python bench/live_latency.py [--streams 1 2 4 8] [--files 16] [--backlog K --priority high|normal]
                                           [--kafka tansu|apache [--brokers N]]

Each session streams the LJ Speech reads (one utterance per file, 1 s of silence between them; session i
starts at file i, so sessions say different things) to /v1/live in 100 ms frames at real-time pace, the
sessions starting at random moments within the first five seconds, as independent callers would. For each
utterance it records when its FINAL message arrives, measured from the moment the end of its speech was sent
(speech end = the file's last 10 ms frame above -45 dBFS of its peak, so the silence the VAD must wait for is
part of the latency), and when the first PARTIAL or FINAL covering its speech arrives, measured from its
speech start. Prints p50/p95 per stream count.

With --backlog K, K batch jobs of 7.7 minutes of speech each (normal priority, no diarization) are uploaded
first and the sessions start once every one of them is decoded, so the recognisers have minutes of batch
work queued while the calls go on; --priority sets the sessions' priority (live sessions are high by
default; normal puts them in the batch lane, as if there were no lanes). Use one stream count per run with
a backlog: cancelled or not, queued work keeps the workers busy.

For each stream count it also prints where the time went while the sessions ran: the CPU seconds of every
process of the stack (workers, gateway, broker, object store, PostgreSQL) and, per stage, its batches, mean
batch time and mean event age (produced to handled) from the workers' /metrics; and how many sessions got their
``completed`` message (a session whose transcript is not ready 300 s after its ``stop`` counts its finals anyway).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import aiohttp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.corpus import SPEECH
from bench.stack_run import cpu_delta, cpu_seconds, down, machine, stage_delta, stage_metrics, up
from connectors.ingest.decode import decode_chunks

RATE = 16000
FRAME = RATE // 10  # 100 ms


def speech_bounds(audio: np.ndarray) -> tuple[float, float]:
    frames = audio[: len(audio) // 160 * 160].reshape(-1, 160).astype(np.float64)
    rms = np.sqrt((frames**2).mean(axis=1))
    loud = np.nonzero(rms > rms.max() * 10 ** (-45 / 20))[0]
    return loud[0] * 0.01, (loud[-1] + 1) * 0.01


def build_session(files: int, rotate: int = 0) -> tuple[bytes, list[tuple[float, float]]]:
    pieces, utterances, t = [], [], 0.0
    chosen = sorted((SPEECH / "read").glob("LJ*.wav"))[:files]
    for f in chosen[rotate % len(chosen):] + chosen[: rotate % len(chosen)]:
        audio = np.concatenate([c.frames[:, 0] for c in decode_chunks(f)])
        start, end = speech_bounds(audio)
        utterances.append((t + start, t + end))
        pieces += [audio, np.zeros(RATE, dtype=np.int16)]
        t += len(audio) / RATE + 1.0
    return np.concatenate(pieces).astype("<i2").tobytes(), utterances


PRIORITY = {"priority": "high"}


async def backlog(url: str, jobs: int) -> list[str]:
    """Upload ``jobs`` long batch jobs and return once all are decoded (their speech is queued)."""
    from bench.corpus import write_long_recording
    from streamscribe.client import Client

    path = Path(tempfile.mkdtemp(prefix="ss-backlog-")) / "long.wav"
    write_long_recording(path)
    async with Client(url) as client:
        ids = [(await client.submit(path, diarize="off", priority="normal"))["job_id"] for _ in range(jobs)]
        while True:
            states = [(await client.job(j))["stages"].get("ingest", {}).get("state") for j in ids]
            if all(s == "completed" for s in states):
                return ids
            await asyncio.sleep(0.5)


async def backlog_done(url: str, ids: list[str]) -> int:
    from streamscribe.client import Client

    async with Client(url) as client:
        return sum([(await client.job(j))["status"] == "completed" for j in ids])


Outcome = tuple[list[float], list[float], bool]  # final latencies, first-partial latencies, completed


async def session(url: str, audio: bytes, utterances: list[tuple[float, float]],
                  delay: float = 0.0) -> Outcome:
    await asyncio.sleep(delay)
    finals: list[tuple[float, float]] = []  # (arrival, segment end)
    firsts: list[tuple[float, float]] = []  # (arrival, segment end) of partials and finals
    completed = False
    headers = {"Authorization": f"Bearer {os.environ['STREAMSCRIBE_API_KEY']}"}
    async with aiohttp.ClientSession(headers=headers) as http, http.ws_connect(f"{url}/v1/live", max_msg_size=0) as ws:
        await ws.send_json({"type": "start", "sample_rate": RATE, "channels": 1, "encoding": "pcm_s16le",
                            "diarize": "off", **PRIORITY})
        started = await ws.receive_json()
        assert started["type"] == "started", started
        t0 = time.monotonic()

        async def receive() -> None:
            nonlocal completed
            async for msg in ws:
                data = json.loads(msg.data)
                now = time.monotonic() - t0
                if data["type"] in ("partial", "final"):
                    firsts.append((now, data["segment"]["end"]))
                    if data["type"] == "final":
                        finals.append((now, data["segment"]["end"]))
                if data["type"] in ("completed", "error"):
                    completed = data["type"] == "completed"
                    return

        reader = asyncio.create_task(receive())
        for i, offset in enumerate(range(0, len(audio), FRAME * 2)):
            await asyncio.sleep(max(0.0, t0 + i * 0.1 - time.monotonic()))
            await ws.send_bytes(audio[offset: offset + FRAME * 2])
        await ws.send_json({"type": "stop"})
        try:
            await asyncio.wait_for(reader, 300)
        except TimeoutError:
            print(json.dumps({"session": "no completed message 300 s after stop"}), flush=True)
    final_lat, first_lat = [], []
    for start, end in utterances:
        arrival = next((a for a, e in sorted(finals) if e >= end - 0.35), None)
        if arrival is not None:
            final_lat.append(arrival - end)
        first = next((a for a, e in sorted(firsts) if e > start + 0.1), None)
        if first is not None:
            first_lat.append(first - start)
    return final_lat, first_lat, completed


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--files", type=int, default=16)
    parser.add_argument("--backlog", type=int, default=0, help="batch jobs of 7.7 min queued before the sessions")
    parser.add_argument("--priority", choices=["high", "normal"], default="high", help="the sessions' priority")
    parser.add_argument("--kafka", choices=["tansu", "apache"], default="tansu", help="the stack's broker")
    parser.add_argument("--brokers", type=int, help="Apache Kafka nodes (default: the CLI's, 3)")
    args = parser.parse_args()
    PRIORITY["priority"] = args.priority
    sessions = [build_session(args.files, i) for i in range(max(args.streams))]
    audio, utterances = sessions[0]
    home = Path(tempfile.mkdtemp(prefix="ss-live-")) / "home"
    url = up(home, args.kafka, brokers=args.brokers)
    rows = []
    try:
        asyncio.run(session(url, audio[: RATE * 2 * 12], utterances[:1]))  # warm-up
        for m in args.streams:
            queued = asyncio.run(backlog(url, args.backlog)) if args.backlog else []
            started = time.monotonic()
            cpu_before, stages_before = cpu_seconds(home), asyncio.run(stage_metrics(home))
            results = asyncio.run(_many(url, sessions[:m]))
            wall = time.monotonic() - started
            used = cpu_delta(cpu_before, cpu_seconds(home))
            print(json.dumps({"streams": m, "wall_s": round(wall, 1), "cpu_s": dict(sorted(
                used.items(), key=lambda kv: -kv[1])), "cpu_total_s": round(sum(used.values()), 1),
                "stages": stage_delta(stages_before, asyncio.run(stage_metrics(home)))}), flush=True)
            if queued:
                print(json.dumps({"backlog_jobs": len(queued), "completed_during_sessions":
                                  asyncio.run(backlog_done(url, queued)),
                                  "sessions_s": round(time.monotonic() - started, 1)}), flush=True)
            finals = [x for r in results for x in r[0]]
            firsts = [x for r in results for x in r[1]]
            row = {"streams": m, "utterances": len(utterances) * m, "finals_received": len(finals),
                   "sessions_completed": sum(r[2] for r in results),
                   "final_p50": round(pct(finals, 50), 2), "final_p95": round(pct(finals, 95), 2),
                   "first_partial_p50": round(pct(firsts, 50), 2), "first_partial_p95": round(pct(firsts, 95), 2),
                   "final_max": round(max(finals), 2) if finals else None}
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        down(home)
    speech = sum(e - s for s, e in utterances)
    broker = f"{args.kafka} x{args.brokers}" if args.brokers else args.kafka
    print(f"\n{date.today().isoformat()}, {machine()}, broker {broker}, {len(utterances)} utterances per "
          f"stream, {speech:.0f} s of speech, backlog {args.backlog} x 7.7 min, sessions' priority {args.priority}")
    print("| streams | final p50 | final p95 | first partial p50 | first partial p95 | finals / utterances |")
    for r in rows:
        print(f"| {r['streams']} | {r['final_p50']:.2f} s | {r['final_p95']:.2f} s | {r['first_partial_p50']:.2f} s | "
              f"{r['first_partial_p95']:.2f} s | {r['finals_received']} / {r['utterances']} |")


Session = tuple[bytes, list[tuple[float, float]]]


async def _many(url: str, sessions: list[Session]) -> list[Outcome]:
    rng = np.random.default_rng(7)
    delays = [0.0, *list(rng.uniform(0, 5, len(sessions) - 1))]
    return list(await asyncio.gather(*(session(url, a, u, d) for (a, u), d in zip(sessions, delays, strict=True))))


if __name__ == "__main__":
    main()
