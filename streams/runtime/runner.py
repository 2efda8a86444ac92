"""The consume -> process -> produce -> commit loop every pipeline stage runs in.

``StageRunner`` runs one stage (``streams.runtime.stage``): it owns the worker's lifecycle and its group
membership (rebalance callbacks restore and drop per-stream state), takes batches (sized by lane priority,
``streams.runtime.priority``), decodes each event and hands it to the stage, dead-letters what fails, and
records metrics. Making a batch durable (outputs, then state changes, then offsets, in that order) is the
checkpoint's job (``streams.runtime.checkpoint``).

A record that cannot be decoded, or whose handling raises, is sent with its error to ``<topic>.dlq`` and the
stage moves on; its state changes and outputs are rolled back and its job gets a ``FAILED`` event. Errors a
stage declares transient (e.g. a lost database connection) are not dead-lettered: the worker stops without
committing, and its supervisor restarts it to retry. So does a checkpoint that fails. A record that kills the
process outright is found by the deaths it causes and dead-lettered after a few (``streams.runtime.poison``).
"""

from __future__ import annotations

import signal
import socket
import threading
import time
import traceback
from collections.abc import Iterable

import structlog
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from foundation.events import DeadLetter
from foundation.logs import get_logger
from foundation.settings import Settings
from streams.kafka.clients import restore_consumer, stage_consumer, stage_producer, transactional_id
from streams.kafka.schema_registry import make_registry
from streams.kafka.serde import AvroSerde
from streams.kafka.topics import dlq_name
from streams.runtime.checkpoint import (
    Checkpoint,
    CheckpointError,
    ProducerWedged,
    TransactionAborted,
    open_checkpoint,
)
from streams.runtime.fairness import FairPool
from streams.runtime.memory import IdleRelease
from streams.runtime.metrics import BATCH_SECONDS, DEAD_LETTERS, EVENT_AGE, EVENTS, LAG, LANE_PAUSES, PAUSED_PARTITIONS
from streams.runtime.poison import PoisonGuard
from streams.runtime.priority import Backlogs, LaneDecision, LanePriority
from streams.runtime.stage import Context, Record, Stage, StageSpec
from streams.runtime.state import StateStore

log = get_logger(__name__)


