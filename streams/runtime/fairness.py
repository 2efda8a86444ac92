"""Fair scheduling of a stage's input across streams: a bounded pool of consumed records, taken round-robin.

Kafka hands a consumer its records in log order, so a stage served first come first served lets one long
stream (a one-hour recording's few hundred speech windows) hold up every stream queued behind it in the same
lane. ``FairPool`` holds what the consumer has fetched, up to ``capacity`` bytes, and answers each batch with
records of the highest lane present (``streams.runtime.priority``), one per stream in turn, the stream served
least recently first (a newcomer before all): a stream that has waited is served in the next batch, whatever
the length of the others. A stream's own records keep their order. In the top lane (live calls) a stream's
turn takes all it holds: a session's partials and the final behind them are answered together (the ASR stage
answers only the newest partial of an utterance), so a final never waits one batch per partial queued before it.
Records that cost the stage nothing (smaller than ``free_bytes``: a stream's END, which carries no audio) go with
the record before them in their stream's turn, beyond the batch's limit: a short job beside a long one completes
with its last window, not a batch of the long one's windows later.

Batches stay small while streams come and go beside one that has run for a while: a stream is *fresh* from
when it is held until ``settle_s`` after it was first served, and while the pool holds a stream that is not
fresh beside a fresh one (or a stream left fresh within ``settle_s``), a batch takes at most one record per
fresh stream held (at least one). A short job beside a long recording then waits for one of the long one's
windows, not for a full recogniser batch of them, and the next short job submitted right after it finds the
same (the long one's windows are taken one at a time until arrivals stop for ``settle_s``); streams that
arrive together fill whole batches, and so do the live utterances of the top lane. (Measured in BENCHMARKS.md
"Fairness": with full batches, a short job beside a long one waited for about a batch of 8 windows of 28 s.)

Committing stays correct with records held back: the offset committed for a partition is its lowest held
offset (or, with none held, the end of what was consumed), so a restart reads every held-back record again
and nothing is skipped; what was handled past it is handled again, as at-least-once allows.

Under exactly-once a record handled past the committed offset must not be handled again, so the pool (made
with ``exactly_once``) also names, in the committed offset's metadata, the offsets past it that were handled
(``commit_metadata``: ranges relative to the offset). The metadata is committed in the same transaction as the
outputs, so it always says exactly what the committed outputs cover. A worker given the partition reads it
back (``restore``) and skips those records when it consumes them again; an aborted batch is rewound to the last
committed offset and its skips (``rewind``). Past ``MAX_AHEAD`` handled-ahead offsets on a partition (to keep
the metadata small: brokers refuse more than ``offset.metadata.max.bytes``, 4 KiB by default), the partition is
served in log order until its committed offset catches up.

Beyond ``capacity`` the pool stops consuming; the stage is then fair within that look-ahead only.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
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
    def __init__(self, lanes: Sequence[str], capacity: int, *, exactly_once: bool = False, settle_s: float = 5.0,
                 free_bytes: int = 0, clock: Callable[[], float] = time.monotonic) -> None:
        self.rank = {lane: i for i, lane in enumerate(lanes)}  # full topic names, highest priority first
        self.capacity = capacity
        self.free_bytes = free_bytes
        self.exactly_once = exactly_once
        self.settle_s = settle_s
        self._clock = clock
        self._first_served: dict[object, float] = {}  # streams first served within the last settle_s
        self.bytes = 0
        self._queues: dict[int, dict[object, deque[Held]]] = {}  # per lane rank: each stream's held records
        self._served: dict[object, int] = {}  # when each stream was last served (a count of records taken)
        self._tick = 0
        self._held: dict[Partition, set[int]] = {}  # held offsets per partition
        self._end: dict[Partition, int] = {}  # one past the last offset consumed per partition
        # exactly-once: offsets handled past each partition's committed offset (this batch's included), and the
        # last committed offset with the skips committed beside it (what an aborted batch goes back to)
        self._ahead: dict[Partition, set[int]] = {}
        self._committed: dict[Partition, tuple[int, frozenset[int]]] = {}

    def __len__(self) -> int:
        return sum(len(q) for streams in self._queues.values() for q in streams.values())

    def has_room(self) -> bool:
        return self.bytes < self.capacity

    def add(self, messages: Iterable[Held]) -> None:
        """Records just consumed (without errors), in the order the consumer returned them."""
        for msg in messages:
            tp = (msg.topic() or "", msg.partition() or 0)
            offset = msg.offset() or 0
            if self.exactly_once:
                self._committed.setdefault(tp, (offset, frozenset()))  # nothing committed yet: where it began
                if offset in self._ahead.get(tp, ()):  # handled before, in a committed transaction: skipped
                    self._end[tp] = max(self._end.get(tp, 0), offset + 1)
                    continue
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
        # the top lane (live calls): short utterances of many sessions, batched as they come, and a session's
        # held records all at once: a call's final must not wait a turn per partial queued before it (the stage
        # answers only the newest partial of an utterance)
        whole = rank == 0
        if not whole:
            limit = self._limit(streams, limit)
        taken: list[Held] = []
        waiting: set[object] = set()  # streams whose partition has as many handled-ahead offsets as it may
        counted = 0  # records taken that cost the stage work (the limit's unit)
        while counted < limit:
            ready = [s for s in streams if s not in waiting]
            if not ready:
                break
            stream = min(ready, key=lambda s: self._served.get(s, -1))  # ties: the first to come (dict order)
            queue = streams[stream]
            if not self._may_take(queue[0]):
                waiting.add(stream)
                continue
            while True:
                msg = queue.popleft()
                taken.append(msg)
                self._release(msg)
                counted += 0 if self._free(msg) else 1
                if queue and self._free(queue[0]) and self._may_take(queue[0]):
                    continue  # an END rides with the window before it
                if not (whole and queue and counted < limit and self._may_take(queue[0])):
                    break
            if stream not in self._served:
                self._first_served[stream] = self._clock()
            self._tick += 1
            self._served[stream] = self._tick
            if not queue:
                del streams[stream]
        if not streams:
            del self._queues[rank]
        if len(self._served) > _REMEMBERED:  # forget the turns of streams with nothing held
            held = {stream for queues in self._queues.values() for stream in queues}
            self._served = {s: t for s, t in self._served.items() if s in held}
        return taken

    def _free(self, msg: Held) -> bool:
        return _size(msg) < self.free_bytes

    def _release(self, msg: Held) -> None:
        """A record taken: no longer held back (under exactly-once, handled ahead of its partition's commit)."""
        tp = (msg.topic() or "", msg.partition() or 0)
        self._held[tp].discard(msg.offset() or 0)
        if not self._held[tp]:
            del self._held[tp]
        if self.exactly_once:
            self._ahead.setdefault(tp, set()).add(msg.offset() or 0)
        self.bytes -= _size(msg)

    def _limit(self, streams: dict[object, deque[Held]], limit: int) -> int:
        """The batch size while streams come and go beside one that has run for a while: one record per fresh
        stream held (at least one); else ``limit``."""
        now = self._clock()
        self._first_served = {s: t for s, t in self._first_served.items() if now - t < self.settle_s}
        fresh = sum(1 for s in streams if s not in self._served or s in self._first_served)
        settled = len(streams) - fresh
        if settled and (fresh or self._first_served):
            return min(limit, max(1, fresh))
        return limit

    def held_partitions(self) -> set[Partition]:
        """Partitions with records waiting in the pool (a backlog the consumer's position no longer shows)."""
        return set(self._held)

    def commit_offsets(self, partitions: Iterable[Partition]) -> dict[Partition, int]:
        """The offset that may be committed for each of ``partitions``: its lowest held-back offset, else one
        past the last record consumed from it."""
        return {tp: min(self._held[tp]) if tp in self._held else self._end[tp] for tp in partitions
                if tp in self._held or tp in self._end}

    def commit_metadata(self, offsets: dict[Partition, int]) -> dict[Partition, str]:
        """Exactly-once: the metadata to commit beside each of ``offsets`` (from ``commit_offsets``): the offsets
        past it already handled, which a consumer reading from it must skip. Forgets those it passed."""
        metadata: dict[Partition, str] = {}
        for tp, offset in offsets.items():
            ahead = {o for o in self._ahead.get(tp, ()) if o >= offset}
            self._ahead[tp] = ahead
            metadata[tp] = encode_ahead(offset, ahead)
        return metadata

    def committed(self, offsets: dict[Partition, int]) -> None:
        """Exactly-once: ``offsets`` and their metadata are committed (the batch's transaction is)."""
        for tp, offset in offsets.items():
            self._committed[tp] = (offset, frozenset(self._ahead.get(tp, ())))

    def restore(self, tp: Partition, offset: int, metadata: str | None) -> None:
        """Exactly-once: the partition was assigned with ``offset`` committed and ``metadata`` beside it; the
        records it names as handled are skipped when they are consumed."""
        ahead = decode_ahead(offset, metadata or "")
        self._ahead[tp] = set(ahead)
        self._committed[tp] = (offset, frozenset(ahead))

    def rewind_points(self, start: dict[Partition, int]) -> dict[Partition, int]:
        """Exactly-once: where a batch whose first offsets are ``start`` is rewound to if it aborts: each
        partition's last committed offset (records before the batch's first may have been handled past it)."""
        return {tp: self._committed[tp][0] if tp in self._committed else offset for tp, offset in start.items()}

    def rewind(self, partitions: Iterable[Partition]) -> dict[Partition, int]:
        """Exactly-once, after an aborted batch: forget what is held of ``partitions`` and what was handled of them
        since their last commit; the offsets to seek them to (where that commit left them) are returned."""
        gone = [tp for tp in partitions if tp in self._committed]
        positions = {tp: self._committed[tp][0] for tp in gone}
        skips = {tp: set(self._committed[tp][1]) for tp in gone}
        self.drop(gone)
        for tp in gone:
            self._ahead[tp] = skips[tp]
            self._committed[tp] = (positions[tp], frozenset(skips[tp]))
        return positions

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
            self._ahead.pop(tp, None)
            self._committed.pop(tp, None)

    def _may_take(self, msg: Held) -> bool:
        """Under exactly-once a record past the partition's first held one adds an offset to the committed
        metadata: allowed up to ``MAX_AHEAD`` of them."""
        if not self.exactly_once:
            return True
        tp = (msg.topic() or "", msg.partition() or 0)
        first = min(self._held[tp])
        return (msg.offset() or 0) == first or sum(1 for o in self._ahead.get(tp, ()) if o > first) < MAX_AHEAD

    def _stream(self, msg: Held, tp: Partition) -> object:
        key = msg.key()
        return (tp[0], key) if key else tp  # a stream's events are keyed by its id (one partition per stream)


_REMEMBERED = 4096  # streams whose last turn is kept after their last held record was taken
MAX_AHEAD = 200  # handled-ahead offsets per partition; as ranges of relative offsets, well under 4 KiB
_FORMAT = "ahead1:"  # the metadata's version


def encode_ahead(offset: int, ahead: Iterable[int]) -> str:
    """``ahead`` (offsets at or past ``offset``) as ranges relative to it: ``ahead1:3-5,9``; "" for none."""
    ranges: list[list[int]] = []
    for o in sorted(ahead):
        if ranges and o == ranges[-1][1] + 1:
            ranges[-1][1] = o
        else:
            ranges.append([o, o])
    if not ranges:
        return ""
    return _FORMAT + ",".join(f"{a - offset}" if a == b else f"{a - offset}-{b - offset}" for a, b in ranges)


def decode_ahead(offset: int, metadata: str) -> list[int]:
    """The offsets ``encode_ahead`` wrote; metadata of another kind (or none) names none."""
    if not metadata.startswith(_FORMAT):
        return []
    out: list[int] = []
    for part in filter(None, metadata[len(_FORMAT):].split(",")):
        first, _, last = part.partition("-")
        out += range(offset + int(first), offset + int(last or first) + 1)
    return out


def _size(msg: Held) -> int:
    value = msg.value()
    return len(value) if value else 0
