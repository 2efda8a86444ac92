"""Live transcription over a WebSocket: ``/v1/live``. The protocol is written down in docs/live.md.

A live session is a job like an upload: its audio enters ``audio.chunks`` as it arrives, flows through the
same stages (VAD in utterance mode), and is materialized and queryable. The session streams the recogniser's
PARTIAL and FINAL answers back as they appear on ``asr.segments``; after ``stop`` it waits for the finished
transcript. A client that disconnects still has what was heard finalized and kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from typing import Any

from aiohttp import WSMsgType, web

from foundation.events import AUDIO_ENCODINGS, AudioEncoding
from foundation.logs import get_logger
from gateway.auth.middleware import require
from gateway.auth.principal import Principal
from gateway.live_audio import LiveAudio, archive_key
from gateway.problems import Problem
from gateway.refs import MODELS, PUBLISHER, REPO, SETTINGS, STORE
from gateway.results import ResultsFeed
from gateway.uploads import spool_dir
from processors.asr.models import UnknownModel
from streams.kafka.lanes import priority_of
from streams.stages.diarization import channel_speaker, speaker_names

log = get_logger(__name__)

RESULTS = web.AppKey("results", ResultsFeed)
LIVE_OPTIONS = ("language", "model", "diarize", "speaker_names", "min_speakers", "max_speakers", "initial_prompt",
                "hotwords", "speaker_threshold", "priority")


class LiveError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


async def open_stream(app: web.Application, principal: Principal, *, stream_id: str, sample_rate: int,
                      channels: int, encoding: AudioEncoding, options: dict[str, str], source: str,
                      filename: str | None = None) -> LiveAudio:
    """Create the job row of a live stream and the audio publisher for it."""
    from gateway.app import validate_options

    settings = app[SETTINGS]
    model = options.get("model") or settings.asr.default_model
    try:
        app[MODELS].get(model)
    except UnknownModel as exc:
        raise LiveError("unknown_model", str(exc)) from None
    try:
        validate_options({k: v for k, v in options.items() if k != "model"})
    except Problem as exc:
        raise LiveError("bad_option", json.loads(exc.text or "{}").get("detail", "invalid option")) from None
    # a live stream is high priority unless it asks otherwise: it passes batch work at the recognisers
    priority = priority_of(options, source)
    options = {**options, "model": model, "segmentation": "utterance", "org_id": principal.org_id,
               "priority": priority}
    job_id = stream_id
    key = archive_key(job_id)
    await app[REPO].create_job(job_id=job_id, stream_id=stream_id, filename=filename, content_type="audio/wav",
                               size_bytes=0, object_key=key, model=model, language=options.get("language"),
                               options=options, source=source, org_id=principal.org_id, user_id=principal.user_id,
                               key_id=principal.key_id, priority=priority)
    return LiveAudio(app[PUBLISHER], app[STORE], spool=spool_dir(settings), stream_id=stream_id, job_id=job_id,
                     sample_rate=sample_rate,
                     channels=channels, encoding=encoding, options=options, source=source, object_key=key)


def _start_params(msg: dict[str, Any]) -> tuple[int, int, AudioEncoding, dict[str, str]]:
    if msg.get("type") != "start":
        raise LiveError("protocol", "the first message must be {\"type\": \"start\", ...}")
    try:
        rate = int(msg.get("sample_rate", 16000))
        channels = int(msg.get("channels", 1))
    except (TypeError, ValueError):
        raise LiveError("bad_format", "sample_rate and channels must be integers") from None
    if not 8000 <= rate <= 48000:
        raise LiveError("bad_format", "sample_rate must be between 8000 and 48000")
    if not 1 <= channels <= 8:
        raise LiveError("bad_format", "channels must be between 1 and 8")
    encoding = AUDIO_ENCODINGS.get(str(msg.get("encoding", "pcm_s16le")).lower())
    if encoding is None:
        raise LiveError("bad_format", f"encoding must be one of {', '.join(AUDIO_ENCODINGS)}")
    options = {k: str(msg[k]) for k in LIVE_OPTIONS if msg.get(k) not in (None, "")}
    return rate, channels, encoding, options


def segment_message(ev: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """An asr.segments event as the segment JSON of batch transcripts."""
    words = [{"start": w["start"], "end": w["end"], "word": w["word"], "probability": w["probability"]}
             for w in ev["words"]]
    speaker = None
    if ev["options"].get("diarize") == "channels" and ev.get("channel") is not None:
        ch = ev["channel"]
        speaker = names[ch] if ch < len(names) else channel_speaker(ch)
    confidence = round(sum(w["probability"] for w in words) / len(words), 4) if words else None
    return {"id": ev["segment_id"], "start": ev["start"], "end": ev["end"], "text": ev["text"], "speaker": speaker,
            "channel": ev.get("channel"), "confidence": confidence, "words": words}


async def live(request: web.Request) -> web.WebSocketResponse:
    principal = require(request, "live")
    ws = web.WebSocketResponse(heartbeat=30, max_msg_size=4 * 1024 * 1024)
    await ws.prepare(request)
    app = request.app
    feed = app[RESULTS]
    audio: LiveAudio | None = None
    sender: asyncio.Task[None] | None = None
    stopped = False
    try:
        first = await ws.receive(timeout=30)
        if first.type != WSMsgType.TEXT:
            raise LiveError("protocol", "send a JSON start message first")
        try:
            start = json.loads(first.data)
        except json.JSONDecodeError:
            raise LiveError("protocol", "the start message is not JSON") from None
        rate, channels, encoding, options = _start_params(start)
        stream_id = uuid.uuid4().hex
        queue = feed.register(stream_id)
        audio = await open_stream(app, principal, stream_id=stream_id, sample_rate=rate, channels=channels,
                                  encoding=encoding, options=options, source="live")
        await ws.send_json({"type": "started", "stream_id": stream_id, "job_id": audio.job_id})
        log.info("live session started", stream_id=stream_id, sample_rate=rate, channels=channels)
        sender = asyncio.create_task(_forward(ws, queue, speaker_names(options)))
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                await audio.write(msg.data)
            elif msg.type == WSMsgType.TEXT:
                try:
                    kind = json.loads(msg.data).get("type")
                except (json.JSONDecodeError, AttributeError):
                    kind = None
                if kind == "stop":
                    stopped = True
                    break
                await ws.send_json({"type": "error", "code": "protocol",
                                    "message": "text messages after start must be {\"type\": \"stop\"}"})
            elif msg.type == WSMsgType.ERROR:
                break
        await audio.end()
        if stopped:
            transcript = await _wait_transcript(app, audio.job_id, timeout=120 + audio.seconds)
            if sender is not None:
                await asyncio.sleep(0.3)  # let the last finals reach the client before the summary
            if transcript.get("status") == "completed":
                await ws.send_json({"type": "completed", "transcript": transcript})
            else:
                await ws.send_json({"type": "error", "code": "job_failed",
                                    "message": transcript.get("error") or "the session's job failed"})
        else:
            log.info("live client disconnected; stream ended and kept", stream_id=audio.stream_id)
    except LiveError as exc:
        if not ws.closed:
            await ws.send_json({"type": "error", "code": exc.code, "message": str(exc)})
    except TimeoutError:
        if not ws.closed:
            await ws.send_json({"type": "error", "code": "timeout", "message": "no start message within 30 s"})
    finally:
        if audio is not None:
            await audio.end()  # a dropped connection still finalizes what was heard
            feed.unregister(audio.stream_id)
        if sender is not None:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
        if not ws.closed:
            await ws.close()
    return ws


async def _forward(ws: web.WebSocketResponse, queue: asyncio.Queue[dict[str, Any]], names: list[str]) -> None:
    finals: set[str] = set()
    while True:
        ev = await queue.get()
        if ws.closed:
            return
        if ev["kind"] == "FINAL":
            if ev["segment_id"] in finals:
                continue  # a redelivered final: finals are sent once and never change
            finals.add(ev["segment_id"])
            await ws.send_json({"type": "final", "segment": segment_message(ev, names)})
        elif ev["kind"] == "PARTIAL" and ev["segment_id"] not in finals:
            await ws.send_json({"type": "partial", "segment": segment_message(ev, names)})


async def _wait_transcript(app: web.Application, job_id: str, timeout: float) -> dict[str, Any]:
    repo = app[REPO]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        job = await repo.job(job_id)
        if job and job["status"] == "completed":
            return await repo.transcript(job_id) or {"status": "failed", "error": "transcript missing"}
        if job and job["status"] == "failed":
            return {"status": "failed", "error": job["error"]}
        await asyncio.sleep(0.2)
    return {"status": "failed", "error": f"the transcript was not ready within {timeout:.0f} s"}


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/live", live)
