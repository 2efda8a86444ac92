"""Decode any audio (or video) file PyAV/FFmpeg understands into 16 kHz 16-bit PCM chunks, channels kept.

Faster-whisper decodes with the same library and resampler, so the pipeline hears exactly what a direct
faster-whisper run on the file hears.

Truncated recordings (an interrupted upload or copy: the end of the file is missing) are refused, the same way
for every container, with a reason that says so: the gateway's probe refuses them before anything is kept
(``check_complete``, 422), and decoding (``decode_chunks``, which ingest runs) fails the job with the reason if
one gets that far. A recording is truncated when

- its audio cannot be decoded to its end (a FLAC, M4A or Matroska file cut short stops with a decoder error);
- its audio ends more than ``TRUNCATION_TOLERANCE_S`` before the duration its header declares (an MP3 with a
  Xing/Info/VBRI header, FLAC, MP4/M4A, Matroska) -- durations FFmpeg merely estimates from the bitrate (an MP3
  without such a header, raw AAC) declare nothing and are not compared;
- its container says bytes are missing: a RIFF (WAV) or FORM (AIFF) header, or a top-level MP4/M4A/MOV box,
  that declares more bytes than the file has; an Ogg stream (Vorbis, Opus, FLAC in Ogg) without its final
  end-of-stream page.

A cut that none of these can see (an MP3 without a VBR header, cut at a frame boundary) is a shorter recording,
and is transcribed as one.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import av
import numpy as np

TARGET_RATE = 16_000
TRUNCATION_TOLERANCE_S = 0.5
# formats whose durations FFmpeg estimates from the bitrate (raw elementary streams): they declare nothing
ESTIMATED_DURATION_FORMATS = {"aac", "ac3", "eac3", "dts", "mp2", "amr", "adts", "loas", "truehd"}
TAIL_SECONDS = 3.0  # how much of the end check_complete decodes
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


def probe(path: Source) -> AudioInfo:
    if _size(path) == 0:
        raise DecodeError("empty file (0 bytes)")
    check_structure(path)
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
    """Yield consecutive chunks of ``chunk_seconds`` (the last may be shorter). Raises DecodeError, also after
    the last chunk when the recording turns out to be truncated."""
    if _size(path) == 0:
        raise DecodeError("empty file (0 bytes)")
    check_structure(path)
    vbr_header = _has_vbr_header(path)
    declared: float | None = None
    size = int(TARGET_RATE * chunk_seconds)
    produced = 0
    pending: list[np.ndarray] = []
    pending_len = 0
    try:
        with _open(path) as container:
            stream = _audio_stream(container)
            declared = declared_seconds(container, stream, vbr_header)
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
            raise DecodeError(_cut_short(produced / TARGET_RATE, _why(exc))) from exc
        raise DecodeError(f"unsupported or corrupt file: {_why(exc)}") from exc
    if pending_len:
        yield PcmChunk(produced, np.concatenate(pending))
        produced += pending_len
    if produced == 0:
        raise DecodeError("the file holds no audio samples")
    _compare(declared, produced / TARGET_RATE)


def _cut_short(at: float, why: str) -> str:
    return f"the file is truncated or corrupt: its audio cannot be decoded after {at:.1f} s ({why})"


def _compare(declared: float | None, decoded: float) -> None:
    if declared is not None and decoded < declared - TRUNCATION_TOLERANCE_S:
        raise DecodeError(f"the file is truncated: its header declares {declared:.1f} s of audio, but the audio "
                          f"ends at {decoded:.1f} s")


def _size(source: Source) -> int:
    if isinstance(source, Path):
        return source.stat().st_size
    size = source.seek(0, io.SEEK_END)
    source.seek(0)
    return size


def _bytes_at(source: Source, offset: int, count: int) -> bytes:
    if isinstance(source, Path):
        with open(source, "rb") as fh:
            fh.seek(offset)
            return fh.read(count)
    source.seek(offset)
    data = source.read(count) or b""
    source.seek(0)
    return data


def _open(source: Source) -> av.container.InputContainer:
    """A path, or a seekable file object (read from its start: e.g. a stored object decrypted as it is read)."""
    if isinstance(source, Path):
        return av.open(str(source), mode="r", metadata_errors="ignore")
    source.seek(0)
    return av.open(source, mode="r", metadata_errors="ignore")


def check_complete(path: Source) -> None:
    """Raise DecodeError when the recording is truncated (see the module's docstring): its container's
    structure, then the end of its audio against the duration it declares (decoding the last seconds only)."""
    check_structure(path)
    vbr_header = _has_vbr_header(path)
    try:
        with _open(path) as container:
            stream = _audio_stream(container)
            declared = declared_seconds(container, stream, vbr_header)
            if declared is None:
                return
            end = _audio_end(container, stream, max(0.0, declared - TAIL_SECONDS))
            if end is None:  # nothing where the end should be: read it all to say where the audio stops
                container.seek(0)
                end = _audio_end(container, stream, 0.0)
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise DecodeError(f"unsupported or corrupt file: {_why(exc)}") from exc
    _compare(declared, end or 0.0)


def _audio_end(container: av.container.InputContainer, stream: av.audio.stream.AudioStream,
               start: float) -> float | None:
    """Where the audio ends (seconds), decoding from about ``start``; None when nothing decodes from there."""
    if start > 0 and stream.time_base is not None:
        try:
            container.seek(int(start / stream.time_base), stream=stream, backward=True)
        except av.error.FFmpegError:
            return None
    end: float | None = None
    try:
        for frame in _frames(container, stream):
            if frame.time is not None and frame.sample_rate:
                end = frame.time + frame.samples / frame.sample_rate
    except (av.error.FFmpegError, ValueError) as exc:
        if end is None:
            return None
        raise DecodeError(_cut_short(end, _why(exc))) from exc
    return end


def declared_seconds(container: av.container.InputContainer, stream: av.audio.stream.AudioStream,
                     vbr_header: bool) -> float | None:
    """The duration of the audio stream its header states, or None when there is none (or FFmpeg estimated it
    from the bitrate, which says nothing about missing bytes). ``vbr_header``: ``_has_vbr_header`` of the file,
    read before the container was opened (the container may be reading the same file object)."""
    if stream.duration is None or stream.time_base is None:
        return None
    formats = set((container.format.name or "").split(","))
    if formats & ESTIMATED_DURATION_FORMATS or ("mp3" in formats and not vbr_header):
        return None
    return float(stream.duration * stream.time_base)


def _has_vbr_header(path: Source) -> bool:
    """Whether an MP3's first frame carries a Xing, Info or VBRI header (which counts the file's frames)."""
    head = _bytes_at(path, 0, 1 << 16)
    start = 0
    if head[:3] == b"ID3" and len(head) >= 10:  # skip an ID3v2 tag (its size is a 28-bit "syncsafe" integer)
        size = (head[6] & 0x7F) << 21 | (head[7] & 0x7F) << 14 | (head[8] & 0x7F) << 7 | (head[9] & 0x7F)
        start = 10 + size
    sync = next((i for i in range(start, len(head) - 1) if head[i] == 0xFF and head[i + 1] & 0xE0 == 0xE0), -1)
    if sync < 0:
        return False
    frame = head[sync:sync + 200]
    return any(tag in frame for tag in (b"Xing", b"Info", b"VBRI"))


def check_structure(path: Source) -> None:
    """Raise DecodeError when the container's own structure says bytes are missing at the end."""
    size = _size(path)
    head = _bytes_at(path, 0, 12)
    if head[:4] in (b"RIFF", b"FORM") and len(head) >= 8:
        declared = struct.unpack("<I" if head[:4] == b"RIFF" else ">I", head[4:8])[0] + 8
        if 8 < declared < 0x7FFFFFFF and declared - size > 64:  # 0 and huge sizes: written while streaming
            raise DecodeError(f"the file is truncated: its {head[:4].decode()} header declares {declared} "
                              f"bytes, but the file has {size}")
    elif head[:4] == b"OggS":
        if not _ogg_ends(_bytes_at(path, max(0, size - 70_000), 70_000)):
            raise DecodeError("the file is truncated: its Ogg stream ends without its final page")
    elif head[4:8] == b"ftyp":
        _check_boxes(path, size)


