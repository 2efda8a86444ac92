"""The consume -> process -> produce -> commit loop every pipeline stage runs in.

A stage is a plain object with ``handle(record, ctx)`` (and optionally ``handle_batch``); it never touches
Kafka. The runtime gives it decoded records and a context to emit events and keep per-stream state, then:

1. produces the emitted events and flushes them (delivery confirmed by the broker),
2. writes the batch's staged state changes to the stage's changelog and flushes them,
3. commits the input offsets.

So offsets are committed only after outputs are durable (at-least-once), and stages make redelivery
harmless with deterministic ids and per-stream sequence checks (effectively-once).

A record that cannot be decoded, or whose handling raises, is sent with its error to ``<topic>.dlq`` and the
stage moves on; its state changes and outputs are rolled back. Errors a stage declares transient (e.g. a
lost database connection) are not dead-lettered: the worker stops without committing, and its supervisor
restarts it to retry.
"""

from __future__ import annotations

import signal
import socket
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import structlog
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from foundation.events import DeadLetter, Event, JobEvent, JobState
from foundation.logs import get_logger
from foundation.settings import Settings
from streams.kafka.clients import make_consumer, make_producer
from streams.kafka.schema_registry import make_registry
from streams.kafka.serde import AvroSerde
from streams.kafka.topics import JOBS_EVENTS, dlq_name, state_topic
from streams.runtime.metrics import BATCH_SECONDS, DEAD_LETTERS, EVENT_AGE, EVENTS, LAG, LANE_PAUSES, PAUSED_PARTITIONS
from streams.runtime.state import StateStore

log = get_logger(__name__)



@dataclass(frozen=True)
class Record:
    topic: str  # logical name, without the deployment's topic prefix
    partition: int
    offset: int
    key: str | None
    value: dict[str, Any]
    timestamp_ms: int


class Context:
    """What a stage may do while handling records: emit events and read/write its per-stream state."""

    def __init__(self, stage: str, state: StateStore | None,
                 producer: Callable[[list[tuple[str, Event]]], None] | None = None) -> None:
        self.stage = stage
        self._state = state
        self._producer = producer
        self.outbox: list[tuple[str, Event]] = []
        self.drained = 0  # events handed to the producer before the end of the batch
        self.partition = -1

    def emit(self, topic: str, event: Event) -> None:
        """Publish ``event`` on ``topic`` once the batch is handled (keyed by ``event.partition_key``)."""
        self.outbox.append((topic, event))

    def drain(self) -> None:
        """Hand emitted events to the producer now (still confirmed before the commit). For stages that
        emit a lot per input, like ingest; such events can no longer be rolled back if the record fails."""
        if self._producer is not None and self.outbox:
            self._producer(self.outbox)
            self.drained += len(self.outbox)
            self.outbox = []

    def job_event(self, stream: dict[str, Any], state: JobState, *, progress: float | None = None,
                  message: str | None = None, error: str | None = None,
                  details: dict[str, str] | None = None) -> None:
        job_id = stream.get("job_id")
        if not job_id:
            return  # streams produced straight to Kafka without a job have nothing to report to
        self.emit(JOBS_EVENTS, JobEvent(
            job_id=job_id, stream_id=stream["stream_id"], revision=stream.get("revision", 1), stage=self.stage,
            state=state, progress=progress, message=message, error=error, details=details or {}))

    # state of the partition the current record came from
    def get(self, key: str) -> bytes | None:
        return self._store().get(self.partition, key)

    def put(self, key: str, value: bytes | None) -> None:
        self._store().put(self.partition, key, value)

    def keys(self, prefix: str) -> list[str]:
        return self._store().keys(self.partition, prefix)

    def _store(self) -> StateStore:
        if self._state is None:
            raise RuntimeError(f"stage {self.stage} declared no state")
        return self._state


class Stage(Protocol):
    name: ClassVar[str]
    inputs: ClassVar[tuple[str, ...]]
    # inputs read with strict priority, highest first: while one has events waiting, the later ones pause
    lanes: ClassVar[tuple[str, ...]]
    stateful: ClassVar[bool]
    transient_errors: tuple[type[BaseException], ...]

    def handle(self, record: Record, ctx: Context) -> None: ...

    def handle_batch(self, records: Sequence[Record], ctx: Context) -> bool:
        """Handle a whole batch at once if the stage can do better than one by one; False to decline."""
        ...

    def forget(self, record: Record) -> None:
        """Drop any in-memory cache derived from the record's stream (its handling failed)."""
        ...

    def close(self) -> None: ...


