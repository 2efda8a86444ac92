"""Speaker identification: match the speakers found in a recording to enrolled voice profiles."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Profile:
    profile_id: str
    name: str
    embedding: np.ndarray


@dataclass(frozen=True)
class Match:
    profile_id: str | None  # set only when similarity reaches the threshold
    name: str | None
    similarity: float | None  # to the closest profile, reported even below the threshold


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    return float(np.dot(a, b) / (na * nb)) if na and nb else 0.0


def identify(centroids: dict[str, np.ndarray], profiles: list[Profile], threshold: float) -> dict[str, Match]:
    """Each profile names at most one speaker: pairs are taken greedily by descending similarity."""
    if not profiles:
        return {s: Match(None, None, None) for s in centroids}
    sims = {(s, p.profile_id): cosine(c, p.embedding) for s, c in centroids.items() for p in profiles
            if p.embedding.shape == c.shape}
    by_id = {p.profile_id: p for p in profiles}
    best = {s: max((v for (sp, _), v in sims.items() if sp == s), default=None) for s in centroids}
    out: dict[str, Match] = {}
    used: set[str] = set()
    for (speaker, pid), sim in sorted(sims.items(), key=lambda kv: -kv[1]):
        if sim < threshold or speaker in out or pid in used:
            continue
        out[speaker] = Match(pid, by_id[pid].name, round(sim, 4))
        used.add(pid)
    for speaker in centroids:
        if speaker not in out:
            closest = best[speaker]
            out[speaker] = Match(None, None, round(closest, 4) if closest is not None else None)
    return out
