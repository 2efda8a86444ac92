"""Client audio frames -> ``audio.chunks`` events for one live stream, archived as a WAV for replay."""

from __future__ import annotations

import asyncio
import os
import tempfile
import wave
from collections import deque
from pathlib import Path

from connectors.storage.base import ObjectStore
from foundation.events import AudioChunk, AudioEncoding
from gateway.publisher import Publisher
from processors.audio.pcm import decode_pcm
from streams.kafka.lanes import chunk_lane

BYTES_PER_SAMPLE = {"PCM_S16LE": 2, "MULAW": 1}


class LiveAudio:
    """Accumulates frames into chunks of at least ``min_seconds`` (and at most one second) and publishes each
    with a contiguous ``seq``; ``end`` publishes the end-of-stream chunk (so whatever was heard is finalized).

    A chunk's publication is not awaited before the next frame is read: up to ``max_unconfirmed_s`` of audio may
    wait for the broker's acknowledgement (the producer keeps their order), so a broker that takes a while to
    confirm each write does not slow the reading of the connection, where the client's pongs wait behind its
    frames (a session reading one frame per acknowledgement fell behind real time under load and was closed by
    the heartbeat). Past that bound ``write`` waits for the oldest, so a stalled broker still pushes back on the
    client; a failed publication fails the next ``write`` (or ``end``)."""

    def __init__(self, publisher: Publisher, store: ObjectStore, *, stream_id: str, job_id: str,
                 sample_rate: int, channels: int, encoding: AudioEncoding, options: dict[str, str], source: str,
                 object_key: str, spool: Path, min_seconds: float = 0.1, max_unconfirmed_s: float = 5.0) -> None:
        self.publisher = publisher
        self.stream_id, self.job_id = stream_id, job_id
        self.rate, self.channels, self.encoding = sample_rate, channels, encoding
        self.options, self.source = options, source
        self.frame_bytes = BYTES_PER_SAMPLE[encoding] * channels
        self.min_bytes = max(self.frame_bytes, int(sample_rate * min_seconds) * self.frame_bytes)
        self.max_bytes = sample_rate * self.frame_bytes
        self.seq = 0
        self.samples = 0
        self.pending = bytearray()
        self.ended = False
        self.max_unconfirmed = max(1, int(max_unconfirmed_s / min_seconds))
        self._unconfirmed: deque[asyncio.Task[None]] = deque()
        self.store, self.object_key = store, object_key
        # the session's audio is archived (encrypted, in object storage) when it ends; until then it is spooled
        fd, name = tempfile.mkstemp(dir=spool, prefix="live-", suffix=".wav")
        os.close(fd)
        self._tmp = Path(name)
        self._wav = wave.open(str(self._tmp), "wb")  # noqa: SIM115 (closed in end())
        self._wav.setnchannels(channels)
        self._wav.setsampwidth(2)
        self._wav.setframerate(sample_rate)

    @property
    def seconds(self) -> float:
        return self.samples / self.rate

    async def write(self, data: bytes) -> None:
        if self.ended:
            return
        self.pending.extend(data)
        while len(self.pending) >= self.min_bytes:
            take = min(len(self.pending), self.max_bytes)
            take -= take % self.frame_bytes
            await self._publish(bytes(self.pending[:take]), last=False)
            del self.pending[:take]

    async def end(self, error: str | None = None) -> None:
        if self.ended:
            return
        self.ended = True
        tail = bytes(self.pending[: len(self.pending) - len(self.pending) % self.frame_bytes])
        self.pending.clear()
        try:  # the spooled plaintext goes whatever fails (a broker or a store that is down)
            if tail:
                await self._publish(tail, last=False)
            await self._publish(b"", last=True, error=error)
            await self._confirm(0)
            self._wav.close()
            await self.store.put_file(self.object_key, self._tmp, "audio/wav")
        finally:
            self._wav.close()
            self._tmp.unlink(missing_ok=True)

    async def _publish(self, data: bytes, last: bool, error: str | None = None) -> None:
        if data:  # the header's lengths are written once, at close (``writeframes`` rewrites them every frame)
            self._wav.writeframesraw(decode_pcm(data, self.channels, self.encoding).tobytes())
        await self._confirm(self.max_unconfirmed - 1)
        # the task produces at its first step (tasks start in the order they are made): chunks keep their order
        self._unconfirmed.append(asyncio.ensure_future(self.publisher.publish(
            chunk_lane(self.options, self.source), AudioChunk(
                stream_id=self.stream_id, job_id=self.job_id, seq=self.seq, start_sample=self.samples,
                sample_rate=self.rate, channels=self.channels, encoding=self.encoding, data=data, end_of_stream=last,
                error=error, options=self.options if self.seq == 0 else {}, source=self.source))))
        self.seq += 1
        self.samples += len(data) // self.frame_bytes

    async def _confirm(self, keep: int) -> None:
        """Wait until at most ``keep`` publications are unconfirmed; the first failure is raised (the rest are
        awaited first, so none is left running)."""
        failure: BaseException | None = None
        while len(self._unconfirmed) > keep or (failure is not None and self._unconfirmed):
            task = self._unconfirmed.popleft()
            try:
                await task
            except Exception as exc:  # raised below, once the others are settled
                failure = failure or exc
        while self._unconfirmed and self._unconfirmed[0].done():  # settled ones: their errors count too
            task = self._unconfirmed.popleft()
            if not task.cancelled() and task.exception() is not None and failure is None:
                failure = task.exception()
        if failure is not None:
            raise failure


def archive_key(job_id: str) -> str:
    return f"live/{job_id}/audio.wav"



