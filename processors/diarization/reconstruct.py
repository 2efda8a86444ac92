"""Speaker turns of one window from its chunks' local activity, once every local speaker has a global label.

As in pyannote: per chunk, a global speaker is active where any local speaker mapped to it is; summing over
the overlapping chunks scores each speaker per frame; the window's speaker count per frame (estimated from
the segmentation alone) says how many of the best-scored speakers talk there. Two speakers at once give
overlapping turns.
"""

from __future__ import annotations

import numpy as np

from processors.diarization.backend import Turn


def window_activity(chunk_frames: np.ndarray, active: np.ndarray, labels: np.ndarray, count: np.ndarray,
                    speakers: int) -> np.ndarray:
    """Binary (frames, speakers) activity of a window. ``chunk_frames[r]`` is the window frame where the
    chunk of row ``r`` starts; ``active[r]`` that row's frames; ``labels[r]`` its global speaker."""
    frames = len(count)
    score = np.zeros((frames, speakers), np.float32)
    for first in np.unique(chunk_frames):
        rows = np.flatnonzero(chunk_frames == first)
        per_chunk = np.zeros((active.shape[1], speakers), bool)
        for r in rows:
            per_chunk[:, labels[r]] |= active[r]
        lo, hi = max(0, first), min(frames, first + active.shape[1])
        if hi > lo:
            score[lo:hi] += per_chunk[lo - first: hi - first]
    rank = np.argsort(np.argsort(-score, axis=1, kind="stable"), axis=1)
    return (rank < count[:, None]) & (score > 0)


def turns_from_activity(binary: np.ndarray, names: list[str], start: float, step: float, duration: float,
                        end: float, min_gap: float = 0.0) -> list[Turn]:
    """Runs of active frames as turns in stream seconds (frame ``f`` is centred at
    ``start + f * step + duration / 2``); gaps shorter than ``min_gap`` inside one speaker are bridged."""
    out: list[Turn] = []
    for s, name in enumerate(names):
        col = np.concatenate([[False], binary[:, s], [False]])
        edges = np.flatnonzero(np.diff(col.astype(np.int8)))
        runs = [[start + a * step + duration / 2, min(end, start + b * step + duration / 2)]
                for a, b in zip(edges[0::2], edges[1::2], strict=True)]
        merged: list[list[float]] = []
        for a, b in runs:
            if merged and a - merged[-1][1] < min_gap:
                merged[-1][1] = b
            elif b > a:
                merged.append([a, b])
        out += [Turn(round(a, 3), round(b, 3), name) for a, b in merged]
    return sorted(out, key=lambda t: (t.start, t.end, t.speaker))


def join_touching(turns: list[Turn], gap: float = 0.05) -> list[Turn]:
    """Merge consecutive turns of one speaker that touch (e.g. across the boundary of two windows)."""
    last: dict[str, Turn] = {}
    out: list[Turn] = []
    for t in sorted(turns, key=lambda t: (t.start, t.end)):
        prev = last.get(t.speaker)
        if prev is not None and t.start - prev.end <= gap:
            prev.end = max(prev.end, t.end)
            continue
        turn = Turn(t.start, t.end, t.speaker)
        last[t.speaker] = turn
        out.append(turn)
    return out
