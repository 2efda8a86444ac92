"""Telephony media streams: a WebSocket endpoint speaking the Twilio Media Streams message format.

Point a TwiML ``<Stream url="wss://.../v1/telephony/twilio" track="both_tracks"/>`` at it: the inbound and
outbound tracks become two channels of one stream (one party each, so each is a speaker), 8 kHz mu-law, and
the call is a live job like any other. ``customParameters`` of the start message may carry job options
(``language``, ``model``, ``speaker_names``; by default the parties are named ``caller`` and ``agent``).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import WSMsgType, web

from connectors.telephony.twilio import TrackMixer, parse_start
from foundation.logs import get_logger
from gateway.auth.middleware import caller
from gateway.auth.permissions import add_route, needs
from gateway.live import LIVE_OPTIONS, LiveError, open_stream
from gateway.live_audio import LiveAudio

log = get_logger(__name__)

DEFAULT_NAMES = {"inbound": "caller", "outbound": "agent"}


async def twilio_media_stream(request: web.Request) -> web.WebSocketResponse:
    principal = caller(request)  # an API key in the stream URL: wss://host/v1/telephony/twilio?key=...
    ws = web.WebSocketResponse(heartbeat=30)
    await ws.prepare(request)
    audio: LiveAudio | None = None
    mixer: TrackMixer | None = None
    try:
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            try:
                event: dict[str, Any] = json.loads(msg.data)
            except json.JSONDecodeError:
                log.warning("twilio: non-JSON message ignored")
                continue
            kind = event.get("event")
            if kind == "start" and audio is None:
                info = parse_start(event)
                if info.encoding != "audio/x-mulaw":
                    raise LiveError("bad_format", f"unsupported media encoding {info.encoding}")
                options = {k: v for k, v in info.custom.items() if k in LIVE_OPTIONS}
                options.setdefault("speaker_names", ",".join(DEFAULT_NAMES[t] for t in info.tracks))
                options.setdefault("diarize", "channels" if len(info.tracks) > 1 else "auto")
                mixer = TrackMixer(info.tracks)
                audio = await open_stream(request.app, principal, stream_id=f"twilio-{info.stream_sid or 'call'}",
                                          sample_rate=info.sample_rate, channels=len(info.tracks), encoding="MULAW",
                                          options=options, source="telephony", filename=info.call_sid)
                log.info("twilio stream started", stream_id=audio.stream_id, tracks=info.tracks)
            elif kind == "media" and audio is not None and mixer is not None:
                media = event.get("media") or {}
                ts = media.get("timestamp")
                frames = mixer.add(str(media.get("track", "inbound")), str(media.get("payload", "")),
                                   int(ts) if ts is not None else None)
                if frames:
                    await audio.write(frames)
            elif kind == "stop":
                break
    except LiveError as exc:
        log.warning("twilio stream refused", code=exc.code, error=str(exc))
    finally:
        if audio is not None and mixer is not None:
            tail = mixer.flush()
            if tail:
                await audio.write(tail)
            await audio.end()
        if not ws.closed:
            await ws.close()
    return ws


def add_routes(app: web.Application) -> None:
    add_route(app, "GET", "/v1/telephony/twilio", twilio_media_stream, needs("live"))
