"""Aggregates of calls per organization and named speaker, and how a new revision of a call replaces its
earlier contribution without counting the call twice.

A call **contributes** ``Totals`` to one bucket of its organization (key ``""``) and one per named speaker in
it (key = the name: a channel name such as ``agent``, or an enrolled voice's name), in the hour and day
windows of the time it was first counted. Totals are integers (milliseconds, counts, basis points), so adding
and subtracting contributions is exact.

Each job's applications are kept as a short **history** (``Applied``: the input offset, revision, window time
and contribution). An event for a job is applied when its revision is newer than the one the history held
just before the event's offset: the deltas (new contribution minus the previous one) go to the buckets and an
entry is appended. Replays of the same revision, or of an older one, change nothing.

Every bucket remembers the input offset that last changed it (``Bucket.applied``); all events touching one
organization's buckets come from one partition, in offset order. After a crash the stage reprocesses events
from its last committed offset onto whatever its changelogs kept: a bucket that already holds an event's
delta is left alone, and the history is read as it was before that offset, so reprocessing makes the same
decisions as the first pass, whichever of the state writes had reached the broker.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from processors.analytics.timeline import to_ms

ORG = ""  # the bucket key of the whole organization
HOUR_MS = 3_600_000
DAY_MS = 86_400_000


@dataclass(frozen=True)
class Totals:
    calls: int = 0
    audio_ms: int = 0  # call durations (handle time)
    speech_ms: int = 0
    talk_ms: int = 0  # the speaker's talk time (organization: everybody's)
    talk_share_bp: int = 0  # sum of the speaker's talk shares, in basis points (organization: unused)
    interruptions: int = 0  # made by the speaker (organization: all)
    interrupted: int = 0  # suffered by the speaker
    overlap_ms: int = 0
    silence_ms: int = 0
    words: int = 0
    required_missing: int = 0  # calls missing at least one required phrase
    hits: Mapping[str, int] = field(default_factory=dict)  # phrase id -> calls in which it was said

    def _combine(self, other: Totals, sign: int) -> Totals:
        counts: dict[str, int] = {f.name: getattr(self, f.name) + sign * getattr(other, f.name) for f in fields(self)
                  if f.name != "hits"}
        hits = {k: self.hits.get(k, 0) + sign * other.hits.get(k, 0) for k in {*self.hits, *other.hits}}
        return Totals(**counts, hits={k: v for k, v in sorted(hits.items()) if v})

    def __add__(self, other: Totals) -> Totals:
        return self._combine(other, 1)

    def __sub__(self, other: Totals) -> Totals:
        return self._combine(other, -1)

    def __bool__(self) -> bool:
        return self != Totals()

    def to_json(self) -> dict[str, Any]:
        return {f.name: (dict(getattr(self, f.name)) if f.name == "hits" else getattr(self, f.name))
                for f in fields(self)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Totals:
        counts = {f.name: int(data.get(f.name, 0)) for f in fields(cls) if f.name != "hits"}
        return cls(**counts, hits={str(k): int(v) for k, v in (data.get("hits") or {}).items()})


def contribution(call: Mapping[str, Any]) -> dict[str, Totals]:
    """What one ``analytics.calls`` record adds to its organization's bucket and to its named speakers'."""
    missing = 1 if call["required_missing"] else 0
    common: dict[str, int] = {"calls": 1, "audio_ms": to_ms(call["duration"]), "speech_ms": to_ms(call["speech_time"]),
              "silence_ms": to_ms(call["silence_total"]), "required_missing": missing}
    out = {ORG: Totals(**common, talk_ms=sum(to_ms(s["talk_time"]) for s in call["speakers"]),
                       interruptions=len(call["interruptions"]), overlap_ms=to_ms(call["overlap_time"]),
                       words=call["words"], hits={h["phrase_id"]: 1 for h in call["phrase_hits"]})}
    named: dict[str, list[Mapping[str, Any]]] = {}
    for s in call["speakers"]:
        if s.get("name"):
            named.setdefault(s["name"], []).append(s)
    for name, group in named.items():
        ids = {s["id"] for s in group}
        out[name] = Totals(
            **common, talk_ms=sum(to_ms(s["talk_time"]) for s in group),
            talk_share_bp=round(sum(s["talk_share"] for s in group) * 10_000),
            interruptions=sum(s["interruptions_made"] for s in group),
            interrupted=sum(s["interrupted"] for s in group),
            overlap_ms=sum(to_ms(s["overlap_time"]) for s in group), words=sum(s["words"] for s in group),
            hits={h["phrase_id"]: 1 for h in call["phrase_hits"] if h["speaker"] in ids})
    return out


@dataclass(frozen=True)
class Applied:
    """One application of a job's call to the aggregates."""

    offset: int
    revision: int
    at_ms: int  # the time whose windows hold the job (its first application's)
    contribution: dict[str, Totals]

    def to_json(self) -> dict[str, Any]:
        return {"offset": self.offset, "revision": self.revision, "at_ms": self.at_ms,
                "contribution": {k: v.to_json() for k, v in self.contribution.items()}}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Applied:
        return cls(int(data["offset"]), int(data["revision"]), int(data["at_ms"]),
                   {k: Totals.from_json(v) for k, v in data["contribution"].items()})


@dataclass(frozen=True)
class Plan:
    """What one event changes: ``deltas`` to add to the buckets (by key) in the windows of ``at_ms``, and the
    history entry recording it."""

    at_ms: int
    deltas: dict[str, Totals]
    entry: Applied


def plan(history: Iterable[Applied], revision: int, at_ms: int, new: dict[str, Totals], offset: int) -> Plan | None:
    """The change an event at ``offset`` carrying ``revision`` of a job makes, given the job's ``history``;
    None when the aggregates already count this revision or a newer one."""
    before = sorted((h for h in history if h.offset < offset), key=lambda h: h.offset)
    current = before[-1] if before else None
    if current is not None and current.revision >= revision:
        return None
    at = before[0].at_ms if before else at_ms
    old = current.contribution if current else {}
    deltas = {k: new.get(k, Totals()) - old.get(k, Totals()) for k in sorted({*new, *old})}
    return Plan(at, {k: d for k, d in deltas.items() if d}, Applied(offset, revision, at, new))


def record(history: list[Applied], entry: Applied) -> list[Applied]:
    """The history with ``entry`` (once, in offset order)."""
    if any(h.offset == entry.offset for h in history):
        return history
    return sorted([*history, entry], key=lambda h: h.offset)


@dataclass(frozen=True)
class Bucket:
    totals: Totals
    applied: int  # the input offset that last changed it

    def to_json(self) -> dict[str, Any]:
        return {"totals": self.totals.to_json(), "applied": self.applied}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Bucket | None:
        return None if data is None else cls(Totals.from_json(data["totals"]), int(data["applied"]))


def apply(bucket: Bucket | None, delta: Totals, offset: int) -> Bucket:
    """``bucket`` with ``delta`` added by the event at ``offset``, unless it already holds it."""
    if bucket is not None and bucket.applied >= offset:
        return bucket
    return Bucket((bucket.totals if bucket else Totals()) + delta, offset)


def window_start(at_ms: int, size_ms: int) -> int:
    """The start of the tumbling window of ``size_ms`` (aligned to the epoch, UTC) holding ``at_ms``."""
    return at_ms - at_ms % size_ms
