"""In-memory stand-ins for confluent-kafka's consumer, producer and messages, for unit tests of one class of the
stage runtime (the checkpoint, the runner's batch handling, lane priority). Every call they receive is
appended to a shared ``journal``, so a test can check the order of the steps."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition


@dataclass
class FakeMessage:
    _topic: str
    _partition: int
    _offset: int
    _key: bytes | None
    _value: bytes | None
    _error: KafkaError | None = None
    _timestamp: int = 0

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def error(self) -> KafkaError | None:
        return self._error

    def timestamp(self) -> tuple[int, int]:
        return (1, self._timestamp)


@dataclass
class Sent:
    topic: str
    key: bytes | None
    value: bytes | None
    partition: int | None


@dataclass
class CommitResult:
    """A partition in a commit's answer (confluent-kafka's TopicPartition, whose ``error`` is read-only)."""

    topic: str
    partition: int
    offset: int
    error: KafkaError | None = None


@dataclass
class FakeProducer:
    """Produced messages wait in ``queued`` until ``flush`` delivers them to ``delivered``. ``fail_produce``
    and ``fail_delivery`` select messages (by topic) that raise on produce or get a delivery error;
    ``stuck`` makes flush leave that many messages pending."""

    journal: list[str] = field(default_factory=list)
    queued: list[tuple[Sent, Callable[..., None] | None]] = field(default_factory=list)
    delivered: list[Sent] = field(default_factory=list)
    fail_produce: Callable[[str], bool] = lambda _topic: False
    fail_delivery: Callable[[str], bool] = lambda _topic: False
    stuck: int = 0

    def produce(self, topic: str, value: bytes | None = None, key: bytes | None = None, partition: int | None = None,
                on_delivery: Callable[..., None] | None = None) -> None:
        if self.fail_produce(topic):
            raise KafkaException(KafkaError(KafkaError._MSG_SIZE_TOO_LARGE))
        self.journal.append(f"produce {topic}")
        self.queued.append((Sent(topic, key, value, partition), on_delivery))

    def poll(self, timeout: float = 0) -> int:
        return 0

    def flush(self, timeout: float = 0) -> int:
        self.journal.append("flush")
        if self.stuck:
            return self.stuck
        for sent, callback in self.queued:
            err = KafkaError(KafkaError._MSG_TIMED_OUT) if self.fail_delivery(sent.topic) else None
            if err is None:
                self.delivered.append(sent)
            if callback is not None:
                callback(err, FakeMessage(sent.topic, sent.partition or 0, len(self.delivered), sent.key, sent.value))
        self.queued.clear()
        return 0

    def on(self, topic: str) -> list[Sent]:
        return [s for s in self.delivered if s.topic == topic]


@dataclass
class FakeTransactionalProducer(FakeProducer):
    """A transactional producer: messages of a transaction are ``delivered`` (visible to read_committed readers)
    only when it commits; an abort drops them. ``fail`` maps a transactional call's name to the KafkaError it
    raises (``times`` times; None: every time)."""

    fail: dict[str, KafkaError] = field(default_factory=dict)
    times: int | None = None
    offsets: list[tuple[dict[tuple[str, int], int], Any]] = field(default_factory=list)  # committed with a txn
    pending_offsets: list[tuple[dict[tuple[str, int], int], Any]] = field(default_factory=list)
    offset_metadata: list[dict[tuple[str, int], str | None]] = field(default_factory=list)  # beside ``offsets``
    pending_metadata: list[dict[tuple[str, int], str | None]] = field(default_factory=list)
    in_transaction: bool = False
    aborted: list[Sent] = field(default_factory=list)

    def _step(self, name: str) -> None:
        self.journal.append(name)
        err = self.fail.get(name)
        if err is not None and (self.times is None or self.times > 0):
            if self.times is not None:
                self.times -= 1
            raise KafkaException(err)

    def init_transactions(self, timeout: float = -1) -> None:
        self._step("init_transactions")

    def begin_transaction(self) -> None:
        self._step("begin_transaction")
        self.in_transaction = True

    def produce(self, topic: str, value: bytes | None = None, key: bytes | None = None, partition: int | None = None,
                on_delivery: Callable[..., None] | None = None) -> None:
        assert self.in_transaction, "a transactional producer produced outside a transaction"
        super().produce(topic, value, key, partition, on_delivery)

    def send_offsets_to_transaction(self, positions: list[TopicPartition], metadata: Any, timeout: float = -1) -> None:
        self._step("send_offsets_to_transaction")
        self.pending_offsets.append(({(tp.topic, tp.partition): tp.offset for tp in positions}, metadata))
        self.pending_metadata.append({(tp.topic, tp.partition): tp.metadata for tp in positions})

    def commit_transaction(self, timeout: float = -1) -> None:
        self._step("commit_transaction")
        self.delivered.extend(sent for sent, _ in self.queued)
        self.offsets.extend(self.pending_offsets)
        self.offset_metadata.extend(self.pending_metadata)
        self.queued.clear()
        self.pending_offsets.clear()
        self.pending_metadata.clear()
        self.in_transaction = False

    def abort_transaction(self, timeout: float = -1) -> None:
        self._step("abort_transaction")
        self.aborted.extend(sent for sent, _ in self.queued)
        self.queued.clear()
        self.pending_offsets.clear()
        self.pending_metadata.clear()
        self.in_transaction = False


@dataclass
class FakeConsumer:
    """Hands out ``batches`` one per consume call; records commits, pauses and resumes. Watermarks (``high``)
    and positions (``pos``) per partition drive the backlog facts."""

    journal: list[str] = field(default_factory=list)
    batches: list[list[FakeMessage]] = field(default_factory=list)
    committed_offsets: list[dict[tuple[str, int], int]] = field(default_factory=list)
    high: dict[tuple[str, int], int] = field(default_factory=dict)
    pos: dict[tuple[str, int], int] = field(default_factory=dict)
    paused: set[tuple[str, int]] = field(default_factory=set)
    commit_error: KafkaException | None = None
    refuse_partition: bool = False
    watermark_calls: list[bool] = field(default_factory=list)

    callbacks: dict[str, Callable[..., None]] = field(default_factory=dict)
    topics: list[str] = field(default_factory=list)
    assigned: set[tuple[str, int]] = field(default_factory=set)
    seeks: list[tuple[str, int, int]] = field(default_factory=list)
    generation: int = 1
    committed_at: dict[tuple[str, int], tuple[int, str | None]] = field(default_factory=dict)  # what committed() says

    def subscribe(self, topics: list[str], **callbacks: Callable[..., None]) -> None:
        self.topics = topics
        self.callbacks = callbacks

    def rebalance(self, assign: Sequence[TopicPartition] = (), revoke: Sequence[TopicPartition] = ()) -> None:
        """What the group coordinator does: the subscriber's callbacks run."""
        if revoke:
            self.callbacks["on_revoke"](self, list(revoke))
        if assign:
            self.callbacks["on_assign"](self, list(assign))

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Any]:
        return self.batches.pop(0)[:num_messages] if self.batches else []

    def consumer_group_metadata(self) -> str:
        return f"group metadata, generation {self.generation}"

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(t, p) for t, p in sorted(self.assigned)]

    def seek(self, tp: TopicPartition) -> None:
        self.journal.append("seek")
        self.seeks.append((tp.topic, tp.partition, tp.offset))

    def poll(self, timeout: float = -1) -> Any:
        return None

    def commit(self, *, offsets: list[TopicPartition], asynchronous: bool = True) -> list[Any]:
        assert not asynchronous, "offsets must be committed synchronously"
        self.journal.append("commit")
        if self.commit_error is not None:
            raise self.commit_error
        if self.refuse_partition:  # the coordinator answers, but refuses one partition's offset
            return [CommitResult(tp.topic, tp.partition, tp.offset, KafkaError(KafkaError.REBALANCE_IN_PROGRESS))
                    for tp in offsets]
        self.committed_offsets.append({(tp.topic, tp.partition): tp.offset for tp in offsets})
        return [CommitResult(tp.topic, tp.partition, tp.offset) for tp in offsets]

    def get_watermark_offsets(self, tp: TopicPartition, timeout: float = 0, cached: bool = False) -> tuple[int, int]:
        self.watermark_calls.append(cached)
        return 0, self.high.get((tp.topic, tp.partition), -1001)

    def position(self, tps: list[TopicPartition]) -> list[TopicPartition]:
        return [TopicPartition(tp.topic, tp.partition, self.pos.get((tp.topic, tp.partition), -1001)) for tp in tps]

    def committed(self, tps: list[TopicPartition], timeout: float = 0) -> list[TopicPartition]:
        out = []
        for tp in tps:
            offset, metadata = self.committed_at.get((tp.topic, tp.partition), (-1001, None))
            out.append(TopicPartition(tp.topic, tp.partition, offset, metadata) if metadata
                       else TopicPartition(tp.topic, tp.partition, offset))
        return out

    def pause(self, tps: list[TopicPartition]) -> None:
        self.paused |= {(tp.topic, tp.partition) for tp in tps}

    def resume(self, tps: list[TopicPartition]) -> None:
        self.paused -= {(tp.topic, tp.partition) for tp in tps}


@dataclass
class FakeRestoreConsumer:
    """Reads back what a ``FakeProducer`` delivered to the assigned partitions, then reports their end (what
    ``StateStore`` does on assignment: read the changelog up to the marker it just wrote)."""

    producer: FakeProducer
    assigned: list[TopicPartition] = field(default_factory=list)
    done: bool = False

    def assign(self, tps: list[TopicPartition]) -> None:
        self.assigned = tps

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[FakeMessage]:
        if self.done:
            return []
        self.done = True
        wanted = {(tp.topic, tp.partition) for tp in self.assigned}
        return [FakeMessage(s.topic, s.partition or 0, i, s.key, s.value)
                for i, s in enumerate(self.producer.delivered) if (s.topic, s.partition) in wanted]

    def close(self) -> None:
        pass