class BaseStage:
    """Defaults for the optional parts of the Stage protocol."""

    transient_errors: tuple[type[BaseException], ...] = ()
    lanes: ClassVar[tuple[str, ...]] = ()

    def handle_batch(self, records: Sequence[Record], ctx: Context) -> bool:
        return False

    def forget(self, record: Record) -> None:
        pass

    def close(self) -> None:
        pass


class StageRunner:
    def __init__(self, stage: Stage, settings: Settings, *, max_batch: int = 200, poll_timeout: float = 0.5) -> None:
        self.stage = stage
        self.settings = settings
        self.kafka = settings.kafka
        self.prefix = settings.kafka.topic_prefix
        self.max_batch = max_batch
        self.poll_timeout = poll_timeout
        client_id = f"{stage.name}-{socket.gethostname()}"
        self.serde = AvroSerde(make_registry(settings.schema_registry.url, settings.schema_registry_file),
                               self.prefix)
        self.producer: Producer = make_producer(self.kafka, client_id)
        self.consumer: Consumer = make_consumer(self.kafka, stage.name, client_id)
        self.state: StateStore | None = None
        if stage.stateful:
            self.state = StateStore(
                self.prefix + state_topic(stage.name),
                lambda: Consumer({"bootstrap.servers": self.kafka.bootstrap_servers, **self.kafka.client_config,
                                  "group.id": f"{self.prefix}{stage.name}.restore", "enable.auto.commit": False,
                                  "fetch.wait.max.ms": self.kafka.fetch_wait_max_ms,
                                  "fetch.message.max.bytes": self.kafka.max_message_bytes,
                                  "enable.partition.eof": True}),
                self.producer,
            )
        self._running = True
        self._delivery_errors: list[str] = []
        self.ready = threading.Event()  # set once the group has assigned this worker its partitions
        self.partitions: set[tuple[str, int]] = set()
        self.lanes = [self.prefix + t for t in stage.lanes]
        self.paused: set[tuple[str, int]] = set()
        self.lane_seen = [float("-inf")] * len(self.lanes)  # when each lane last had events (monotonic)
        self.batch_limit = max_batch
        self.lane_start: dict[tuple[str, int], int] = {}  # committed offsets of lane partitions at assignment

    # -- lifecycle ---------------------------------------------------------------------------------------
    def stop(self, *_: object) -> None:
        self._running = False

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        topics = [self.prefix + t for t in self.stage.inputs]
        self.consumer.subscribe(topics, on_assign=self._on_assign, on_revoke=self._on_revoke,
                                on_lost=self._on_revoke)
        log.info("stage started", stage=self.stage.name, topics=topics)
        try:
            while self._running:
                self.step()
        finally:
            self.stage.close()
            self.consumer.close()
            self.producer.flush(10)
            log.info("stage stopped", stage=self.stage.name)

    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("partitions assigned", stage=self.stage.name, partitions=[p.partition for p in partitions])
        held = {n for _, n in self.partitions}
        self.partitions |= {(p.topic, p.partition) for p in partitions}
        mine = [TopicPartition(p.topic, p.partition) for p in partitions if p.topic in self.lanes]
        if mine:
            # where each lane partition resumes, so that a backlog shows before its first event is consumed
            try:
                for tp in self.consumer.committed(mine, timeout=10):
                    if tp.offset >= 0:
                        self.lane_start[(tp.topic, tp.partition)] = tp.offset
            except KafkaException as exc:
                log.warning("committed offsets unknown; lanes see backlogs once consumed", error=str(exc))
        if self.state is not None:
            # Co-partitioned inputs (same key, same partition count) share one state partition per number.
            self.state.assign(sorted({p.partition for p in partitions} - held))
        self.ready.set()

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("partitions revoked", stage=self.stage.name, partitions=[p.partition for p in partitions])
        self.partitions -= {(p.topic, p.partition) for p in partitions}
        self.paused -= {(p.topic, p.partition) for p in partitions}
        if self.state is not None:
            still = {n for _, n in self.partitions}
            self.state.revoke(sorted({p.partition for p in partitions} - still))

    # -- one batch -------------------------------------------------------------------------------------
    def _next_batch(self) -> list[Message]:
        """Whatever is already fetched, up to max_batch; else wait for the first event and take what came with
        it. (``consume(n, timeout)`` alone would wait the whole timeout for n events: latency on every hop.)"""
        limit = self.batch_limit
        messages = self.consumer.consume(limit, 0)
        if messages:
            return messages
        first = self.consumer.poll(self.poll_timeout)
        if first is None:
            return []
        return [first, *self.consumer.consume(limit - 1, 0)] if limit > 1 else [first]

    def _backlog(self, topic: str, partition: int) -> bool:
        """Whether events wait on a partition (from the watermarks of the last fetch; no broker request).
        Before its first event is consumed the position is unknown: the committed offset stands in for it, or,
        with none, the start of the log (the group reads from the earliest offset)."""
        tp = TopicPartition(topic, partition)
        lo, hi = self.consumer.get_watermark_offsets(tp, cached=True)
        position = self.consumer.position([tp])[0].offset
        if position < 0:
            position = self.lane_start.get((topic, partition), lo)
        return hi >= 0 and position >= 0 and hi > position

    def prioritize(self) -> None:
        """Strict priority between lanes: pause every lane after the first one with a backlog, resume the
        rest (a paused partition keeps its position; resuming fetches from there). While a lane has been busy
        lately and lower lanes run, batches are small (``LaneSettings.yield_batch``): the next urgent event
        then waits for one small piece of lower-lane work, never for a whole large batch of it."""
        if not self.lanes:
            return
        now = time.monotonic()
        busy = next((i for i, lane in enumerate(self.lanes)
                     if any(t == lane and self._backlog(t, p) for t, p in self.partitions)), len(self.lanes))
        if busy < len(self.lanes):
            self.lane_seen[busy] = now
        recent = next((i for i, seen in enumerate(self.lane_seen) if now - seen < self.settings.lanes.busy_s),
                      len(self.lanes))
        lanes = self.settings.lanes
        if recent < busy < len(self.lanes):  # urgent work lately, a lower lane's waits: it runs in small pieces
            self.batch_limit = min(self.max_batch, lanes.yield_batch_of(self.stage.name))
        elif busy > 0:  # the top lane is idle: what comes next is lower-lane work, in bounded batches
            self.batch_limit = lanes.lower_batch_of(self.stage.name, self.max_batch)
        else:  # the top lane has a backlog and the others are paused: all of it at once
            self.batch_limit = self.max_batch
        hold = set(self.lanes[busy + 1:])
        pause = [(t, p) for t, p in self.partitions if t in hold and (t, p) not in self.paused]
        resume = [(t, p) for t, p in self.paused if t not in hold]
        if pause:
            self.consumer.pause([TopicPartition(t, p) for t, p in pause])
            self.paused |= set(pause)
            for t, _ in pause:
                LANE_PAUSES.labels(self.stage.name, t.removeprefix(self.prefix)).inc()
        if resume:
            self.consumer.resume([TopicPartition(t, p) for t, p in resume])
            self.paused -= set(resume)
        if pause or resume:
            for lane in self.lanes:
                PAUSED_PARTITIONS.labels(self.stage.name, lane.removeprefix(self.prefix)).set(
                    sum(1 for t, _ in self.paused if t == lane))
            log.debug("lanes", stage=self.stage.name, busy=self.lanes[busy] if busy < len(self.lanes) else None,
                      paused=sorted({t for t, _ in self.paused}))

    def _note_lanes(self, messages: list[Message]) -> None:
        """Remember when each lane last had events (``prioritize`` keeps batches small after that)."""
        if self.lanes:
            now = time.monotonic()
            for msg in messages:
                if msg.error() is None and msg.topic() in self.lanes:
                    self.lane_seen[self.lanes.index(str(msg.topic()))] = now

    def step(self) -> int:
        self.prioritize()
        messages = self._next_batch()
        self._note_lanes(messages)
        if not messages:
            return 0
        started = time.monotonic()
        ctx = Context(self.stage.name, self.state, self._produce)
        records: list[Record] = []
        offsets: dict[tuple[str, int], int] = {}
        for msg in messages:
            err = msg.error()
            if err is not None:
                if err.code() in (KafkaError._PARTITION_EOF,):
                    continue
                raise KafkaException(err)
            topic = msg.topic() or ""
            offsets[(topic, msg.partition() or 0)] = (msg.offset() or 0) + 1
            logical = topic.removeprefix(self.prefix)
            try:
                value = self.serde.deserialize(topic, msg.value())
            except Exception as exc:
                self._dead_letter(ctx, msg, exc)
                continue
            key = msg.key()
            records.append(Record(logical, msg.partition() or 0, msg.offset() or 0,
                                  key.decode(errors="replace") if key else None, value,
                                  msg.timestamp()[1]))
        if records:
            self._handle(records, ctx, messages)
        self._flush(ctx)
        self.consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()],
                             asynchronous=False)
        BATCH_SECONDS.labels(self.stage.name).observe(time.monotonic() - started)
        clock_ms = time.time() * 1000
        for r in records:
            EVENTS.labels(self.stage.name, r.topic).inc()
            if r.timestamp_ms > 0:  # the event's create time in Kafka: when the previous stage produced it
                EVENT_AGE.labels(self.stage.name).observe(max(0.0, clock_ms - r.timestamp_ms) / 1000)
        self._record_lag()
        return len(messages)

    def _record_lag(self) -> None:
        """Lag from the watermarks the last fetches returned (no extra requests to the broker)."""
        for topic, partition in self.partitions:
            tp = TopicPartition(topic, partition)
            _, hi = self.consumer.get_watermark_offsets(tp, cached=True)
            position = self.consumer.position([tp])[0].offset
            if hi >= 0 and position >= 0:
                LAG.labels(self.stage.name, topic.removeprefix(self.prefix), str(partition)).set(max(0, hi - position))

    def _handle(self, records: list[Record], ctx: Context, messages: list[Message]) -> None:
        by_offset = {(m.topic(), m.partition(), m.offset()): m for m in messages}
        batch_ok = False
        if len(records) > 1 and self.state is None:
            mark = len(ctx.outbox)
            try:
                batch_ok = self.stage.handle_batch(records, ctx)
            except self.stage.transient_errors:
                raise
            except Exception:
                log.warning("batch failed; retrying its records one by one", stage=self.stage.name,
                            error=traceback.format_exc(limit=3))
                del ctx.outbox[mark:]
                batch_ok = False
        if batch_ok:
            return
        for record in records:
            ctx.partition = record.partition
            structlog.contextvars.bind_contextvars(
                stream_id=record.value.get("stream_id"), job_id=record.value.get("job_id"),
                org_id=(record.value.get("options") or {}).get("org_id"))
            mark, drained = len(ctx.outbox), ctx.drained
            if self.state is not None:
                self.state.begin()
            try:
                self.stage.handle(record, ctx)
            except self.stage.transient_errors:
                raise
            except Exception as exc:
                if ctx.drained != drained:
                    log.error("record failed after publishing part of its output", stage=self.stage.name,
                              topic=record.topic, offset=record.offset)
                    mark = 0
                del ctx.outbox[mark:]
                if self.state is not None:
                    self.state.rollback()
                self.stage.forget(record)
                msg = by_offset[(self.prefix + record.topic, record.partition, record.offset)]
                self._dead_letter(ctx, msg, exc)
                if "stream_id" in record.value:
                    ctx.job_event(record.value, "FAILED", error=f"{self.stage.name} could not handle an event "
                                  f"({type(exc).__name__}: {exc}); it was dead-lettered to {dlq_name(record.topic)}")
            else:
                if self.state is not None:
                    self.state.end()

    def _dead_letter(self, ctx: Context, msg: Message, exc: BaseException) -> None:
        topic = (msg.topic() or "").removeprefix(self.prefix)
        log.error("dead-lettering event", stage=self.stage.name, topic=topic, partition=msg.partition(),
                  offset=msg.offset(), error=f"{type(exc).__name__}: {exc}")
        DEAD_LETTERS.labels(self.stage.name, topic).inc()
        key = msg.key()
        ctx.emit(dlq_name(topic), DeadLetter(
            topic=topic, partition=msg.partition() or 0, offset=msg.offset() or 0, key=key, value=msg.value(),
            stage=self.stage.name, error_type=type(exc).__name__, error=str(exc)[:4000]))

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._delivery_errors.append(f"{msg.topic()}: {err}")

    def _produce(self, events: list[tuple[str, Event]]) -> None:
        for topic, event in events:
            full = self.prefix + topic
            payload = self.serde.serialize(full, event)
            key = event.partition_key
            while True:
                try:
                    self.producer.produce(full, key=key.encode() if key else None, value=payload,
                                          on_delivery=self._on_delivery)
                    break
                except BufferError:
                    self.producer.poll(0.1)
        self.producer.poll(0)

    def _flush(self, ctx: Context) -> None:
        self._produce(ctx.outbox)
        self._wait_delivered("outputs")
        if self.state is not None and self.state.has_staged():
            self.state.write_staged(self._on_delivery)
            self._wait_delivered("state")

    def _wait_delivered(self, what: str) -> None:
        remaining = self.producer.flush(60)
        if remaining or self._delivery_errors:
            errors, self._delivery_errors = self._delivery_errors, []
            raise KafkaException(f"{self.stage.name}: {what} not delivered ({remaining} pending): {errors[:3]}")
