"""The commit protocol: how one consumed batch becomes durable, in order, with nothing committed on a failure.

A checkpoint spans one batch. ``begin`` opens it; while the stage handles the batch, events it drains early go
out through ``produce``; ``commit`` then runs the steps below; ``abort`` drops it when the batch fails before
that. The at-least-once protocol (``AtLeastOnceCheckpoint``):

1. produce the batch's outputs (results, job events, dead letters) not produced yet;
2. flush the producer and confirm that the broker acknowledged every event (``OutputsNotDelivered``);
3. produce the batch's per-stream state changes to the stage's changelog topic;
4. flush and confirm again (``ChangelogNotDelivered``); only now are the changes folded into the state tables;
5. commit the input offsets synchronously, checking each partition's result (``OffsetsNotCommitted``).

Each step raises before the next starts, so a failure at any step commits no offset: the batch is consumed
again after a restart, onto the previous state. Outputs that did reach the broker are then produced again
with the same deterministic ids (the materializer's upserts absorb them), and state already in the changelog
makes the stages recognise redelivered input (per-stream ``seq`` and window ``index``) and skip it.

The exactly-once protocol (``ExactlyOnceCheckpoint``, Apache Kafka only), on a transactional producer:

1. ``begin``: ``begin_transaction``; everything the batch produces from here on belongs to the transaction;
2. the batch's outputs (results, job events, dead letters), as drained and then the rest;
3. the batch's per-stream state changes to the changelog;
4. ``send_offsets_to_transaction`` with the input offsets (each with its metadata: the records past it that
   were handled already, ``streams.runtime.fairness``) and the consumer's group metadata (its generation
   fences a zombie: a worker that lost its partitions in a rebalance cannot commit for them any more);
5. ``commit_transaction``: flushes, then outputs, state changes and offsets become visible together;
6. only now are the state changes folded into the state tables.

A failure before 5 completes aborts the transaction (``abort_transaction``): read_committed readers never see
what it wrote, the staged state is dropped, and the consumer is rewound to where the batch began, so the batch
is handled again by the same worker (``TransactionAborted``). A retriable error (a coordinator moving with a
broker failover) is retried within the timeout. A fatal one (``ProducerFenced``: another process took this
worker's transactional.id, or any fatal producer error) or one that a retry cannot cure (``TransactionFailed``)
stops the worker, whose restart starts a new producer.
A transactional call that does not return at all (``ProducerWedged``; librdkafka 2.16 can wait forever in
``send_offsets_to_transaction`` for a group coordinator on a broker that left the cluster and came back,
confluentinc/librdkafka#5511, whatever the timeout given) is given a bounded time (``wedged_after``); then the
worker exits at once, without closing its clients (closing waits on the same coordinator), and its restart
aborts the open transaction and handles the batch again.
A worker killed mid-batch leaves its transaction open; its restart (same transactional.id) aborts it at once
in ``init_transactions``, and the cluster aborts it after ``transaction.timeout.ms`` otherwise.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from foundation.events import Event
from foundation.logs import get_logger
from foundation.settings import KafkaSettings
from streams.kafka.serde import AvroSerde
from streams.runtime.state import StateStore

log = get_logger(__name__)

Offsets = Mapping[tuple[str, int], int]  # (full topic name, partition) -> next offset to read


class CheckpointError(Exception):
    """A batch could not be made durable; no offset of it was committed."""


class OutputsNotDelivered(CheckpointError):
    """Steps 1-2: an output could not be produced, or the broker did not acknowledge it."""


class ChangelogNotDelivered(CheckpointError):
    """Steps 3-4: a state change could not be written to the changelog."""


class OffsetsNotCommitted(CheckpointError):
    """Step 5: the group coordinator did not accept the input offsets."""


class TransactionAborted(CheckpointError):
    """Exactly-once: the batch's transaction was aborted and the consumer rewound to the batch's start; the
    worker can go on (it handles the batch again)."""


class TransactionFailed(CheckpointError):
    """Exactly-once: a transactional step failed in a way that aborting and retrying the batch does not cure;
    the worker must stop (its restart starts a new producer and aborts what is left open)."""


class ProducerFenced(TransactionFailed):
    """Exactly-once: another process took this worker's transactional.id, or the producer failed fatally."""


