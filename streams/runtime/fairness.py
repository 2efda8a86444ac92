"""Fair scheduling of a stage's input across streams: a bounded pool of consumed records, taken round-robin.

Kafka hands a consumer its records in log order, so a stage served first come first served lets one long
stream (a one-hour recording's few hundred speech windows) hold up every stream queued behind it in the same
lane. ``FairPool`` holds what the consumer has fetched, up to ``capacity`` bytes, and answers each batch with
records of the highest lane present (``streams.runtime.priority``), one per stream in turn, the stream served
least recently first (a newcomer before all): a stream that has waited is served in the next batch, whatever
the length of the others. A stream's own records keep their order.

Committing stays correct with records held back: the offset committed for a partition is its lowest held
offset (or, with none held, the end of what was consumed), so a restart reads every held-back record again
and nothing is skipped; what was handled past it is handled again, as at-least-once allows. Under exactly-once
a record handled past the committed offset would be handled twice after a restart, so there ``by_partition``
makes the partition the unit of fairness: the records taken from a partition are always a prefix of what is
held of it, and the committed offset is exactly the end of what was handled.

Beyond ``capacity`` the pool stops consuming; the stage is then fair within that look-ahead only.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from typing import Protocol

Partition = tuple[str, int]  # (full topic name, partition)


class Held(Protocol):
    """What the pool needs of a consumed record (a confluent-kafka ``Message``)."""

    def topic(self) -> str | None: ...

    def partition(self) -> int | None: ...

    def offset(self) -> int | None: ...

    def key(self) -> str | bytes | None: ...

    def value(self) -> str | bytes | None: ...


class FairPool:
    def __init__(self, lanes: Sequence[str], capacity: int, *, by_partition: bool = False) -> None:
        self.rank = {lane: i for i, lane in enumerate(lanes)}  # full topic names, highest priority first
        self.capacity = capacity
        self.by_partition = by_partition
        self.bytes = 0
        self._queues: dict[int, dict[object, deque[Held]]] = {}  # per lane rank: each stream's held records
        self._served: dict[object, int] = {}  # when each stream was last served (a count of records taken)
        self._tick = 0
        self._held: dict[Partition, set[int]] = {}  # held offsets per partition
        self._end: dict[Partition, int] = {}  # one past the last offset consumed per partition

    def __len__(self) -> int:
        return sum(len(q) for streams in self._queues.values() for q in streams.values())

    def has_room(self) -> bool:
        return self.bytes < self.capacity

    def add(self, messages: Iterable[Held]) -> None:
        """Records just consumed (without errors), in the order the consumer returned them."""
        for msg in messages:
            tp = (msg.topic() or "", msg.partition() or 0)
            offset = msg.offset() or 0
            rank = self.rank.get(tp[0], len(self.rank))
            self._queues.setdefault(rank, {}).setdefault(self._stream(msg, tp), deque()).append(msg)
            self._held.setdefault(tp, set()).add(offset)
            self._end[tp] = max(self._end.get(tp, 0), offset + 1)
            self.bytes += _size(msg)

    def take(self, limit: int) -> list[Held]:
        """Up to ``limit`` records of the highest lane held, one at a time from the stream served least recently
        (streams never served first, in the order they came): round-robin, in which a newcomer does not wait
        for a turn of the streams already running."""
        if not self._queues:
            return []
        rank = min(self._queues)
        streams = self._queues[rank]
        taken: list[Held] = []
        while streams and len(taken) < limit:
            stream = min(streams, key=lambda s: self._served.get(s, -1))  # ties: the first to come (dict order)
            queue = streams[stream]
            taken.append(queue.popleft())
            self._tick += 1
            self._served[stream] = self._tick
            if not queue:
                del streams[stream]
        if not streams:
            del self._queues[rank]
        for msg in taken:
            tp = (msg.topic() or "", msg.partition() or 0)
            self._held[tp].discard(msg.offset() or 0)
            if not self._held[tp]:
                del self._held[tp]
            self.bytes -= _size(msg)
        if len(self._served) > _REMEMBERED:  # forget the turns of streams with nothing held
            held = {stream for queues in self._queues.values() for stream in queues}
            self._served = {s: t for s, t in self._served.items() if s in held}
        return taken

    def held_partitions(self) -> set[Partition]:
        """Partitions with records waiting in the pool (a backlog the consumer's position no longer shows)."""
        return set(self._held)

    def commit_offsets(self, partitions: Iterable[Partition]) -> dict[Partition, int]:
        """The offset that may be committed for each of ``partitions``: its lowest held-back offset, else one
        past the last record consumed from it."""
        return {tp: min(self._held[tp]) if tp in self._held else self._end[tp] for tp in partitions
                if tp in self._held or tp in self._end}

    def drop(self, partitions: Iterable[Partition]) -> None:
        """Forget the records of ``partitions`` (revoked from this worker, or rewound to be consumed again)."""
        gone = set(partitions)
        if not gone:
            return
        for rank in list(self._queues):
            streams = self._queues[rank]
            for stream in list(streams):
                kept = deque(m for m in streams[stream] if (m.topic() or "", m.partition() or 0) not in gone)
                self.bytes -= sum(_size(m) for m in streams[stream]) - sum(_size(m) for m in kept)
                if kept:
                    streams[stream] = kept
                else:
                    del streams[stream]
            if not streams:
                del self._queues[rank]
        for tp in gone:
            self._held.pop(tp, None)
            self._end.pop(tp, None)

    def _stream(self, msg: Held, tp: Partition) -> object:
        if self.by_partition:
            return tp
        key = msg.key()
        return (tp[0], key) if key else tp  # a stream's events are keyed by its id (one partition per stream)


_REMEMBERED = 4096  # streams whose last turn is kept after their last held record was taken


def _size(msg: Held) -> int:
    value = msg.value()
    return len(value) if value else 0
