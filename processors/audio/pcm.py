"""Raw PCM conversions: interleaved bytes (16-bit or mu-law) -> int16 frames per channel, channel mixing, streaming
resampling, and float samples for the models."""

from __future__ import annotations

import numpy as np
import soxr

PIPELINE_RATE = 16_000

# ITU-T G.711 mu-law expansion table, built once.
_MULAW = np.array(
    [((((~u & 0x0F) << 3) + 0x84) << ((~u & 0x70) >> 4)) - 0x84 for u in range(256)], dtype=np.int32
)
_MULAW = np.where(np.arange(256) & 0x80, _MULAW, -_MULAW).astype(np.int16)


class AudioFormatError(ValueError):
    """Audio bytes that do not match the format an event declares."""


def decode_pcm(data: bytes, channels: int, encoding: str = "PCM_S16LE") -> np.ndarray:
    """Interleaved bytes -> int16 array shaped (frames, channels)."""
    if channels < 1:
        raise AudioFormatError(f"channel count must be >= 1, got {channels}")
    if encoding == "MULAW":
        samples = _MULAW[np.frombuffer(data, dtype=np.uint8)]
    elif encoding == "PCM_S16LE":
        if len(data) % 2:
            raise AudioFormatError(f"16-bit PCM needs an even byte count, got {len(data)}")
        samples = np.frombuffer(data, dtype="<i2").astype(np.int16, copy=False)
    else:
        raise AudioFormatError(f"unsupported encoding {encoding!r}")
    if samples.size % channels:
        raise AudioFormatError(f"{samples.size} samples do not split into {channels} channels")
    return samples.reshape(-1, channels)


def mix_down(frames: np.ndarray) -> np.ndarray:
    """(frames, channels) int16 -> mono int16 (mean of channels)."""
    if frames.shape[1] == 1:
        return frames[:, 0]
    return frames.astype(np.int32).mean(axis=1).round().astype(np.int16)


class StreamResampler:
    """Resamples a stream chunk by chunk without edge effects at chunk boundaries (soxr keeps the filter state)."""

    def __init__(self, rate: int, target: int = PIPELINE_RATE) -> None:
        self.rate, self.target = rate, target
        self._soxr = soxr.ResampleStream(rate, target, 1, dtype="float32", quality="HQ") if rate != target else None

    def __call__(self, mono: np.ndarray, last: bool = False) -> np.ndarray:
        if self._soxr is None:
            return mono
        out = self._soxr.resample_chunk(mono.astype(np.float32) / 32768.0, last=last)
        return np.clip(np.round(out * 32768.0), -32768, 32767).astype(np.int16)


def to_float(pcm: np.ndarray) -> np.ndarray:
    """int16 -> float32 in [-1, 1), what Whisper models take."""
    return pcm.astype(np.float32) / 32768.0