class ProducerWedged(TransactionFailed):
    """Exactly-once: a transactional call did not return within its timeout and grace; the producer (and the
    coordinator it waits on) cannot be trusted again in this process: the worker exits without closing it."""


# How long a transactional call may take before the producer counts as wedged: ``commit_transaction`` (it flushes
# the batch's outputs) its timeout plus WEDGED_GRACE_S; the others, small requests to a coordinator, their timeout
# but at most WEDGED_AFTER_S (a failover moves a coordinator in seconds, and a worker restart costs less than a
# long wait: its transaction is aborted and the batch handled again, nothing is lost or doubled).
WEDGED_AFTER_S = 30.0
WEDGED_GRACE_S = 30.0


def wedged_after(step: str, timeout: float) -> float:
    return timeout + WEDGED_GRACE_S if step == "commit_transaction" else min(timeout, WEDGED_AFTER_S)


def call_within(step: str, call: Callable[[], object], limit_s: float) -> None:
    """Run ``call`` on a daemon thread and wait ``limit_s`` for it; ``ProducerWedged`` if it has not returned
    (the thread is left waiting: the process is to exit). Its exception, if any, is raised here."""
    done = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as exc:  # handed to the caller
            failure.append(exc)
        finally:
            done.set()

    threading.Thread(target=run, name=f"txn-{step}", daemon=True).start()
    if not done.wait(limit_s):
        raise ProducerWedged(f"{step} did not return in {limit_s:.0f} s: the transactional producer is wedged")
    if failure:
        raise failure[0]


class Checkpoint(Protocol):
    """One batch's way to durability (see the module's docstring for the steps)."""

    def begin(self, start: Offsets) -> None:
        """Open the checkpoint of a new batch, whose first offset on each partition is in ``start``."""
        ...

    def produce(self, events: Sequence[tuple[str, Event]]) -> None:
        """Send events now (a stage draining early); they are still confirmed before the commit."""
        ...

    def commit(self, outputs: Sequence[tuple[str, Event]], offsets: Offsets,
               metadata: Mapping[tuple[str, int], str] | None = None) -> None:
        """Make the batch durable and commit ``offsets`` (each with its ``metadata``, if any); raises
        ``CheckpointError`` with nothing committed."""
        ...

    def abort(self) -> None:
        """The batch failed before its commit: none of its state changes may reach the changelog."""
        ...


