"""Live transcription on the real stack: a WebSocket session of real speech, a Twilio media stream of a
two-party call, a client that drops mid-sentence, and audio produced straight to Kafka."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
import wave
from itertools import pairwise
from pathlib import Path
from typing import Any

import aiohttp
import jiwer
import numpy as np
import pytest
import soxr

from bench.corpus import two_voice_conversation
from connectors.ingest.decode import decode_chunks
from streamscribe.client import Client
from tests.conftest import normalize, read_references
from tests.integration.conftest import Stack

pytestmark = [pytest.mark.integration, pytest.mark.embedded]
RATE = 16000
AUTH: dict[str, str] = {}


@pytest.fixture(autouse=True)
def _auth(stack: Stack) -> None:
    AUTH.update(stack.auth)


def _mono(path: Path) -> np.ndarray:
    return np.concatenate([c.frames.astype(np.int32).mean(axis=1).astype(np.int16) for c in decode_chunks(path)])


def _session_audio(speech: Path, n: int) -> tuple[np.ndarray, list[str]]:
    files = sorted((speech / "read").glob("LJ*.wav"))[:n]
    refs = read_references(speech)
    pieces = []
    for f in files:
        pieces += [_mono(f), np.zeros(RATE, dtype=np.int16)]
    return np.concatenate(pieces), [refs[f.name] for f in files]


async def _stream(url: str, audio: bytes, start: dict[str, Any], speed: float, stop: bool = True,
                  cut_at: int | None = None) -> list[dict[str, Any]]:
    """Send audio over /v1/live in 100 ms frames; returns every server message received."""
    messages: list[dict[str, Any]] = []
    frame = int(start.get("sample_rate", RATE) * 0.1) * 2 * int(start.get("channels", 1))
    end = len(audio) if cut_at is None else cut_at
    async with aiohttp.ClientSession(headers=AUTH) as http, http.ws_connect(f"{url}/v1/live") as ws:
        await ws.send_json(start)
        messages.append(await ws.receive_json())

        async def receive() -> None:
            async for msg in ws:
                data = json.loads(msg.data)
                messages.append({**data, "_at": time.monotonic()})
                if data["type"] in ("completed", "error"):
                    return

        reader = asyncio.create_task(receive())
        t0 = time.monotonic()
        for i, offset in enumerate(range(0, end, frame)):
            await asyncio.sleep(max(0.0, t0 + i * 0.1 / speed - time.monotonic()))
            await ws.send_bytes(audio[offset: min(offset + frame, end)])
        if stop:
            await ws.send_json({"type": "stop"})
            await asyncio.wait_for(reader, 300)
        else:
            reader.cancel()
            await ws.close()  # the client goes away mid-sentence, without a stop
    return messages


async def test_websocket_session_finals_match_the_batch_transcript(stack: Stack, speech: Path, tmp_path: Path) -> None:
    audio, refs = _session_audio(speech, 6)
    messages = await _stream(stack.url, audio.astype("<i2").tobytes(),
                             {"type": "start", "sample_rate": RATE, "channels": 1, "encoding": "pcm_s16le",
                              "language": "en"}, speed=2.0)
    started = messages[0]
    assert started["type"] == "started" and started["stream_id"]
    kinds = [m["type"] for m in messages]
    assert kinds[-1] == "completed", messages[-3:]
    partials = [m for m in messages if m["type"] == "partial"]
    finals = [m["segment"] for m in messages if m["type"] == "final"]
    assert len(partials) >= len(finals) >= 6  # partials while speaking, a final per utterance
    assert len({f["id"] for f in finals}) == len(finals), "a final was sent twice"
    assert all(a["end"] <= b["start"] + 1e-6 for a, b in pairwise(finals))
    assert all(f["words"] and set(f) >= {"id", "start", "end", "text", "speaker", "channel", "words"} for f in finals)
    # after a final, no partial for its segment comes back
    final_ids = {f["id"]: i for i, m in enumerate(messages) if m["type"] == "final" for f in [m["segment"]]}
    for i, m in enumerate(messages):
        if m["type"] == "partial" and m["segment"]["id"] in final_ids:
            assert i < final_ids[m["segment"]["id"]]

    # the session is a job like an upload: materialized and queryable
    transcript = messages[-1]["transcript"]
    async with Client(stack.url) as client:
        job = await client.job(started["job_id"])
        stored = await client.transcript(started["job_id"])
    assert job["status"] == "completed" and job["source"] == "live"
    assert normalize(stored["text"]) == normalize(transcript["text"])

    # accuracy: the finals against the same audio uploaded as a batch job
    wav = tmp_path / "session.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(audio.tobytes())
    _, batch = await stack.transcribe(wav)
    truth = normalize(" ".join(refs))
    live_wer = jiwer.wer(truth, normalize(" ".join(f["text"] for f in finals)))
    batch_wer = jiwer.wer(truth, normalize(batch["text"]))
    print(f"\nWER live finals {live_wer:.2%}, batch {batch_wer:.2%}")
    assert live_wer <= batch_wer + 0.02, (live_wer, batch_wer)


async def test_live_finals_carry_provisional_speakers_revised_at_the_end(stack: Stack, speech: Path) -> None:
    audio, turns = two_voice_conversation(speech)  # the LJ Speech reader and President Kennedy taking turns
    messages = await _stream(stack.url, audio.astype("<i2").tobytes(),
                             {"type": "start", "sample_rate": RATE, "channels": 1, "language": "en"}, speed=2.0)
    kinds = [m["type"] for m in messages]
    assert kinds[-1] == "completed", messages[-3:]
    assert "speakers" in kinds, kinds
    revision_at = kinds.index("speakers")
    # during the session: every final has its provisional speaker, sent with it or in a `speaker` message
    # before the session's end
    provisional: dict[str, str] = {}
    finals: dict[str, dict[str, Any]] = {}
    for m in messages[:revision_at]:
        if m["type"] == "final":
            finals[m["segment"]["id"]] = m["segment"]
            if m["segment"].get("speaker"):
                assert m["segment"]["speaker_provisional"] is True
                assert all(w["speaker"] for w in m["segment"]["words"])
                provisional[m["segment"]["id"]] = m["segment"]["speaker"]
        elif m["type"] == "speaker" and m["speaker"]:
            provisional[m["segment_id"]] = m["speaker"]
    assert len(finals) >= 5 and set(provisional) == set(finals), (finals.keys(), provisional)

    def who(segment: dict[str, Any]) -> str:
        middle = (segment["start"] + segment["end"]) / 2
        return min(turns, key=lambda t: 0 if t[0] <= middle <= t[1] else min(abs(t[0] - middle),
                                                                               abs(t[1] - middle)))[2]

    # the provisional labels already tell the two voices apart
    by_voice: dict[str, set[str]] = {}
    for segment_id, segment in finals.items():
        by_voice.setdefault(who(segment), set()).add(provisional[segment_id])
    assert set(by_voice) == {"reader", "jfk"}, by_voice
    assert all(len(labels) == 1 for labels in by_voice.values()) and by_voice["reader"] != by_voice["jfk"], by_voice
    # at the end: the revised labels, published to the client for every final, then the completed transcript
    revised = messages[revision_at]
    assert revised["provisional"] is False and {s["id"] for s in revised["segments"]} == set(finals)
    assert all(s["provisional_speaker"] == provisional[s["id"]] for s in revised["segments"])
    transcript = messages[-1]["transcript"]
    assert len(transcript["speakers"]) == 2, transcript["speakers"]
    for s in revised["segments"]:
        assert s["speaker"] and s["changed"] == (s["speaker"] != s["provisional_speaker"])
    final_voice = {}
    for s in revised["segments"]:
        final_voice.setdefault(who(finals[s["id"]]), set()).add(s["speaker"])
    assert all(len(v) == 1 for v in final_voice.values()) and final_voice["reader"] != final_voice["jfk"]


async def test_client_that_disconnects_mid_sentence_keeps_what_was_heard(stack: Stack, speech: Path) -> None:
    audio, refs = _session_audio(speech, 2)
    first_len = len(_mono(sorted((speech / "read").glob("LJ*.wav"))[0])) + RATE
    cut = (first_len + RATE * 2) * 2  # two seconds into the second sentence, in bytes
    messages = await _stream(stack.url, audio.astype("<i2").tobytes(),
                             {"type": "start", "sample_rate": RATE, "channels": 1, "encoding": "pcm_s16le"},
                             speed=2.0, stop=False, cut_at=cut)
    job_id = messages[0]["job_id"]
    async with Client(stack.url) as client:
        job = await client.wait(job_id, timeout=120)
        assert job["status"] == "completed", job
        text = normalize((await client.transcript(job_id))["text"])
    assert jiwer.wer(normalize(refs[0]), text.split(" in being")[0]) < 0.2, text
    assert "in being" in text  # the unfinished sentence was finalized, not lost


def _mulaw(pcm: np.ndarray) -> bytes:
    """G.711 mu-law encoding of int16 samples."""
    x = np.clip(pcm.astype(np.int32), -32635, 32635)
    sign = np.where(x < 0, 0x80, 0)
    x = np.abs(x) + 0x84
    exponent = np.floor(np.log2(x)).astype(np.int32) - 7
    mantissa = (x >> (exponent + 3)) & 0x0F
    return (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8).tobytes()


async def test_twilio_media_stream_gives_a_two_party_transcript(stack: Stack, speech: Path) -> None:
    frames = np.concatenate([c.frames for c in decode_chunks(speech / "calls" / "stereo_two_party.wav")])
    tracks = {}
    for name, ch in (("inbound", 0), ("outbound", 1)):
        narrow = soxr.resample(frames[:, ch].astype(np.float32) / 32768, RATE, 8000)
        tracks[name] = _mulaw(np.round(narrow * 32767).astype(np.int16))
    sid = f"MZ{uuid.uuid4().hex}"
    twilio_url = f"{stack.url}/v1/telephony/twilio?key={stack.admin_key}"  # Twilio puts credentials in the URL
    async with aiohttp.ClientSession() as http, http.ws_connect(twilio_url) as ws:
        await ws.send_json({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        await ws.send_json({"event": "start", "sequenceNumber": "1", "streamSid": sid, "start": {
            "streamSid": sid, "accountSid": "AC0", "callSid": "CA0", "tracks": ["inbound", "outbound"],
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            "customParameters": {"language": "en"}}})
        step = 160  # 20 ms
        for i, offset in enumerate(range(0, len(tracks["inbound"]), step)):
            for n, name in enumerate(("inbound", "outbound")):
                payload = base64.b64encode(tracks[name][offset: offset + step]).decode()
                await ws.send_json({"event": "media", "sequenceNumber": str(2 + 2 * i + n), "streamSid": sid,
                                    "media": {"track": name, "chunk": str(i + 1), "timestamp": str(i * 20),
                                              "payload": payload}})
            if i % 25 == 0:
                await asyncio.sleep(0.05)
        await ws.send_json({"event": "stop", "streamSid": sid, "stop": {"callSid": "CA0"}})
    stream_id = f"twilio-{sid}"
    async with Client(stack.url) as client:
        for _ in range(600):
            try:
                job = await client.job(stream_id)
            except Exception:
                await asyncio.sleep(0.2)
                continue
            if job["status"] in ("completed", "failed"):
                break
            await asyncio.sleep(0.2)
        assert job["status"] == "completed", job
        assert job["source"] == "telephony"
        t = await client.transcript(stream_id)
    names = {s["label"] for s in t["speakers"]}
    assert names == {"caller", "agent"}, t["speakers"]
    said = {n: normalize(" ".join(s["text"] for s in t["segments"] if s["speaker"] == n)) for n in names}
    assert jiwer.wer(normalize("He began a confused complaint against the wizard, who had vanished behind the "
                               "curtain on the left."), said["caller"]) < 0.3, said
    assert jiwer.wer(normalize("The horizon seems extremely distant."), said["agent"]) < 0.3, said


def test_produce_a_file_then_its_transcript_appears(stack: Stack, speech: Path) -> None:
    stream_id = f"call-{uuid.uuid4().hex[:8]}"
    out = stack.cli("produce", str(speech / "read" / "LJ001-0004.wav"), "--stream-id", stream_id, "--wait",
                    "--diarize", "off")
    assert out.returncode == 0, out.stderr
    assert "produced" in out.stderr and "block books" in out.stdout.lower()
    events = stack.cli("tail", "transcripts", "--from-beginning", "--timeout", "5")
    assert events.returncode == 0, events.stderr
    mine = [json.loads(line) for line in events.stdout.splitlines() if json.loads(line)["key"] == stream_id]
    assert [e["value"]["kind"] for e in mine][-1] == "COMPLETED"
    assert any(e["value"]["kind"] == "SEGMENT" and "block books" in e["value"]["segment"]["text"].lower()
               for e in mine)


async def test_bad_start_messages_get_clear_errors(stack: Stack) -> None:
    async with aiohttp.ClientSession(headers=stack.auth) as http:
        for start, code in (({"type": "start", "encoding": "opus"}, "bad_format"),
                            ({"type": "start", "model": "nope"}, "unknown_model"),
                            ({"type": "hello"}, "protocol")):
            async with http.ws_connect(f"{stack.url}/v1/live") as ws:
                await ws.send_json(start)
                reply = await ws.receive_json()
                assert reply["type"] == "error" and reply["code"] == code, reply
                assert reply["message"]
