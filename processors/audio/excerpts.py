"""Excerpts of one speaker from a recording: which of the speaker's turns to take, and the audio cut from them.
Used to enrol a voice profile from a transcript's speaker (the turns diarization found)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from processors.audio.pcm import mix_down


def pick_spans(turns: Iterable[Mapping[str, Any]], speaker: str, max_seconds: float,
               min_seconds: float = 1.0) -> list[tuple[float, float]]:
    """The speaker's turns to sample, longest first until ``max_seconds`` are covered (the last one trimmed),
    returned in time order. Turns shorter than ``min_seconds`` carry little of a voice and are left out unless
    nothing else is there."""
    own = [(float(t["start"]), float(t["end"])) for t in turns
           if t.get("speaker") == speaker and float(t["end"]) > float(t["start"])]
    long_enough = [s for s in own if s[1] - s[0] >= min_seconds] or own
    chosen: list[tuple[float, float]] = []
    total = 0.0
    for start, end in sorted(long_enough, key=lambda s: s[0] - s[1]):
        if total >= max_seconds:
            break
        end = min(end, start + max_seconds - total)
        chosen.append((start, end))
        total += end - start
    return sorted(chosen)


def cut(frames: np.ndarray, rate: int, spans: Iterable[tuple[float, float]], channel: int | None = None) -> np.ndarray:
    """The spans of ``frames`` (int16, shaped (samples, channels)) joined into one mono int16 signal: the given
    channel when the speaker is one party of a multichannel recording, else all channels mixed."""
    if frames.ndim == 1:
        frames = frames.reshape(-1, 1)
    if channel is not None and 0 <= channel < frames.shape[1]:
        frames = frames[:, channel:channel + 1]
    mono = mix_down(frames)
    pieces = [mono[max(0, int(start * rate)):max(0, int(end * rate))] for start, end in spans]
    pieces = [p for p in pieces if p.size]
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int16)