class AtLeastOnceCheckpoint:
    """The at-least-once protocol on an idempotent producer and a manually committing consumer."""

    def __init__(self, stage: str, producer: Producer, consumer: Consumer, serde: AvroSerde, prefix: str,
                 state: StateStore | None = None, flush_timeout: float = 60.0) -> None:
        self.stage = stage
        self.producer = producer
        self.consumer = consumer
        self.serde = serde
        self.prefix = prefix
        self.state = state
        self.flush_timeout = flush_timeout
        self._failures: list[str] = []

    def begin(self, start: Offsets) -> None:
        self._failures = []

    def produce(self, events: Sequence[tuple[str, Event]]) -> None:
        for topic, event in events:
            full = self.prefix + topic
            key = event.partition_key
            self._send(full, key.encode() if key else None, self.serde.serialize(full, event))
        self.producer.poll(0)

    def commit(self, outputs: Sequence[tuple[str, Event]], offsets: Offsets,
               metadata: Mapping[tuple[str, int], str] | None = None) -> None:
        # 1. the outputs
        try:
            self.produce(outputs)
        except Exception as exc:
            raise OutputsNotDelivered(f"{self.stage}: outputs could not be produced: {exc}") from exc
        # 2. confirmed
        self._confirm(OutputsNotDelivered, "outputs")
        if self.state is not None and self.state.has_staged():
            # 3. the state changes
            try:
                for partition, key, value in self.state.staged():
                    self._send(self.state.topic, key.encode(), value, partition)
            except Exception as exc:
                raise ChangelogNotDelivered(f"{self.stage}: state changes could not be produced: {exc}") from exc
            # 4. confirmed, and only then part of the tables
            self._confirm(ChangelogNotDelivered, "state changes")
            self.state.apply_staged()
        # 5. the input offsets
        self._commit_offsets(offsets)

    def abort(self) -> None:
        if self.state is not None:
            self.state.discard_staged()

    # -- steps ---------------------------------------------------------------------------------------
    def _send(self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None) -> None:
        while True:
            try:
                if partition is None:  # outputs: the partitioner picks by key
                    self.producer.produce(topic, key=key, value=value, on_delivery=self._on_delivery)
                else:  # changelogs: the input's partition
                    self.producer.produce(topic, key=key, value=value, partition=partition,
                                          on_delivery=self._on_delivery)
                return
            except BufferError:  # the local queue is full: let deliveries drain it
                self.producer.poll(0.1)

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._failures.append(f"{msg.topic()}: {err}")

    def _confirm(self, error: type[CheckpointError], what: str) -> None:
        remaining = self.producer.flush(self.flush_timeout)
        if remaining or self._failures:
            failures, self._failures = self._failures, []
            raise error(f"{self.stage}: {what} not delivered ({remaining} still pending after "
                        f"{self.flush_timeout:g} s): {failures[:3]}")

    def _commit_offsets(self, offsets: Offsets) -> None:
        if not offsets:
            return
        try:
            result = self.consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()],
                                          asynchronous=False)
        except KafkaException as exc:
            raise OffsetsNotCommitted(f"{self.stage}: offsets not committed: {exc}") from exc
        refused = [f"{tp.topic}[{tp.partition}]: {tp.error}" for tp in result or [] if tp.error is not None]
        if refused:
            raise OffsetsNotCommitted(f"{self.stage}: offsets not committed: {refused[:3]}")


