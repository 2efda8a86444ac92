"""Speakers in live sessions: how soon a final carries its provisional speaker, and how right the provisional and
the revised (end of session) speakers are.

    .venv/bin/python bench/live_speakers.py [--url URL] [--sessions conversation,sample,ami_dev00]

Each session streams a real recording to ``/v1/live`` in 100 ms frames at real time (``diarize`` auto: acoustic
for mono). ``conversation`` is two real voices taking turns (``bench/corpus.py``: the LJ Speech reader and
President Kennedy, five utterances); ``sample`` the pyannote sample ``make demo`` uses; ``ami_*`` an AMI excerpt.

Label latency of a final: from the moment the audio of its utterance's end was sent (the final's ``end``) to
the moment its speaker arrived (the ``final`` message when it carried it, else the ``speaker`` message that
followed); it includes the 350 ms of silence VAD waits for. DER (collar 0.25) of the provisional labels (each
final's words as sent) and of the revised ones (the completed transcript's turns, read as RTTM), against the
reference turns.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
import numpy as np
from pyannote.core import Annotation, Segment
from pyannote.database.util import load_rttm
from pyannote.metrics.diarization import DiarizationErrorRate

from bench.corpus import SPEECH, read_mono, two_voice_conversation
from bench.diarization_der import demo_sample, machine
from bench.diarization_pipeline import rttm_annotation
from streamscribe.client import Client
from streamscribe.stack.ports import free_port

CLI = [sys.executable, "-m", "streamscribe.cli"]
RATE = 16000


def sessions(names: list[str]) -> dict[str, tuple[np.ndarray, Annotation]]:
    out = {}
    for name in names:
        if name == "conversation":
            audio, turns = two_voice_conversation()
            ref = Annotation()
            for i, (a, b, who) in enumerate(turns):
                ref[Segment(a, b), i] = who
            out[name] = (audio, ref)
        elif name == "sample":
            wav = demo_sample()
            out[name] = (read_mono(wav), load_rttm(str(wav.with_suffix(".rttm")))["sample"])
        else:
            refs = load_rttm(str(SPEECH / "meetings" / "reference.rttm"))
            out[name] = (read_mono(SPEECH / "meetings" / f"{name}.flac"), refs[name])
    return out


async def stream(url: str, audio: np.ndarray) -> tuple[list[dict[str, Any]], str]:
    """Every message of one session (each with ``_at``, seconds from the first frame sent), and its job id."""
    messages: list[dict[str, Any]] = []
    raw = audio.astype("<i2").tobytes()
    headers = {"Authorization": f"Bearer {os.environ['STREAMSCRIBE_API_KEY']}"}
    async with aiohttp.ClientSession(headers=headers) as http, http.ws_connect(f"{url}/v1/live") as ws:
        await ws.send_json({"type": "start", "sample_rate": RATE, "channels": 1})
        started = await ws.receive_json()
        t0 = time.monotonic()

        async def receive() -> None:
            async for msg in ws:
                data = json.loads(msg.data)
                messages.append({**data, "_at": time.monotonic() - t0})
                if data["type"] in ("completed", "error"):
                    return

        reader = asyncio.create_task(receive())
        frame = RATE // 10 * 2
        for i, offset in enumerate(range(0, len(raw), frame)):
            await asyncio.sleep(max(0.0, t0 + i * 0.1 - time.monotonic()))
            await ws.send_bytes(raw[offset: offset + frame])
        await ws.send_json({"type": "stop"})
        await asyncio.wait_for(reader, 600)
    return messages, started["job_id"]


def label_latencies(messages: list[dict[str, Any]]) -> tuple[list[float], int]:
    """Seconds from each labelled final's end to its label; and how many finals never got one."""
    ends = {}
    out = []
    for m in messages:
        if m["type"] == "final":
            seg = m["segment"]
            ends[seg["id"]] = seg["end"]
            if seg.get("speaker"):
                out.append(m["_at"] - seg["end"])
        elif m["type"] == "speaker" and m["segment_id"] in ends and m.get("speaker"):
            out.append(m["_at"] - ends[m["segment_id"]])
    unlabelled = len(ends) - len(out)
    return out, unlabelled


def provisional(messages: list[dict[str, Any]]) -> Annotation:
    """The provisional speakers as the client saw them: each final word with its speaker."""
    ann = Annotation()
    later = {m["segment_id"]: m["speaker"] for m in messages if m["type"] == "speaker"}
    for m in messages:
        if m["type"] != "final":
            continue
        seg = m["segment"]
        for i, w in enumerate(seg["words"]):
            who = w.get("speaker") or seg.get("speaker") or later.get(seg["id"])
            if who and w["end"] > w["start"]:
                ann[Segment(w["start"], w["end"]), f"{seg['id']}/{i}"] = who
    return ann


async def run(url: str, recs: dict[str, tuple[np.ndarray, Annotation]]) -> dict[str, Any]:
    out = {}
    async with Client(url) as client:
        for name, (audio, ref) in recs.items():
            messages, job_id = await stream(url, audio)
            revised = rttm_annotation(await client.transcript(job_id, "rttm"))
            latencies, unlabelled = label_latencies(messages)
            words_ref = ref.crop(provisional(messages).get_timeline().support())
            out[name] = {
                "finals": sum(m["type"] == "final" for m in messages), "unlabelled": unlabelled,
                "label latency p50": statistics.median(latencies) if latencies else None,
                "label latency max": max(latencies) if latencies else None,
                "provisional DER 0.25 (on the words)": DiarizationErrorRate(collar=0.25)(words_ref,
                                                                                         provisional(messages)),
                "revised DER 0.25": DiarizationErrorRate(collar=0.25)(ref, revised),
                "speakers revised/reference": f"{len(revised.labels())}/{len(ref.labels())}",
                "changed by the revision": sum(s["changed"] for m in messages if m["type"] == "speakers"
                                               for s in m["segments"]),
            }
            print(name, out[name], file=sys.stderr, flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default=None, help="a running stack's gateway (default: start one)")
    ap.add_argument("--sessions", default="conversation,sample,ami_dev00")
    args = ap.parse_args()
    recs = sessions(args.sessions.split(","))
    home = Path(tempfile.mkdtemp(prefix="ss-live-speakers-")) / "home"
    url = args.url
    if url is None:
        port = free_port()
        subprocess.run([*CLI, "up", "--detach", "--home", str(home), "--port", str(port)], check=True)
        os.environ["STREAMSCRIBE_API_KEY"] = json.loads((home / "secrets" / "credentials.json").read_text())["api_key"]
        url = f"http://127.0.0.1:{port}"
    try:
        started = machine()
        results = asyncio.run(run(url, recs))
    finally:
        if args.url is None:
            subprocess.run([*CLI, "down", "--home", str(home)], check=True)
    print(f"# Live speakers — machine at start: {started}; at the end: {machine()}\n")
    print("| session | finals | without a label | label latency p50 / max | provisional DER 0.25 (words) | "
          "revised DER 0.25 | speakers (revised/reference) | finals relabelled at the end |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        lat = (f"{r['label latency p50']:.2f} / {r['label latency max']:.2f} s" if r["label latency p50"] is not None
               else "-")
        words = r["provisional DER 0.25 (on the words)"]
        print(f"| {name} | {r['finals']} | {r['unlabelled']} | {lat} | {words:.1%} | {r['revised DER 0.25']:.1%} | "
              f"{r['speakers revised/reference']} | {r['changed by the revision']} |")


if __name__ == "__main__":
    main()
