"""Live transcription over a WebSocket: ``/v1/live``. The protocol is written down in docs/live.md.

A live session is a job like an upload: its audio enters ``audio.chunks`` as it arrives, flows through the
same stages (VAD in utterance mode), and is materialized and queryable. The session streams the recogniser's
PARTIAL and FINAL answers back as they appear on ``asr.segments``; in an acoustically diarized session finals
carry their provisional speaker from ``speaker.turns`` (``gateway.live_speakers``). After ``stop`` it waits for
the finished transcript and sends the revised speakers with it. A client that disconnects still has what was
heard finalized and kept.
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
from gateway.live_speakers import LiveSpeakers
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
from streams.kafka.topics import SPEAKER_TURNS

log = get_logger(__name__)

LIVE_OPTIONS = ("language", "model", "diarize", "speaker_names", "speakers", "min_speakers", "max_speakers",
                "diarization_backend", "initial_prompt", "hotwords", "speaker_threshold", "priority")


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
        if acoustic_speakers(options, channels):
            session.speakers = LiveSpeakers(request.app[SETTINGS].diarization.live_label_wait_s)
        session.sender = asyncio.create_task(_forward(ws, queue, speaker_names(options), session.speakers))
        stopped = await _receive_audio(ws, audio)
        await audio.end()
        if stopped:
            await _conclude(ws, request.app, audio, session.speakers)
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
        self.speakers: LiveSpeakers | None = None  # provisional speakers of an acoustically diarized session

    def register(self, stream_id: str) -> asyncio.Queue[dict[str, Any]]:
        self.stream_id = stream_id
        return self.feed.register(stream_id)

    async def close(self) -> None:
        if self.audio is not None:
            try:
                await self.audio.end()  # a dropped connection still finalizes what was heard
            except Exception as exc:  # the broker refused the end: the rest of the session still closes
                log.error("live stream could not be ended", stream_id=self.stream_id, error=str(exc))
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


async def _conclude(ws: web.WebSocketResponse, app: web.Application, audio: LiveAudio,
                    speakers: LiveSpeakers | None) -> None:
    """After ``stop``: wait for the session's transcript and send it (or why there is none), with the speakers
    revised from the whole session first."""
    transcript = await _wait_transcript(app, audio.job_id, timeout=120 + audio.seconds)
    await asyncio.sleep(0.3)  # let the last finals reach the client before the summary
    if transcript.get("status") == "completed":
        if speakers is not None:
            for message in speakers.flush():
                await ws.send_json(message)
            await ws.send_json(speakers.revised(transcript))
        await ws.send_json({"type": "completed", "transcript": transcript})
    else:
        await ws.send_json({"type": "error", "code": "job_failed",
                            "message": transcript.get("error") or "the session's job failed"})


def acoustic_speakers(options: dict[str, str], channels: int) -> bool:
    """Whether the session's speakers come from acoustic diarization (as VAD resolves ``diarize``)."""
    diarize = options.get("diarize", "auto")
    return diarize == "acoustic" or (diarize == "auto" and channels == 1)


async def _send_error(ws: web.WebSocketResponse, code: str, message: str) -> None:
    if not ws.closed:
        await ws.send_json({"type": "error", "code": code, "message": message})


async def _forward(ws: web.WebSocketResponse, queue: asyncio.Queue[dict[str, Any]], names: list[str],
                   speakers: LiveSpeakers | None) -> None:
    finals: set[str] = set()
    loop = asyncio.get_running_loop()
    while True:
        deadline = speakers.next_deadline() if speakers is not None else None
        try:
            ev = await (queue.get() if deadline is None else asyncio.wait_for(
                queue.get(), max(0.0, deadline - loop.time())))
        except TimeoutError:
            ev = None
        if ws.closed:
            return
        for message in _messages(ev, finals, names, speakers, loop.time()):
            await ws.send_json(message)


def _messages(ev: dict[str, Any] | None, finals: set[str], names: list[str], speakers: LiveSpeakers | None,
              now: float) -> list[dict[str, Any]]:
    """What the client is sent for one event from the results feed (None: a wait for a label ran out)."""
    out: list[dict[str, Any]] = []
    if ev is not None and ev.get("topic") == SPEAKER_TURNS:
        if speakers is not None and ev["kind"] == "PARTIAL":
            out += speakers.turns(ev)
    elif ev is not None and ev["kind"] == "FINAL":
        if ev["segment_id"] not in finals:  # a redelivered final is dropped: finals are sent once
            finals.add(ev["segment_id"])
            segment = segment_message(ev, names)
            out += speakers.final(segment, now) if speakers is not None else [{"type": "final", "segment": segment}]
    elif ev is not None and ev["kind"] == "PARTIAL" and ev["segment_id"] not in finals:
        out.append({"type": "partial", "segment": segment_message(ev, names)})
    if speakers is not None:
        out += speakers.due(now)
    return out


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