class ExactlyOnceCheckpoint:
    """The exactly-once protocol on a transactional producer (see the module's docstring for the steps)."""

    def __init__(self, stage: str, producer: Producer, consumer: Consumer, serde: AvroSerde, prefix: str,
                 state: StateStore | None = None, timeout: float = 60.0) -> None:
        self.stage = stage
        self.producer = producer
        self.consumer = consumer
        self.serde = serde
        self.prefix = prefix
        self.state = state
        self.timeout = timeout
        self._open = False
        self._start: dict[tuple[str, int], int] = {}

    def initialize(self) -> None:
        """Register the transactional.id with its coordinator, fencing an older process with the same id and
        aborting the transaction it left open. Once per producer, before the first batch."""
        self._call("init_transactions", lambda: self.producer.init_transactions(self.timeout))

    def begin(self, start: Offsets) -> None:
        self._start = dict(start)
        self._call("begin_transaction", self.producer.begin_transaction)
        self._open = True

    def produce(self, events: Sequence[tuple[str, Event]]) -> None:
        for topic, event in events:
            full = self.prefix + topic
            key = event.partition_key
            self._send(full, key.encode() if key else None, self.serde.serialize(full, event))
        self.producer.poll(0)

    def commit(self, outputs: Sequence[tuple[str, Event]], offsets: Offsets,
               metadata: Mapping[tuple[str, int], str] | None = None) -> None:
        try:
            # 2. the outputs
            self.produce(outputs)
            # 3. the state changes
            if self.state is not None:
                for partition, key, value in self.state.staged():
                    self._send(self.state.topic, key.encode(), value, partition)
            # 4. the input offsets, fenced by the group's generation
            if offsets:
                tps = [_position(t, p, o, (metadata or {}).get((t, p))) for (t, p), o in offsets.items()]
                self._call("send_offsets_to_transaction", lambda: self.producer.send_offsets_to_transaction(
                    tps, self.consumer.consumer_group_metadata(), self.timeout))
            # 5. all of it at once
            self._call("commit_transaction", lambda: self.producer.commit_transaction(self.timeout))
        except TransactionAborted:
            self.abort()
            raise
        self._open = False
        # 6. the state tables
        if self.state is not None:
            self.state.apply_staged()

    def abort(self) -> None:
        if self.state is not None:
            self.state.discard_staged()
        if not self._open:
            return
        self._open = False
        self._call("abort_transaction", lambda: self.producer.abort_transaction(self.timeout))
        self._rewind()

    # -- steps ---------------------------------------------------------------------------------------
    def _send(self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None) -> None:
        while True:
            try:
                if partition is None:
                    self.producer.produce(topic, key=key, value=value)
                else:
                    self.producer.produce(topic, key=key, value=value, partition=partition)
                return
            except BufferError:  # the local queue is full: let deliveries drain it
                self.producer.poll(0.1)
            except KafkaException as exc:
                raise self._classified("produce", exc) from exc

    def _call(self, step: str, call: Callable[[], object]) -> None:
        """A transactional call, retried while librdkafka says it may be (until the timeout); an error that
        needs the transaction aborted raises ``TransactionAborted``, a fatal one ``ProducerFenced``."""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                call_within(f"{self.stage}: {step}", call, wedged_after(step, self.timeout))
                return
            except KafkaException as exc:
                err = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
                if err is not None and err.retriable() and time.monotonic() < deadline:
                    log.warning("transactional call failed; retrying", stage=self.stage, step=step, error=err.str())
                    time.sleep(0.2)
                    continue
                raise self._classified(step, exc) from exc

    def _classified(self, step: str, exc: KafkaException) -> CheckpointError:
        err = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
        reason = err.str() if err is not None else str(exc)
        if err is not None and (err.fatal() or err.code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED)):
            return ProducerFenced(f"{self.stage}: {step}: the transactional producer is fenced or failed: {reason}")
        if err is not None and (err.txn_requires_abort() or err.retriable()) and self._open:
            return TransactionAborted(f"{self.stage}: {step} failed, the batch's transaction is aborted: {reason}")
        return TransactionFailed(f"{self.stage}: {step} failed: {reason}")

    def _rewind(self) -> None:
        """Back to where the batch began, on the partitions this worker still holds (a rebalance may have taken
        some: their new owner starts from the last committed offset anyway)."""
        held = {(tp.topic, tp.partition) for tp in self.consumer.assignment()}
        for (topic, partition), offset in self._start.items():
            if (topic, partition) not in held:
                continue
            try:
                self.consumer.seek(TopicPartition(topic, partition, offset))
            except KafkaException as exc:
                log.warning("could not rewind a partition", stage=self.stage, topic=topic, partition=partition,
                            error=str(exc))
        log.warning("transaction aborted; batch rewound", stage=self.stage,
                    partitions={f"{t}[{p}]": o for (t, p), o in self._start.items()})


def _position(topic: str, partition: int, offset: int, metadata: str | None) -> TopicPartition:
    """An offset to commit, with its metadata when there is any (the binding refuses a None)."""
    return TopicPartition(topic, partition, offset, metadata) if metadata else TopicPartition(topic, partition, offset)


def open_checkpoint(kafka: KafkaSettings, stage: str, producer: Producer, consumer: Consumer,
                    serde: AvroSerde, state: StateStore | None) -> Checkpoint:
    """The checkpoint the settings ask for (``processing_guarantee``). The exactly-once one initialises its
    transactional producer here (the producer must have been made with a transactional.id)."""
    if kafka.processing_guarantee == "at_least_once":
        return AtLeastOnceCheckpoint(stage, producer, consumer, serde, kafka.topic_prefix, state)
    if kafka.processing_guarantee == "exactly_once":
        checkpoint = ExactlyOnceCheckpoint(stage, producer, consumer, serde, kafka.topic_prefix, state,
                                           timeout=max(10.0, kafka.transaction_timeout_ms / 1000))
        checkpoint.initialize()
        return checkpoint
    raise ValueError(f"unknown processing guarantee {kafka.processing_guarantee!r}")
