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

Exactly-once (issue 12, Apache Kafka only) is a second implementation of the same ``Checkpoint`` protocol,
chosen by ``KafkaSettings.processing_guarantee`` in ``open_checkpoint``: ``begin`` calls the transactional
producer's ``begin_transaction``; outputs and changelog records are produced inside the transaction; ``commit``
calls ``send_offsets_to_transaction`` with the consumer's group metadata and then ``commit_transaction``;
``abort`` calls ``abort_transaction``. Readers of result topics then use ``isolation.level=read_committed``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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


class Checkpoint(Protocol):
    """One batch's way to durability (see the module's docstring for the steps)."""

    def begin(self) -> None:
        """Open the checkpoint of a new batch."""
        ...

    def produce(self, events: Sequence[tuple[str, Event]]) -> None:
        """Send events now (a stage draining early); they are still confirmed before the commit."""
        ...

    def commit(self, outputs: Sequence[tuple[str, Event]], offsets: Offsets) -> None:
        """Make the batch durable and commit ``offsets``; raises ``CheckpointError`` with nothing committed."""
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

    def begin(self) -> None:
        self._failures = []

    def produce(self, events: Sequence[tuple[str, Event]]) -> None:
        for topic, event in events:
            full = self.prefix + topic
            key = event.partition_key
            self._send(full, key.encode() if key else None, self.serde.serialize(full, event))
        self.producer.poll(0)

    def commit(self, outputs: Sequence[tuple[str, Event]], offsets: Offsets) -> None:
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


def open_checkpoint(kafka: KafkaSettings, stage: str, producer: Producer, consumer: Consumer,
                    serde: AvroSerde, state: StateStore | None) -> Checkpoint:
    """The checkpoint the settings ask for (``processing_guarantee``); exactly-once is added here (issue 12)."""
    if kafka.processing_guarantee == "at_least_once":
        return AtLeastOnceCheckpoint(stage, producer, consumer, serde, kafka.topic_prefix, state)
    raise ValueError(f"unknown processing guarantee {kafka.processing_guarantee!r}")
