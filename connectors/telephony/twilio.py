"""Twilio Media Streams: JSON messages over a WebSocket (``connected``, ``start``, ``media``, ``stop``) carrying
base64 8 kHz mu-law audio in 20 ms pieces per track. ``TrackMixer`` lines the tracks up by their timestamps
and interleaves them, one channel per track (inbound = the caller, outbound = the other party)."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

RATE = 8000
MULAW_SILENCE = 0xFF


@dataclass
class StartInfo:
    stream_sid: str
    call_sid: str | None
    tracks: list[str]
    encoding: str
    sample_rate: int
    custom: dict[str, str]


def parse_start(msg: dict[str, Any]) -> StartInfo:
    start = msg.get("start") or {}
    fmt = start.get("mediaFormat") or {}
    tracks = [t for t in (start.get("tracks") or ["inbound"]) if t in ("inbound", "outbound")] or ["inbound"]
    return StartInfo(
        stream_sid=str(start.get("streamSid") or msg.get("streamSid") or ""),
        call_sid=start.get("callSid"),
        tracks=tracks,
        encoding=str(fmt.get("encoding", "audio/x-mulaw")),
        sample_rate=int(fmt.get("sampleRate", RATE)),
        custom={str(k): str(v) for k, v in (start.get("customParameters") or {}).items()},
    )


@dataclass
class TrackMixer:
    """Collects mu-law bytes per track at their timestamp (ms from stream start) and releases interleaved
    frames once every track has reached them. A track that falls more than ``max_lag`` samples behind is
    padded with silence so one silent party never stalls the other."""

    tracks: list[str]
    max_lag: int = RATE  # one second
    _buf: dict[str, bytearray] = field(default_factory=dict)
    _released: int = 0  # samples per track already released

    def __post_init__(self) -> None:
        self._buf = {t: bytearray() for t in self.tracks}

    def add(self, track: str, payload_b64: str, timestamp_ms: int | None) -> bytes:
        if track not in self._buf:
            return b""
        data = base64.b64decode(payload_b64)
        buf = self._buf[track]
        if timestamp_ms is not None:
            at = timestamp_ms * RATE // 1000 - self._released
            if at > len(buf):  # a gap in this track: silence
                buf.extend([MULAW_SILENCE] * (at - len(buf)))
        buf.extend(data)
        longest = max(len(b) for b in self._buf.values())
        for b in self._buf.values():
            if longest - len(b) > self.max_lag:
                b.extend([MULAW_SILENCE] * (longest - len(b) - self.max_lag))
        return self._release(min(len(b) for b in self._buf.values()))

    def flush(self) -> bytes:
        longest = max(len(b) for b in self._buf.values())
        for b in self._buf.values():
            b.extend([MULAW_SILENCE] * (longest - len(b)))
        return self._release(longest)

    def _release(self, n: int) -> bytes:
        if n <= 0:
            return b""
        parts = [bytes(self._buf[t][:n]) for t in self.tracks]
        for t in self.tracks:
            del self._buf[t][:n]
        self._released += n
        if len(parts) == 1:
            return parts[0]
        out = bytearray(n * len(parts))
        for i, p in enumerate(parts):
            out[i::len(parts)] = p
        return bytes(out)
