"""Stretches of a window's audio laid end to end for recognition, and the way back to stream time.

A merge-mode speech window too long for one Whisper window (``processors.vad.segmenter``) spans the stream
contiguously but lists what to read of it: its utterances with the pauses between them shortened. The recogniser
reads those pieces packed together (fewer, fuller Whisper windows, as faster-whisper's batched pipeline packs its
VAD's speech); the word timings it finds in the packed audio are mapped back to where each word was said.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

RATE = 16_000


@dataclass(frozen=True)
class Packed:
    """A window's pieces of speech laid end to end: ``audio`` and, per piece, where it begins in the packed audio
    and in the stream (seconds)."""

    audio: np.ndarray
    packed_starts: tuple[float, ...]
    stream_starts: tuple[float, ...]
    lengths: tuple[float, ...]

    def to_stream(self, t: float, *, end: bool = False) -> float:
        """The stream time of packed time ``t``. A time on the seam between two pieces belongs to the piece it ends
        (``end=True``, e.g. a word's end) or to the one it begins (a word's start)."""
        k = bisect_right(self.packed_starts, t) - 1
        if end and k > 0 and t <= self.packed_starts[k]:
            k -= 1
        k = max(0, k)
        into = min(max(t - self.packed_starts[k], 0.0), self.lengths[k])
        return self.stream_starts[k] + into


def pack(audio: np.ndarray, start: float, pieces: Sequence[tuple[float, float]], rate: int = RATE) -> Packed:
    """Pack the ``pieces`` (stream seconds, ordered, inside the window) of a window's ``audio`` that begins at
    stream time ``start``. Piece bounds are rounded to samples; a piece outside the audio is dropped."""
    parts: list[np.ndarray] = []
    packed_starts: list[float] = []
    stream_starts: list[float] = []
    lengths: list[float] = []
    at = 0
    for lo, hi in pieces:
        a = min(max(round((lo - start) * rate), 0), len(audio))
        b = min(max(round((hi - start) * rate), a), len(audio))
        if b <= a:
            continue
        parts.append(audio[a:b])
        packed_starts.append(at / rate)
        stream_starts.append(start + a / rate)
        lengths.append((b - a) / rate)
        at += b - a
    if not parts:  # nothing listed inside the audio: the whole window
        return Packed(audio, (0.0,), (start,), (len(audio) / rate,))
    return Packed(np.concatenate(parts), tuple(packed_starts), tuple(stream_starts), tuple(lengths))
