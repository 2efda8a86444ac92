"""The analytics stage's second agent: ``analytics.calls.by-org`` -> the live aggregates, in the faust tables
``hourly`` and ``daily`` (tumbling windows), and each changed window's totals on ``analytics.windows``.

Each organization's events come from one partition of ``analytics.calls.by-org``, so the offset of an event
orders every change to that organization's windows. The ``jobs`` table keeps each job's history of
applications (``processors.analytics.aggregate``): a new revision of a call replaces its earlier contribution
(subtract the old, add the new, in the windows of the time the call was first counted) and a replayed
revision changes nothing. Windows remember the offset that last changed them, so events reprocessed after a
crash are not counted twice, whichever of the three tables' changelog writes had reached the broker.

Every window an event touches is published (acknowledged) before the job's history is updated, even when the
window already held the event's change: a snapshot lost in a crash is published again when the event is
reprocessed. Snapshots carry the offset as their version; the materializer keeps the highest.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from foundation.events import AnalyticsWindow, Granularity
from foundation.logs import get_logger
from processors.analytics.aggregate import Applied, Bucket, apply, contribution, plan, record
from streams.stages.analytics.calls import millis

log = get_logger(__name__)

PublishWindow = Callable[[AnalyticsWindow], Awaitable[None]]


@dataclass(frozen=True)
class Windows:
    """One windowed faust table (``faust.Table(...).tumbling(size, expires=...)``) of the aggregates."""

    granularity: Granularity
    table: Any  # faust's WindowWrapper: .table is the table, keyed by (key, (start, end)); .table.window its window

    def range_of(self, at_ms: int) -> tuple[float, float]:
        start, end = self.table.table.window.current(at_ms / 1000)
        return float(start), float(end)

    def expired(self, window: tuple[float, float]) -> bool:
        """Whether faust has dropped (or is about to drop) this window from the table."""
        return bool(self.table.table.window.stale(window[1], time.time()))

    def get(self, key: str, window: tuple[float, float]) -> Bucket | None:
        return Bucket.from_json(self.table.table.get((key, window)))

    def set(self, key: str, window: tuple[float, float], bucket: Bucket) -> None:
        self.table.table[(key, window)] = bucket.to_json()


def bucket_key(org: str, speaker: str) -> str:
    return f"{org}\x1f{speaker}"


class Aggregates:
    def __init__(self, jobs: MutableMapping[str, Any], windows: list[Windows], publish: PublishWindow) -> None:
        self.jobs = jobs  # the faust table ``jobs``: job key -> its history (JSON)
        self.windows = windows
        self.publish = publish

    async def handle(self, ev: dict[str, Any], offset: int) -> None:
        org = ev["org_id"]
        job_key = bucket_key(org, ev.get("job_id") or ev["stream_id"])
        history = [Applied.from_json(h) for h in self.jobs.get(job_key) or []]
        change = plan(history, ev["revision"], millis(ev["completed_at"]), contribution(ev), offset)
        if change is None:
            log.info("revision already counted", job_key=job_key, revision=ev["revision"])
            return
        snapshots = []
        for windows in self.windows:
            window = windows.range_of(change.at_ms)
            if windows.expired(window):
                log.warning("window no longer kept; the call's aggregates are not corrected",
                            granularity=windows.granularity, org_id=org, revision=ev["revision"])
                continue
            for speaker, delta in change.deltas.items():
                key = bucket_key(org, speaker)
                before = windows.get(key, window)
                after = apply(before, delta, offset)
                if after is not before:
                    windows.set(key, window, after)
                snapshots.append(self._snapshot(org, speaker, windows, window, after))
        await asyncio.gather(*(self.publish(s) for s in snapshots))
        self.jobs[job_key] = [h.to_json() for h in record(history, change.entry)]

    @staticmethod
    def _snapshot(org: str, speaker: str, windows: Windows, window: tuple[float, float],
                  bucket: Bucket) -> AnalyticsWindow:
        t = bucket.totals
        start = round(window[0] * 1000)
        return AnalyticsWindow(
            org_id=org, speaker=speaker, granularity=windows.granularity, window_start=start,
            window_end=start + round(windows.table.table.window.size * 1000), calls=t.calls, audio_ms=t.audio_ms,
            speech_ms=t.speech_ms, talk_ms=t.talk_ms, talk_share_bp=t.talk_share_bp, interruptions=t.interruptions,
            interrupted=t.interrupted, overlap_ms=t.overlap_ms, silence_ms=t.silence_ms, words=t.words,
            required_missing=t.required_missing, phrase_hits=dict(t.hits), version=bucket.applied)