class StageRunner:
    """Runs ``stage`` as declared by ``spec``. ``connect`` builds the Kafka clients from settings; the
    constructor takes them ready-made (unit tests pass fakes)."""

    def __init__(self, spec: StageSpec, stage: Stage, settings: Settings, *, consumer: Consumer, producer: Producer,
                 serde: AvroSerde, state: StateStore | None = None, checkpoint: Checkpoint | None = None,
                 poison: PoisonGuard | None = None, poll_timeout: float = 0.5) -> None:
        self.spec = spec
        self.stage = stage
        self.name = spec.group  # what job events, dead letters and metrics call the stage
        self.prefix = settings.kafka.topic_prefix
        self.max_batch = spec.batch_size(settings)
        self.poll_timeout = poll_timeout
        self.consumer = consumer
        self.producer = producer
        self.serde = serde
        self.state = state
        self.checkpoint = checkpoint or open_checkpoint(settings.kafka, self.name, producer, consumer, serde, state)
        self.poison = poison or PoisonGuard(None)  # the records in hand, for the next process if this one dies
        self._running = True
        self.memory = IdleRelease()  # freed heap back to the system when idle (streams.runtime.memory)
        self.ready = threading.Event()  # set once the group has assigned this worker its partitions
        self.partitions: set[tuple[str, int]] = set()
        self.lanes = LanePriority.for_stage(spec.name, [self.prefix + t for t in spec.lanes], self.max_batch,
                                            settings.lanes)
        self.backlogs = Backlogs(consumer)
        self.batch_limit = self.max_batch
        lookahead = spec.lookahead_bytes(settings)
        # under exactly-once, the records handled past a committed offset travel in its metadata (so that they
        # are not handled twice after a restart); a stream is fresh for as long as a lane stays busy after its
        # events (batches stay small while streams come and go beside a long one); see streams.runtime.fairness
        self.pool = FairPool(self.lanes.lanes, lookahead, settle_s=settings.lanes.busy_s, free_bytes=spec.free_bytes,
                             exactly_once=settings.kafka.processing_guarantee == "exactly_once"
                             ) if lookahead > 0 else None

    @classmethod
    def connect(cls, spec: StageSpec, stage: Stage, settings: Settings) -> StageRunner:
        """The runner with real clients: the stage's consumer group, producer (transactional under exactly-once)
        and (if stateful) state store."""
        kafka = settings.kafka
        instance = settings.worker.instance or socket.gethostname()
        client_id = f"{spec.group}-{instance}"
        exactly_once = kafka.processing_guarantee == "exactly_once"
        producer = stage_producer(kafka, client_id,
                                  transactional_id(kafka, spec.group, instance) if exactly_once else None)
        state = None
        if spec.changelog is not None:
            state = StateStore(kafka.topic_prefix + spec.changelog,
                               lambda: restore_consumer(kafka, spec.group, f"{client_id}-restore"), producer,
                               transactional=exactly_once)
        serde = AvroSerde(make_registry(settings.schema_registry.url, settings.schema_registry_file),
                          kafka.topic_prefix)
        poison = PoisonGuard.open(settings.worker_hand_file(spec.group, instance), settings.worker.poison_deaths,
                                  spec.group)
        return cls(spec, stage, settings, consumer=stage_consumer(kafka, spec.group, client_id, instance),
                   producer=producer, serde=serde, state=state, poison=poison)

    # -- lifecycle ---------------------------------------------------------------------------------------
    def stop(self, *_: object) -> None:
        self._running = False

    def subscribe(self) -> None:
        """Join the stage's consumer group on its inputs; partitions come and go through the callbacks."""
        topics = [self.prefix + t for t in self.spec.inputs]
        self.consumer.subscribe(topics, on_assign=self._on_assign, on_revoke=self._on_revoke,
                                on_lost=self._on_revoke)
        log.info("stage started", stage=self.name, topics=topics)

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        self.subscribe()
        try:
            while self._running:
                self.memory.after_step(self.step())
        except ProducerWedged:
            raise  # closing the clients would wait on the same coordinator: the process exits as it is
        except BaseException:
            self._close()
            raise
        self._close()

    def _close(self) -> None:
        self.stage.close()
        self.consumer.close()
        self.producer.flush(10)
        log.info("stage stopped", stage=self.name)

    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("partitions assigned", stage=self.name, partitions=[p.partition for p in partitions])
        held = {n for _, n in self.partitions}
        self.partitions |= {(p.topic, p.partition) for p in partitions}
        mine = [TopicPartition(p.topic, p.partition) for p in partitions if p.topic in self.lanes.lanes]
        if mine:
            # where each lane partition resumes, so that a backlog shows before its first event is consumed
            committed = self._committed(mine)
            self.backlogs.started_at(committed)
            if self.pool is not None and self.pool.exactly_once:  # the records handled past it are skipped
                for tp in committed:
                    if tp.offset >= 0:
                        self.pool.restore((tp.topic, tp.partition), tp.offset, tp.metadata)
        if self.state is not None:
            # Co-partitioned inputs (same key, same partition count) share one state partition per number.
            self.state.assign(sorted({p.partition for p in partitions} - held))
        self.ready.set()

    def _committed(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        """The committed offsets (and metadata) of newly assigned ``partitions``. Under exactly-once with a fair
        pool they say which records were handled already, so they must be known: retried, then the worker
        stops (its restart joins again); otherwise an unknown offset only delays what the lanes see."""
        must = self.pool is not None and self.pool.exactly_once
        for attempt in range(5 if must else 1):
            try:
                committed: list[TopicPartition] = self.consumer.committed(partitions, timeout=10)
                return committed
            except KafkaException as exc:
                if not must:
                    log.warning("committed offsets unknown; lanes see backlogs once consumed", error=str(exc))
                    return []
                log.warning("committed offsets unknown; retrying", stage=self.name, attempt=attempt, error=str(exc))
                time.sleep(1.0)
        raise CheckpointError(f"{self.name}: the committed offsets of {len(partitions)} assigned partitions "
                              "could not be read; the worker stops and joins again")

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("partitions revoked", stage=self.name, partitions=[p.partition for p in partitions])
        gone = {(p.topic, p.partition) for p in partitions}
        self.partitions -= gone
        self.lanes.forget(gone)
        if self.pool is not None:  # the new owner reads them again from the committed offset
            self.pool.drop(gone)
        if self.state is not None:
            still = {n for _, n in self.partitions}
            self.state.revoke(sorted({p.partition for p in partitions} - still))

    # -- lane priority -------------------------------------------------------------------------------------
    def prioritize(self) -> LaneDecision:
        """Ask the lane priority what to pause and resume and how large the next batch may be, and apply it."""
        lane_partitions = [tp for tp in self.partitions if tp[0] in self.lanes.lanes]
        waiting = self.backlogs.waiting(lane_partitions)
        if self.pool is not None:  # consumed into the pool but not handled: still a backlog
            waiting |= self.pool.held_partitions() & self.partitions
        decision = self.lanes.decide(self.partitions, waiting)
        self.batch_limit = decision.batch_limit
        if decision.pause:
            self.consumer.pause([TopicPartition(t, p) for t, p in decision.pause])
            for t, _ in decision.pause:
                LANE_PAUSES.labels(self.name, t.removeprefix(self.prefix)).inc()
        if decision.resume:
            self.consumer.resume([TopicPartition(t, p) for t, p in decision.resume])
        if decision.pause or decision.resume:
            for lane in self.lanes.lanes:
                PAUSED_PARTITIONS.labels(self.name, lane.removeprefix(self.prefix)).set(self.lanes.paused_in(lane))
            log.debug("lanes", stage=self.name, busy=decision.busy, paused=sorted({t for t, _ in self.lanes.paused}))
        return decision

    # -- one batch -------------------------------------------------------------------------------------
    def _next_batch(self) -> list[Message]:
        """Whatever is already fetched, up to the batch limit; else wait for the first event and take what came
        with it. (``consume(n, timeout)`` alone would wait the whole timeout for n events: latency on every
        hop.)"""
        limit = self.batch_limit
        if self.pool is not None:
            return self._next_fair_batch(self.pool, limit)
        messages: list[Message] = self.consumer.consume(limit, 0)
        if messages:
            return messages
        first = self.consumer.poll(self.poll_timeout)
        if first is None:
            return []
        return [first, *self.consumer.consume(limit - 1, 0)] if limit > 1 else [first]

    def _next_fair_batch(self, pool: FairPool, limit: int) -> list[Message]:
        """Everything already fetched goes into the pool (up to its capacity; waiting for the first event only
        when the pool is empty), and the batch is taken from the pool fairly across streams."""
        self._fill(pool, limit)
        if not len(pool):
            first = self.consumer.poll(self.poll_timeout)
            if first is None:
                return []
            _hold(pool, [first])
            self._fill(pool, limit)
        return pool.take(limit)  # type: ignore[return-value]

    def _fill(self, pool: FairPool, limit: int) -> None:
        while pool.has_room():
            more: list[Message] = self.consumer.consume(max(limit, _FILL), 0)
            if not more:
                return
            _hold(pool, more)

    def step(self) -> int:
        """One batch: consume, decode, handle, dead-letter what fails, then the checkpoint. Returns the number
        of messages consumed."""
        self.prioritize()
        messages = self._next_batch()
        self.lanes.note(str(m.topic()) for m in messages if m.error() is None)
        if not messages:
            return 0
        started = time.monotonic()
        start = _batch_start(messages)
        if self.pool is not None and self.pool.exactly_once:  # an abort goes back to the last commit
            start = self.pool.rewind_points(start)
        self.checkpoint.begin(start)
        records: list[Record] = []
        committed = False
        try:
            ctx = Context(self.name, self.state, self.checkpoint.produce, self.spec.emits)
            records, offsets = self._decode(messages, ctx)
            if records:
                self._handle(records, ctx, messages)
            metadata = None
            if self.pool is not None:  # never past a record held back in the pool
                offsets = self.pool.commit_offsets(offsets)
                metadata = self.pool.commit_metadata(offsets) if self.pool.exactly_once else None
            self.checkpoint.commit(ctx.outbox, offsets, metadata)
            committed = True
            if metadata is not None and self.pool is not None:
                self.pool.committed(offsets)
            if ctx.release_requested:  # the outputs are out: their readers do not wait for the release
                self.memory.now()
        except TransactionAborted as exc:
            # exactly-once: nothing of the batch is visible and the consumer is back at its last commit; drop what
            # the stage derived from it in memory and take the batch again
            self.checkpoint.abort()
            if self.pool is not None:  # what the pool holds of those partitions is consumed again
                self.pool.rewind(start)
            for record in records:
                self.stage.forget(record)
            log.warning("batch aborted; it is handled again", stage=self.name, error=str(exc))
            return len(messages)
        except ProducerWedged:
            raise  # nothing more can be asked of that producer, not even an abort
        except CheckpointError as exc:
            log.error("checkpoint failed; no offset committed, the worker stops", stage=self.name, error=str(exc))
            self.checkpoint.abort()
            raise
        except BaseException:
            self.checkpoint.abort()
            raise
        finally:
            # nothing is in hand any more: committed, taken again, or the worker stops by an exception of its own
            # (no record killed it); only committed records stop being suspects
            self.poison.release(records if committed else ())
        self._observe(records, started)
        return len(messages)

    def _decode(self, messages: list[Message], ctx: Context) -> tuple[list[Record], dict[tuple[str, int], int]]:
        """The batch's records, and the offsets to commit for it (undecodable events are dead-lettered)."""
        records: list[Record] = []
        offsets: dict[tuple[str, int], int] = {}
        for msg in messages:
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    continue
                raise KafkaException(err)
            topic = msg.topic() or ""
            offsets[(topic, msg.partition() or 0)] = (msg.offset() or 0) + 1
            try:
                value = self.serde.deserialize(topic, msg.value())
            except Exception as exc:
                self._dead_letter(ctx, msg, exc)
                continue
            key = msg.key()
            records.append(Record(topic.removeprefix(self.prefix), msg.partition() or 0, msg.offset() or 0,
                                  key.decode(errors="replace") if key else None, value, msg.timestamp()[1]))
        return records, offsets

    def _handle(self, records: list[Record], ctx: Context, messages: list[Message]) -> None:
        by_offset = {(m.topic(), m.partition(), m.offset()): m for m in messages}
        one_by_one = self.poison.suspected(records)  # the last process died with some in hand: a death names one
        if not one_by_one:
            self.poison.hold(records)
            if len(records) > 1 and self.state is None and self._handle_batch(records, ctx):
                return
        for record in records:
            if one_by_one:
                self.poison.hold([record])
            self._handle_one(record, ctx, by_offset[(self.prefix + record.topic, record.partition, record.offset)])

    def _handle_batch(self, records: list[Record], ctx: Context) -> bool:
        """The stage's own batch handling; a failure is retried record by record (so only the bad ones are
        dead-lettered)."""
        mark = len(ctx.outbox)
        try:
            return self.stage.handle_batch(records, ctx)
        except self.stage.transient_errors:
            raise
        except Exception:
            log.warning("batch failed; retrying its records one by one", stage=self.name,
                        error=traceback.format_exc(limit=3))
            del ctx.outbox[mark:]
            return False

    def _handle_one(self, record: Record, ctx: Context, msg: Message) -> None:
        ctx.partition = record.partition
        structlog.contextvars.bind_contextvars(
            stream_id=record.value.get("stream_id"), job_id=record.value.get("job_id"),
            org_id=(record.value.get("options") or {}).get("org_id"))
        mark, drained = len(ctx.outbox), ctx.drained
        if self.state is not None:
            self.state.begin()
        try:
            self.poison.check(record)  # PoisonEvent: the worker died handling it too often; dead-lettered below
            self.stage.handle(record, ctx)
        except self.stage.transient_errors:
            raise
        except Exception as exc:
            if ctx.drained != drained:
                log.error("record failed after publishing part of its output", stage=self.name,
                          topic=record.topic, offset=record.offset)
                mark = 0
            del ctx.outbox[mark:]
            if self.state is not None:
                self.state.rollback()
            self.stage.forget(record)
            self._dead_letter(ctx, msg, exc)
            if "stream_id" in record.value:
                ctx.job_event(record.value, "FAILED", error=f"{self.name} could not handle an event "
                              f"({type(exc).__name__}: {exc}); it was dead-lettered to {dlq_name(record.topic)}")
        else:
            if self.state is not None:
                self.state.end()

    def _dead_letter(self, ctx: Context, msg: Message, exc: BaseException) -> None:
        topic = (msg.topic() or "").removeprefix(self.prefix)
        log.error("dead-lettering event", stage=self.name, topic=topic, partition=msg.partition(),
                  offset=msg.offset(), error=f"{type(exc).__name__}: {exc}")
        DEAD_LETTERS.labels(self.name, topic).inc()
        ctx.emit(dlq_name(topic), DeadLetter(
            topic=topic, partition=msg.partition() or 0, offset=msg.offset() or 0, key=msg.key(), value=msg.value(),
            stage=self.name, error_type=type(exc).__name__, error=str(exc)[:4000]))

    # -- metrics ---------------------------------------------------------------------------------------
    def _observe(self, records: Iterable[Record], started: float) -> None:
        BATCH_SECONDS.labels(self.name).observe(time.monotonic() - started)
        clock_ms = time.time() * 1000
        for r in records:
            EVENTS.labels(self.name, r.topic).inc()
            if r.timestamp_ms > 0:  # the event's create time in Kafka: when the previous stage produced it
                EVENT_AGE.labels(self.name).observe(max(0.0, clock_ms - r.timestamp_ms) / 1000)
        self._record_lag()

    def _record_lag(self) -> None:
        """Lag from the watermarks the last fetches returned (no extra requests to the broker)."""
        for topic, partition in self.partitions:
            tp = TopicPartition(topic, partition)
            _, hi = self.consumer.get_watermark_offsets(tp, cached=True)
            position = self.consumer.position([tp])[0].offset
            if hi >= 0 and position >= 0:
                LAG.labels(self.name, topic.removeprefix(self.prefix), str(partition)).set(max(0, hi - position))


_FILL = 64  # messages moved from the consumer into the fairness pool per call


def _hold(pool: FairPool, messages: list[Message]) -> None:
    """Consumed messages into the pool; the end of a partition is no record, any other error is raised."""
    good = []
    for msg in messages:
        err = msg.error()
        if err is None:
            good.append(msg)
        elif err.code() != KafkaError._PARTITION_EOF:
            raise KafkaException(err)
    pool.add(good)


def _batch_start(messages: list[Message]) -> dict[tuple[str, int], int]:
    """The first offset of each partition in the batch (where an aborted batch is rewound to)."""
    start: dict[tuple[str, int], int] = {}
    for msg in messages:
        if msg.error() is None:
            start.setdefault((msg.topic() or "", msg.partition() or 0), msg.offset() or 0)
    return start
