"""Strict priority between a stage's input lanes (``streams.kafka.lanes``), decided from backlog facts.

``LanePriority`` is told which lane partitions are assigned and which of them have events waiting, and answers
which partitions to pause and resume and how many events the next batch may take:

- every lane after the first one with a backlog is paused, the rest resumed (a paused partition keeps its
  position; resuming fetches from there);
- while a higher lane has been busy lately (``LaneSettings.busy_s``) and lower lanes run, batches are small
  (``LaneSettings.yield_batch``): the next urgent event then waits for one small piece of lower-lane work,
  never for a whole large batch of it;
- when the top lane is idle, lower-lane work comes in bounded batches (``LaneSettings.lower_batch``);
- when the top lane has a backlog (the others paused), a batch takes all it may.

``Backlogs`` finds the facts from what the consumer already knows (the watermarks of the last fetch and the
positions), with no request to the broker.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from confluent_kafka import TopicPartition

from foundation.settings import LaneSettings

Partition = tuple[str, int]  # (full topic name, partition)


@dataclass(frozen=True)
class LaneDecision:
    pause: tuple[Partition, ...]
    resume: tuple[Partition, ...]
    batch_limit: int
    busy: str | None  # the highest lane with a backlog, if any


class LanePriority:
    def __init__(self, lanes: Sequence[str], max_batch: int, *, yield_batch: int, lower_batch: int,
                 busy_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.lanes = list(lanes)  # full topic names, highest priority first
        self.max_batch = max_batch
        self.yield_batch = min(max_batch, yield_batch)
        self.lower_batch = lower_batch
        self.busy_s = busy_s
        self.clock = clock
        self.paused: set[Partition] = set()
        self.seen = [float("-inf")] * len(self.lanes)  # when each lane last had events

    @classmethod
    def for_stage(cls, stage: str, lanes: Sequence[str], max_batch: int, settings: LaneSettings) -> LanePriority:
        return cls(lanes, max_batch, yield_batch=settings.yield_batch_of(stage),
                   lower_batch=settings.lower_batch_of(stage, max_batch), busy_s=settings.busy_s)

    def note(self, topics: Iterable[str]) -> None:
        """The topics of the events just consumed: a lane that had events stays busy for ``busy_s``."""
        if not self.lanes:
            return
        now = self.clock()
        for topic in topics:
            if topic in self.lanes:
                self.seen[self.lanes.index(topic)] = now

    def decide(self, assigned: Iterable[Partition], waiting: Collection[Partition]) -> LaneDecision:
        """``assigned``: the partitions this worker holds; ``waiting``: those with events waiting."""
        if not self.lanes:
            return LaneDecision((), (), self.max_batch, None)
        assigned = set(assigned)
        now = self.clock()
        lanes_waiting = {t for t, p in waiting if (t, p) in assigned}
        busy = next((i for i, lane in enumerate(self.lanes) if lane in lanes_waiting), len(self.lanes))
        if busy < len(self.lanes):
            self.seen[busy] = now
        recent = next((i for i, seen in enumerate(self.seen) if now - seen < self.busy_s), len(self.lanes))
        if recent < busy < len(self.lanes):  # urgent work lately, a lower lane's waits: it runs in small pieces
            limit = self.yield_batch
        elif busy > 0:  # the top lane is idle: what comes next is lower-lane work, in bounded batches
            limit = self.lower_batch
        else:  # the top lane has a backlog and the others are paused: all of it at once
            limit = self.max_batch
        hold = set(self.lanes[busy + 1:])
        pause = tuple(sorted(tp for tp in assigned if tp[0] in hold and tp not in self.paused))
        resume = tuple(sorted(tp for tp in self.paused if tp[0] not in hold))
        self.paused = (self.paused | set(pause)) - set(resume)
        return LaneDecision(pause, resume, limit, self.lanes[busy] if busy < len(self.lanes) else None)

    def forget(self, partitions: Iterable[Partition]) -> None:
        """Partitions revoked from this worker are no longer paused by it."""
        self.paused -= set(partitions)

    def paused_in(self, lane: str) -> int:
        return sum(1 for t, _ in self.paused if t == lane)


class PositionSource(Protocol):
    def get_watermark_offsets(self, partition: TopicPartition, timeout: float = ...,
                              cached: bool = ...) -> tuple[int, int]: ...

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]: ...


class Backlogs:
    """Which partitions have events waiting, from the watermarks of the last fetch (no broker request).

    Before a partition's first event is consumed its position is unknown: the offset committed when it was
    assigned stands in for it (``started_at``), or, with none, the start of the log (the group reads from the
    earliest offset)."""

    def __init__(self, consumer: PositionSource) -> None:
        self.consumer = consumer
        self.start: dict[Partition, int] = {}

    def started_at(self, committed: Iterable[TopicPartition]) -> None:
        for tp in committed:
            if tp.offset >= 0:
                self.start[(tp.topic, tp.partition)] = tp.offset

    def waiting(self, partitions: Iterable[Partition]) -> set[Partition]:
        return {tp for tp in partitions if self._has_backlog(*tp)}

    def _has_backlog(self, topic: str, partition: int) -> bool:
        tp = TopicPartition(topic, partition)
        lo, hi = self.consumer.get_watermark_offsets(tp, cached=True)
        position = self.consumer.position([tp])[0].offset
        if position < 0:
            position = self.start.get((topic, partition), lo)
        return hi >= 0 and position >= 0 and hi > position
