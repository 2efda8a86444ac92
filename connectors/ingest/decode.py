"""Decode any audio (or video) file PyAV/FFmpeg understands into 16 kHz 16-bit PCM chunks, channels kept.

Faster-whisper decodes with the same library and resampler, so the pipeline hears exactly what a direct
faster-whisper run on the file hears.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import av
import numpy as np

TARGET_RATE = 16_000
# a file, or a seekable binary file object (e.g. connectors.storage.crypto.DecryptedView)
Source = Path | IO[bytes] | io.RawIOBase


class DecodeError(ValueError):
    """The file is empty, not audio, or corrupt; the message says which, in words for the user."""


@dataclass(frozen=True)
class AudioInfo:
    codec: str
    container: str
    sample_rate: int
    channels: int
    duration: float | None


@dataclass(frozen=True)
class PcmChunk:
    start_sample: int  # per channel, at TARGET_RATE
    frames: np.ndarray  # int16 (n, channels)


def _size(source: Source) -> int:
    if isinstance(source, Path):
        return source.stat().st_size
    size = source.seek(0, io.SEEK_END)
    source.seek(0)
    return size


def _open(source: Source) -> av.container.InputContainer:
    """A path, or a seekable file object (read from its start: e.g. a stored object decrypted as it is read)."""
    if isinstance(source, Path):
        return av.open(str(source), mode="r", metadata_errors="ignore")
    source.seek(0)
    return av.open(source, mode="r", metadata_errors="ignore")


def probe(path: Source) -> AudioInfo:
    if _size(path) == 0:
        raise DecodeError("empty file (0 bytes)")
    try:
        with _open(path) as container:
            stream = _audio_stream(container)
            duration = None
            if stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                duration = container.duration / av.time_base
            return AudioInfo(stream.codec_context.name, container.format.name, stream.codec_context.sample_rate or 0,
                             stream.codec_context.channels or 0, duration)
    except DecodeError:
        raise
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise DecodeError(f"unsupported or corrupt file: {_why(exc)}") from exc


def channels_identical(path: Source, seconds: float = 30.0, threshold: float = 0.98) -> bool:
    """True when every channel carries the same signal (a mono recording stored as stereo), judged by the
    correlation of the first ``seconds``; such audio is one source, not one party per channel."""
    frames = []
    total = 0
    for chunk in decode_chunks(path):
        frames.append(chunk.frames.astype(np.float64))
        total += len(chunk.frames)
        if total >= seconds * TARGET_RATE:
            break
    audio = np.concatenate(frames)
    if audio.shape[1] < 2:
        return True
    energy = audio.std(axis=0)
    if np.any(energy == 0):  # a silent channel: whatever the other holds, it is not a second party
        return bool(np.all(energy == 0))
    corr = np.atleast_2d(np.corrcoef(audio.T))
    return bool(corr[np.triu_indices(audio.shape[1], 1)].min() >= threshold)


def _why(exc: Exception) -> str:
    """The decoder's reason without the server-side path FFmpeg puts in its messages."""
    return str(getattr(exc, "strerror", None) or exc)


def _audio_stream(container: av.container.InputContainer) -> av.audio.stream.AudioStream:
    if not container.streams.audio:
        kinds: list[str] = sorted({str(s.type) for s in container.streams}) or ["nothing"]
        raise DecodeError(f"no audio stream in the file (read as {container.format.long_name or container.format.name}"
                          f", it contains {', '.join(kinds)})")
    return container.streams.audio[0]


def decode_chunks(path: Source, chunk_seconds: float = 1.0) -> Iterator[PcmChunk]:
    """Yield consecutive chunks of ``chunk_seconds`` (the last may be shorter). Raises DecodeError."""
    if _size(path) == 0:
        raise DecodeError("empty file (0 bytes)")
    size = int(TARGET_RATE * chunk_seconds)
    produced = 0
    pending: list[np.ndarray] = []
    pending_len = 0
    try:
        with _open(path) as container:
            stream = _audio_stream(container)
            channels = max(1, stream.codec_context.channels or 1)
            layout = stream.codec_context.layout.name if channels > 2 else ("stereo" if channels == 2 else "mono")
            resampler = av.AudioResampler(format="s16", layout=layout, rate=TARGET_RATE)
            for frame in _frames(container, stream):
                for out in resampler.resample(frame):
                    arr = out.to_ndarray().reshape(-1, channels)
                    pending.append(arr)
                    pending_len += len(arr)
                    while pending_len >= size:
                        buf = np.concatenate(pending)
                        yield PcmChunk(produced, buf[:size])
                        produced += size
                        pending, pending_len = [buf[size:]], len(buf) - size
            for out in resampler.resample(None):
                arr = out.to_ndarray().reshape(-1, channels)
                pending.append(arr)
                pending_len += len(arr)
    except DecodeError:
        raise
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        if produced:
            raise DecodeError(f"audio could not be decoded after {produced / TARGET_RATE:.1f} s: {_why(exc)}") from exc
        raise DecodeError(f"unsupported or corrupt file: {_why(exc)}") from exc
    if pending_len:
        yield PcmChunk(produced, np.concatenate(pending))
        produced += pending_len
    if produced == 0:
        raise DecodeError("the file holds no audio samples")


def _frames(container: av.container.InputContainer,
            stream: av.audio.stream.AudioStream) -> Iterator[av.AudioFrame]:
    for packet in container.demux(stream):
        yield from packet.decode()
