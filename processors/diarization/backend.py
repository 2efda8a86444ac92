"""The diarization backend interface. A backend turns speech into speaker embeddings window by window (so a
stream's embeddings can be kept as per-stream state while it flows), clusters them into speakers at the end,
and computes voice profiles for enrollment."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass
class WindowEmbeddings:
    """Embeddings of the speech inside one window: subsegments (start, end) in stream seconds, one row each."""

    subsegments: np.ndarray  # float32 (n, 2)
    embeddings: np.ndarray  # float32 (n, dim)

    def to_bytes(self) -> bytes:
        import io

        buf = io.BytesIO()
        np.savez(buf, subsegments=self.subsegments.astype(np.float32), embeddings=self.embeddings.astype(np.float32))
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, raw: bytes) -> WindowEmbeddings:
        import io

        data = np.load(io.BytesIO(raw))
        return cls(data["subsegments"], data["embeddings"])


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
        """Group all embeddings of a stream into speakers; turns are in stream time, sorted."""
        ...

    def voiceprint(self, audio: np.ndarray) -> tuple[np.ndarray, float]:
        """One embedding for a person's recording (mean of its speech) and the seconds of speech used."""
        ...
