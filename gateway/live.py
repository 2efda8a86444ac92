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
from gateway.auth.middleware import caller
from gateway.auth.permissions import add_route, needs
from gateway.auth.principal import Principal
from gateway.live_audio import LiveAudio, archive_key
from gateway.options import validate_options
from gateway.problems import Problem
from gateway.refs import JOBS, MODELS, PUBLISHER, RESULTS, SETTINGS, STORE
from gateway.results import ResultsFeed
from gateway.uploads import spool_dir
from gateway.validation import storable_json
from processors.asr.models import UnknownModel
from processors.diarization.labels import channel_speaker, speaker_names
from repositories.jobs import NewJob
from streams.kafka.lanes import priority_of

log = get_logger(__name__)

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
    unstorable = storable_json({"stream_id": stream_id, "filename": filename, "options": options}, "start")
    if unstorable:  # a WebSocket message never passes the request validation: the same rule, here
        where, reason = unstorable[0]
        raise LiveError("bad_option", f"{where} {reason}")
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
    await app[JOBS].create(NewJob(job_id=job_id, stream_id=stream_id, filename=filename, content_type="audio/wav",
                                  size_bytes=0, object_key=key, model=model, language=options.get("language"),
                                  options=options, source=source, org_id=principal.org_id,
                                  user_id=principal.user_id, key_id=principal.key_id, priority=priority))
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
    principal = caller(request)
    ws = web.WebSocketResponse(heartbeat=30, max_msg_size=4 * 1024 * 1024)
    await ws.prepare(request)
    feed = request.app[RESULTS]
    session = _Session(ws, feed)
    try:
        rate, channels, encoding, options = await _read_start(ws)
        stream_id = uuid.uuid4().hex
        queue = session.register(stream_id)
        session.audio = audio = await open_stream(request.app, principal, stream_id=stream_id, sample_rate=rate,
                                                  channels=channels, encoding=encoding, options=options,
                                                  source="live")
        await ws.send_json({"type": "started", "stream_id": stream_id, "job_id": audio.job_id})
        log.info("live session started", stream_id=stream_id, sample_rate=rate, channels=channels)
        session.sender = asyncio.create_task(_forward(ws, queue, speaker_names(options)))
        stopped = await _receive_audio(ws, audio)
        await audio.end()
        if stopped:
            await _conclude(ws, request.app, audio)
        else:
            log.info("live client disconnected; stream ended and kept", stream_id=audio.stream_id)
    except LiveError as exc:
        await _send_error(ws, exc.code, str(exc))
    except TimeoutError:
        await _send_error(ws, "timeout", "no start message within 30 s")
    finally:
        await session.close()
    return ws


class _Session:
    """What a live connection holds: its registration with the results feed, its audio, its result sender."""

    def __init__(self, ws: web.WebSocketResponse, feed: ResultsFeed) -> None:
        self.ws, self.feed = ws, feed
        self.stream_id: str | None = None
        self.audio: LiveAudio | None = None
        self.sender: asyncio.Task[None] | None = None

    def register(self, stream_id: str) -> asyncio.Queue[dict[str, Any]]:
        self.stream_id = stream_id
        return self.feed.register(stream_id)

    async def close(self) -> None:
        if self.audio is not None:
            await self.audio.end()  # a dropped connection still finalizes what was heard
        if self.stream_id is not None:
            self.feed.unregister(self.stream_id)
        if self.sender is not None:
            self.sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.sender
        if not self.ws.closed:
            await self.ws.close()


async def _read_start(ws: web.WebSocketResponse) -> tuple[int, int, AudioEncoding, dict[str, str]]:
    first = await ws.receive(timeout=30)
    if first.type != WSMsgType.TEXT:
        raise LiveError("protocol", "send a JSON start message first")
    try:
        start = json.loads(first.data)
    except json.JSONDecodeError:
        raise LiveError("protocol", "the start message is not JSON") from None
    return _start_params(start)


def _message_type(data: str) -> Any:
    try:
        return json.loads(data).get("type")
    except (json.JSONDecodeError, AttributeError):
        return None


async def _receive_audio(ws: web.WebSocketResponse, audio: LiveAudio) -> bool:
    """Publish the client's audio frames until it sends ``stop`` (True) or the connection ends (False)."""
    async for msg in ws:
        if msg.type == WSMsgType.BINARY:
            await audio.write(msg.data)
        elif msg.type == WSMsgType.TEXT:
            if _message_type(msg.data) == "stop":
                return True
            await ws.send_json({"type": "error", "code": "protocol",
                                "message": "text messages after start must be {\"type\": \"stop\"}"})
        elif msg.type == WSMsgType.ERROR:
            break
    return False


async def _conclude(ws: web.WebSocketResponse, app: web.Application, audio: LiveAudio) -> None:
    """After ``stop``: wait for the session's transcript and send it (or why there is none)."""
    transcript = await _wait_transcript(app, audio.job_id, timeout=120 + audio.seconds)
    await asyncio.sleep(0.3)  # let the last finals reach the client before the summary
    if transcript.get("status") == "completed":
        await ws.send_json({"type": "completed", "transcript": transcript})
    else:
        await ws.send_json({"type": "error", "code": "job_failed",
                            "message": transcript.get("error") or "the session's job failed"})


async def _send_error(ws: web.WebSocketResponse, code: str, message: str) -> None:
    if not ws.closed:
        await ws.send_json({"type": "error", "code": code, "message": message})


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
    jobs = app[JOBS]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        job = await jobs.job(job_id)
        if job and job["status"] == "completed":
            return await jobs.transcript(job_id) or {"status": "failed", "error": "transcript missing"}
        if job and job["status"] == "failed":
            return {"status": "failed", "error": job["error"]}
        await asyncio.sleep(0.2)
    return {"status": "failed", "error": f"the transcript was not ready within {timeout:.0f} s"}


def add_routes(app: web.Application) -> None:
    add_route(app, "GET", "/v1/live", live, needs("live"))
