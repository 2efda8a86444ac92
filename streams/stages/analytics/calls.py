"""The analytics stage's first agent: transcripts (and speaker turns) -> the analytics of each call revision.

A revision's segments wait in the ``streams`` table (one record per segment, keyed by stream, revision and
segment index; segment indices run from 0 without gaps, so no index record is needed) until its COMPLETED
event; an acoustically diarized call also waits for its turns (``speaker.turns`` FINAL, which post-processing
received before it completed the transcript, but which this stage may read after it). Then the call is
analyzed (``processors.analytics.call.analyze``) and published on ``analytics.calls`` and, keyed by
organization, on ``analytics.calls.by-org``; both sends are acknowledged before the revision's records are
deleted. A crash in between makes the stage analyze and publish the revision again (readers upsert by job and
revision; the aggregates count a revision once). A COMPLETED event whose segments are not all here (a
duplicate of one already handled) is skipped; a FAILED revision is forgotten.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from datetime import datetime
from typing import Any

from foundation.events import AnalyticsCall
from foundation.logs import get_logger
from processors.analytics.call import CallInput, Rules, analyze
from processors.analytics.phrases import Phrase
from streams.kafka.topics import ANALYTICS_CALLS, ANALYTICS_CALLS_BY_ORG, SPEAKER_TURNS

log = get_logger(__name__)

DEFAULT_ORG = "default"
Publish = Callable[[str, str, AnalyticsCall], Awaitable[None]]  # (topic, key, event), returns once acknowledged
PhraseLists = Callable[[str], Awaitable[list[Phrase]]]  # organization -> its phrases


def millis(value: int | datetime) -> int:
    return round(value.timestamp() * 1000) if isinstance(value, datetime) else int(value)


def _compact(segment: dict[str, Any]) -> dict[str, Any]:
    """What analytics needs of a segment (word probabilities and confidences dropped)."""
    keep = ("id", "index", "start", "end", "text", "speaker", "channel")
    return {**{k: segment.get(k) for k in keep},
            "words": [{k: v for k, v in w.items() if k != "probability"} for w in segment.get("words") or []]}


class Calls:
    def __init__(self, table: MutableMapping[str, Any], phrases: PhraseLists, rules: Rules,
                 publish: Publish) -> None:
        self.table = table  # the faust table ``streams`` (JSON values), partitioned like the inputs
        self.phrases = phrases
        self.rules = rules
        self.publish = publish

    @staticmethod
    def _key(ev: dict[str, Any], part: str) -> str:
        return f"{ev['stream_id']}\x1f{ev['revision']}\x1f{part}"

    async def handle(self, topic: str, ev: dict[str, Any]) -> None:
        if topic == SPEAKER_TURNS:
            await self._turns(ev)
        elif ev["kind"] == "SEGMENT":
            segment = ev["segment"]
            if segment is None:
                raise ValueError("SEGMENT event without a segment")
            self.table[self._key(ev, f"seg{segment['index']:06d}")] = _compact(segment)
            known = self.table.get(self._key(ev, "n")) or 0
            if segment["index"] + 1 > known:
                self.table[self._key(ev, "n")] = segment["index"] + 1
        elif ev["kind"] == "COMPLETED":
            if self._waits_for_turns(ev):
                self.table[self._key(ev, "completed")] = self._completion(ev)
            else:
                await self._finish(self._completion(ev))
        else:  # FAILED: no analytics for this revision
            self._forget(ev, self.table.get(self._key(ev, "n")) or 0)

    async def _turns(self, ev: dict[str, Any]) -> None:
        if ev["kind"] != "FINAL" or ev.get("error"):
            return
        self.table[self._key(ev, "turns")] = {"mode": ev["mode"], "turns": ev["turns"]}
        completed = self.table.get(self._key(ev, "completed"))
        if completed is not None:
            await self._finish(completed)

    def _waits_for_turns(self, ev: dict[str, Any]) -> bool:
        acoustic = (ev.get("options") or {}).get("diarize") == "acoustic"
        return acoustic and self.table.get(self._key(ev, "turns")) is None

    @staticmethod
    def _completion(ev: dict[str, Any]) -> dict[str, Any]:
        keep = ("stream_id", "job_id", "revision", "model", "pipeline_version", "language", "duration",
                "segment_count", "source", "speakers", "options")
        return {**{k: ev.get(k) for k in keep}, "completed_at": millis(ev["produced_at"])}

    def _forget(self, ev: dict[str, Any], count: int) -> None:
        for part in [*(f"seg{i:06d}" for i in range(count)), "n", "turns", "completed"]:
            if self.table.get(self._key(ev, part)) is not None:
                del self.table[self._key(ev, part)]

    async def _finish(self, done: dict[str, Any]) -> None:
        count = int(done.get("segment_count") or 0)
        segments = [self.table.get(self._key(done, f"seg{i:06d}")) for i in range(count)]
        present = [s for s in segments if s is not None]
        if len(present) != count:
            log.warning("completed revision without all its segments (already analyzed, or lost); skipped",
                        stream_id=done["stream_id"], revision=done["revision"], expected=count, found=len(present))
            self._forget(done, max(count, self.table.get(self._key(done, "n")) or 0))
            return
        options = done.get("options") or {}
        org = options.get("org_id") or DEFAULT_ORG
        turns = self.table.get(self._key(done, "turns"))
        call = CallInput(
            stream_id=done["stream_id"], revision=done["revision"], segments=present,
            speakers=done.get("speakers") or [],
            turns=turns["turns"] if turns and turns.get("mode") == "acoustic" else None,
            job_id=done.get("job_id"), org_id=org, duration=done.get("duration"), language=done.get("language"),
            model=done.get("model") or "", pipeline_version=done.get("pipeline_version") or "",
            source=done.get("source") or "producer", completed_at=done["completed_at"])
        record = analyze(call, await self.phrases(org), self.rules)
        event = AnalyticsCall(**record)
        await self.publish(ANALYTICS_CALLS, call.stream_id, event)
        await self.publish(ANALYTICS_CALLS_BY_ORG, org, event)
        log.info("call analyzed", stream_id=call.stream_id, job_id=call.job_id, revision=call.revision,
                 speakers=len(record["speakers"]), phrase_hits=len(record["phrase_hits"]),
                 required_missing=len(record["required_missing"]))
        self._forget(done, max(count, self.table.get(self._key(done, "n")) or 0))