def _check_boxes(path: Source, size: int, limit: int = 10_000) -> None:
    """An MP4/M4A/MOV file's top-level boxes (size, type) must all fit in the file."""
    at = 0
    for _ in range(limit):
        if at + 8 > size:
            return
        header = _bytes_at(path, at, 16)
        length, kind = struct.unpack(">I", header[:4])[0], header[4:8].decode("latin-1")
        if length == 1 and len(header) == 16:  # a 64-bit size follows the type
            length = struct.unpack(">Q", header[8:16])[0]
        elif length == 0:  # the box runs to the end of the file
            return
        if length < 8:
            return  # not a box header: leave the verdict to the decoder
        if at + length > size:
            raise DecodeError(f"the file is truncated: its {kind!r} box declares {length} bytes, but only "
                              f"{size - at} remain")
        at += length


def _ogg_ends(tail: bytes) -> bool:
    """Whether the last Ogg page in ``tail`` (the end of a file) is whole and marks the end of its stream."""
    at = tail.rfind(b"OggS")
    while at >= 0:
        if len(tail) - at >= 27 and tail[at + 4] == 0:  # version 0: a page header, not "OggS" inside audio
            segments = tail[at + 27:at + 27 + tail[at + 26]]
            whole = len(segments) == tail[at + 26] and at + 27 + len(segments) + sum(segments) <= len(tail)
            return whole and bool(tail[at + 5] & 0x04)
        at = tail.rfind(b"OggS", 0, at)
    return False


def _frames(container: av.container.InputContainer,
            stream: av.audio.stream.AudioStream) -> Iterator[av.AudioFrame]:
    for packet in container.demux(stream):
        yield from packet.decode()
