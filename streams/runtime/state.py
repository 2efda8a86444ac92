"""Per-stream state that survives a worker crash or a rebalance: a key/value map per input partition,
backed by a changelog topic partitioned like the input (the pattern of Kafka Streams and faust tables).

Changes made while handling a batch are staged; the checkpoint (``streams.runtime.checkpoint``) writes them
to the changelog only after the batch's outputs are flushed, and commits input offsets only after that. A
crash at any point therefore either replays input onto the previous state (duplicate outputs carry the same
deterministic ids) or finds the new state already written (replayed input is recognised as seen and skipped).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

from foundation.logs import get_logger

log = get_logger(__name__)

_ABSENT = object()
MARKER_KEY = b"\x00restore-marker"


@dataclass
class _Journal:
    undo: list[tuple[tuple[int, str], object]] = field(default_factory=list)


class StateStore:
    def __init__(self, topic: str, consumer_factory: Callable[[], Consumer], producer: Producer) -> None:
        self.topic = topic
        self._consumer_factory = consumer_factory
        self._producer = producer
        self._tables: dict[int, dict[str, bytes]] = {}
        self._staged: dict[tuple[int, str], bytes | None] = {}
        self._journal: _Journal | None = None

    # -- reads and staged writes ---------------------------------------------------------------------
    def get(self, partition: int, key: str) -> bytes | None:
        staged = self._staged.get((partition, key), _ABSENT)
        if staged is not _ABSENT:
            return staged  # type: ignore[return-value]
        return self._tables.get(partition, {}).get(key)

    def put(self, partition: int, key: str, value: bytes | None) -> None:
        """Stage a write; ``None`` deletes the key."""
        if partition not in self._tables:
            raise RuntimeError(f"partition {partition} of {self.topic} is not assigned to this worker")
        if self._journal is not None:
            self._journal.undo.append(((partition, key), self._staged.get((partition, key), _ABSENT)))
        self._staged[(partition, key)] = value

    def delete(self, partition: int, key: str) -> None:
        self.put(partition, key, None)

    def keys(self, partition: int, prefix: str) -> list[str]:
        committed = {k for k in self._tables.get(partition, {}) if k.startswith(prefix)}
        for (p, k), v in self._staged.items():
            if p == partition and k.startswith(prefix):
                if v is None:
                    committed.discard(k)
                else:
                    committed.add(k)
        return sorted(committed)

    def streams(self, partition: int) -> Iterator[str]:
        return iter(self._tables.get(partition, {}))

    # -- per-record isolation ------------------------------------------------------------------------
    def begin(self) -> None:
        self._journal = _Journal()

    def rollback(self) -> None:
        assert self._journal is not None
        for tp_key, previous in reversed(self._journal.undo):
            if previous is _ABSENT:
                self._staged.pop(tp_key, None)
            else:
                self._staged[tp_key] = previous  # type: ignore[assignment]
        self._journal = None

    def end(self) -> None:
        self._journal = None

    # -- changelog (written by the checkpoint, streams.runtime.checkpoint) ---------------------------------
    def staged(self) -> list[tuple[int, str, bytes | None]]:
        """The batch's changes as (partition, key, value); ``None`` deletes. The checkpoint produces them to
        ``topic`` and, once the broker has them, calls ``apply_staged``."""
        return [(partition, key, value) for (partition, key), value in self._staged.items()]

    def apply_staged(self) -> int:
        """Fold the staged changes into the tables (they are in the changelog now)."""
        count = len(self._staged)
        for (partition, key), value in self._staged.items():
            table = self._tables[partition]
            if value is None:
                table.pop(key, None)
            else:
                table[key] = value
        self._staged.clear()
        return count

    def discard_staged(self) -> None:
        """Forget the batch's changes (its checkpoint failed: nothing of it counts)."""
        self._staged.clear()
        self._journal = None

    def has_staged(self) -> bool:
        return bool(self._staged)

    def assign(self, partitions: list[int]) -> None:
        if partitions:
            self._tables.update(self._restore(partitions))

    def revoke(self, partitions: list[int]) -> None:
        for p in partitions:
            self._tables.pop(p, None)
        self._staged = {k: v for k, v in self._staged.items() if k[0] not in partitions}

    def _restore(self, partitions: list[int]) -> dict[int, dict[str, bytes]]:
        """Read the changelog partitions up to a marker written now, so we know we saw everything before it
        (this needs no ListOffsets, which the embedded broker answers wrongly)."""
        started = time.monotonic()
        marker = uuid.uuid4().bytes
        for p in partitions:
            self._producer.produce(self.topic, key=MARKER_KEY, value=marker, partition=p)
        if self._producer.flush(30) != 0:
            raise RuntimeError(f"could not write restore markers to {self.topic}")
        consumer = self._consumer_factory()
        tables: dict[int, dict[str, bytes]] = {p: {} for p in partitions}
        pending = set(partitions)
        records = 0
        try:
            consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in partitions])
            deadline = time.monotonic() + 300
            while pending:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"restoring {self.topic} {sorted(pending)} did not reach the markers")
                for msg in consumer.consume(1000, 0.2):
                    err = msg.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            continue
                        raise RuntimeError(f"restoring {self.topic}: {err}")
                    p = msg.partition() or 0
                    if p not in pending:
                        continue
                    key = msg.key()
                    if key == MARKER_KEY:
                        if msg.value() == marker:
                            pending.discard(p)
                        continue
                    records += 1
                    k = key.decode() if key else ""
                    v = msg.value()
                    if v is None:
                        tables[p].pop(k, None)
                    else:
                        tables[p][k] = v
        finally:
            consumer.close()
        log.info("state restored", topic=self.topic, partitions=partitions,
                 keys=sum(len(t) for t in tables.values()), records=records,
                 seconds=round(time.monotonic() - started, 3))
        return tables
