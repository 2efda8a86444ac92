"""The commit protocol (streams.runtime.checkpoint): its steps run in order, and a failure at any step commits
no offset and leaves the state as it was."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException
from pydantic import ValidationError

from foundation.events import JobEvent
from foundation.settings import KafkaSettings
from streams.kafka.schema_registry import FileSchemaRegistry
from streams.kafka.serde import AvroSerde
from streams.kafka.topics import JOBS_EVENTS
from streams.runtime.checkpoint import (
    AtLeastOnceCheckpoint,
    ChangelogNotDelivered,
    CheckpointError,
    ExactlyOnceCheckpoint,
    OffsetsNotCommitted,
    OutputsNotDelivered,
    ProducerFenced,
    ProducerWedged,
    TransactionAborted,
    open_checkpoint,
    wedged_after,
)
from streams.runtime.state import StateStore
from tests.unit.kafka_fakes import FakeConsumer, FakeProducer, FakeRestoreConsumer, FakeTransactionalProducer

PREFIX = "p."
CHANGELOG = "p.streamscribe-post.state"
OUTPUT = "p." + JOBS_EVENTS
OFFSETS = {("p.asr.segments", 0): 6, ("p.speaker.turns", 0): 3}
START = {("p.asr.segments", 0): 4, ("p.speaker.turns", 0): 2}  # where the batch began


def _event(n: int) -> JobEvent:
    return JobEvent(job_id="j", stream_id="s", stage="streamscribe-post", state="RUNNING", progress=n / 10)


class Setup:
    def __init__(self, tmp_path: Path) -> None:
        self.producer = FakeProducer()
        self.consumer = FakeConsumer(journal=self.producer.journal)
        self.serde = AvroSerde(FileSchemaRegistry(tmp_path / "registry.json"), PREFIX)
        self.state = StateStore(CHANGELOG, lambda: FakeRestoreConsumer(self.producer), self.producer)  # type: ignore
        self.state.assign([0])
        self.state.put(0, "s#1", b"before")  # one earlier batch, durable
        self.checkpoint = AtLeastOnceCheckpoint("streamscribe-post", self.producer, self.consumer,  # type: ignore
                                                self.serde, PREFIX, self.state)
        self.checkpoint.begin({})
        self.checkpoint.commit([], {})
        self.producer.journal.clear()
        self.producer.delivered.clear()

    def batch(self) -> None:
        """The stage handled a batch: two outputs and one state change."""
        self.checkpoint.begin(START)
        self.state.begin()
        self.state.put(0, "s#1", b"after")
        self.state.end()


def test_the_steps_run_in_order(tmp_path: Path) -> None:
    s = Setup(tmp_path)
    s.batch()
    s.checkpoint.commit([(JOBS_EVENTS, _event(1)), (JOBS_EVENTS, _event(2))], OFFSETS)
    assert s.producer.journal == [f"produce {OUTPUT}", f"produce {OUTPUT}", "flush",  # 1, 2: outputs, confirmed
                                  f"produce {CHANGELOG}", "flush",  # 3, 4: state changes, confirmed
                                  "commit"]  # 5: offsets
    assert s.consumer.committed_offsets == [OFFSETS]
    outputs = [s.serde.deserialize(OUTPUT, m.value)["progress"] for m in s.producer.on(OUTPUT)]
    assert outputs == [0.1, 0.2]
    changelog = s.producer.on(CHANGELOG)
    assert [(m.partition, m.key, m.value) for m in changelog] == [(0, b"s#1", b"after")]  # the input's partition
    assert s.state.get(0, "s#1") == b"after" and not s.state.has_staged()


def test_events_drained_early_are_confirmed_before_the_commit(tmp_path: Path) -> None:
    s = Setup(tmp_path)
    s.checkpoint.begin(START)
    s.checkpoint.produce([(JOBS_EVENTS, _event(1))])  # a stage drains part of its output mid-batch
    s.checkpoint.commit([(JOBS_EVENTS, _event(2))], OFFSETS)
    assert s.producer.journal == [f"produce {OUTPUT}", f"produce {OUTPUT}", "flush", "commit"]
    assert len(s.producer.on(OUTPUT)) == 2


def test_a_batch_without_state_changes_writes_no_changelog(tmp_path: Path) -> None:
    s = Setup(tmp_path)
    s.checkpoint.begin(START)
    s.checkpoint.commit([(JOBS_EVENTS, _event(1))], OFFSETS)
    assert s.producer.journal == [f"produce {OUTPUT}", "flush", "commit"]


def _fail_produce_outputs(s: Setup) -> None:
    s.producer.fail_produce = lambda topic: topic == OUTPUT


def _fail_delivering_outputs(s: Setup) -> None:
    s.producer.fail_delivery = lambda topic: topic == OUTPUT


def _outputs_still_pending(s: Setup) -> None:
    s.producer.stuck = 1


def _fail_produce_changelog(s: Setup) -> None:
    s.producer.fail_produce = lambda topic: topic == CHANGELOG


def _fail_delivering_changelog(s: Setup) -> None:
    s.producer.fail_delivery = lambda topic: topic == CHANGELOG


def _commit_raises(s: Setup) -> None:
    s.consumer.commit_error = KafkaException(KafkaError(KafkaError._TIMED_OUT))


def _commit_refused_for_a_partition(s: Setup) -> None:
    s.consumer.refuse_partition = True


@pytest.mark.parametrize(("inject", "error", "changelog_produced"), [
    (_fail_produce_outputs, OutputsNotDelivered, False),
    (_fail_delivering_outputs, OutputsNotDelivered, False),
    (_outputs_still_pending, OutputsNotDelivered, False),
    (_fail_produce_changelog, ChangelogNotDelivered, False),
    (_fail_delivering_changelog, ChangelogNotDelivered, True),
    (_commit_raises, OffsetsNotCommitted, True),
    (_commit_refused_for_a_partition, OffsetsNotCommitted, True),
], ids=lambda v: getattr(v, "__name__", str(v)))
def test_a_failure_at_any_step_commits_no_offset(tmp_path: Path, inject: Callable[[Setup], None],
                                                 error: type[CheckpointError], changelog_produced: bool) -> None:
    s = Setup(tmp_path)
    s.batch()
    inject(s)
    with pytest.raises(error, match="streamscribe-post"):
        s.checkpoint.commit([(JOBS_EVENTS, _event(1))], OFFSETS)
    s.checkpoint.abort()
    assert s.consumer.committed_offsets == []  # nothing committed: the batch is consumed again after a restart
    # a later step never starts after a failed one
    assert (f"produce {CHANGELOG}" in s.producer.journal) == changelog_produced
    if error is not OffsetsNotCommitted:
        assert "commit" not in s.producer.journal
        assert s.state.get(0, "s#1") == b"before"  # the batch's state change is dropped with it
    assert not s.state.has_staged()


def test_the_settings_choose_the_checkpoint(tmp_path: Path) -> None:
    s = Setup(tmp_path)
    chosen = open_checkpoint(KafkaSettings(broker="tansu"), "streamscribe-post", s.producer, s.consumer,
                             s.serde, s.state)  # type: ignore
    assert isinstance(chosen, AtLeastOnceCheckpoint)
    producer = FakeTransactionalProducer()
    chosen = open_checkpoint(KafkaSettings(broker="apache"), "streamscribe-post", producer, s.consumer,
                             s.serde, s.state)  # type: ignore
    assert isinstance(chosen, ExactlyOnceCheckpoint)
    assert producer.journal == ["init_transactions"]  # the producer is registered before the first batch
    with pytest.raises(ValidationError, match="Tansu"):
        KafkaSettings(broker="tansu", processing_guarantee="exactly_once")


# -- exactly-once -----------------------------------------------------------------------------------------------

class Transactional:
    """An exactly-once checkpoint on a transactional producer, with one durable earlier batch."""

    def __init__(self, tmp_path: Path) -> None:
        self.producer = FakeTransactionalProducer()
        self.consumer = FakeConsumer(journal=self.producer.journal, assigned=set(START))
        self.serde = AvroSerde(FileSchemaRegistry(tmp_path / "registry.json"), PREFIX)
        self.state = StateStore(CHANGELOG, lambda: FakeRestoreConsumer(self.producer), self.producer,  # type: ignore
                                transactional=True)
        self.state.assign([0])
        self.checkpoint = ExactlyOnceCheckpoint("streamscribe-post", self.producer, self.consumer,  # type: ignore
                                                self.serde, PREFIX, self.state, timeout=1.0)
        self.checkpoint.initialize()
        self.checkpoint.begin({})
        self.state.put(0, "s#1", b"before")
        self.checkpoint.commit([], {})
        self.producer.journal.clear()
        self.producer.delivered.clear()

    def batch(self) -> None:
        self.checkpoint.begin(START)
        self.state.begin()
        self.state.put(0, "s#1", b"after")
        self.state.end()


def test_exactly_once_steps_run_in_order_in_one_transaction(tmp_path: Path) -> None:
    t = Transactional(tmp_path)
    t.batch()
    t.checkpoint.produce([(JOBS_EVENTS, _event(1))])  # drained early: still inside the transaction
    assert t.producer.delivered == []
    t.checkpoint.commit([(JOBS_EVENTS, _event(2))], OFFSETS)
    assert t.producer.journal == ["begin_transaction",  # 1
                                  f"produce {OUTPUT}", f"produce {OUTPUT}",  # 2: the outputs
                                  f"produce {CHANGELOG}",  # 3: the state change
                                  "send_offsets_to_transaction",  # 4: the offsets, with the group's generation
                                  "commit_transaction"]  # 5
    assert t.producer.offsets == [(OFFSETS, "group metadata, generation 1")]
    assert t.consumer.committed_offsets == []  # never committed outside the transaction
    assert [m.topic for m in t.producer.delivered] == [OUTPUT, OUTPUT, CHANGELOG]
    assert t.state.get(0, "s#1") == b"after" and not t.state.has_staged()  # 6


def _abortable() -> KafkaError:
    return KafkaError(KafkaError._STATE, "transaction needs abort", txn_requires_abort=True)


@pytest.mark.parametrize("step", ["send_offsets_to_transaction", "commit_transaction"])
def test_an_abortable_failure_aborts_rewinds_and_drops_the_state(tmp_path: Path, step: str) -> None:
    t = Transactional(tmp_path)
    t.batch()
    t.producer.fail = {step: _abortable()}
    with pytest.raises(TransactionAborted, match="streamscribe-post"):
        t.checkpoint.commit([(JOBS_EVENTS, _event(1))], OFFSETS)
    assert t.producer.journal[-4:] == [step, "abort_transaction", "seek", "seek"]
    assert t.producer.delivered == []  # nothing of the batch is visible
    assert [m.topic for m in t.producer.aborted] == [OUTPUT, CHANGELOG]
    assert sorted(t.consumer.seeks) == sorted((tp, p, o) for (tp, p), o in START.items())  # back to the start
    assert t.state.get(0, "s#1") == b"before" and not t.state.has_staged()
    # the same worker takes the batch again, and this time it commits
    t.producer.fail = {}
    t.batch()
    t.checkpoint.commit([(JOBS_EVENTS, _event(1))], OFFSETS)
    assert [m.topic for m in t.producer.delivered] == [OUTPUT, CHANGELOG]
    assert t.state.get(0, "s#1") == b"after"


def test_a_retriable_commit_error_is_retried(tmp_path: Path) -> None:
    t = Transactional(tmp_path)
    t.batch()
    t.producer.fail = {"commit_transaction": KafkaError(KafkaError._TIMED_OUT, "coordinator moving", retriable=True)}
    t.producer.times = 2
    t.checkpoint.commit([(JOBS_EVENTS, _event(1))], OFFSETS)
    assert t.producer.journal.count("commit_transaction") == 3 and "abort_transaction" not in t.producer.journal
    assert [m.topic for m in t.producer.delivered] == [OUTPUT, CHANGELOG]


def test_a_fenced_producer_stops_the_worker(tmp_path: Path) -> None:
    t = Transactional(tmp_path)
    t.batch()
    t.producer.fail = {"commit_transaction": KafkaError(KafkaError._FENCED, "fenced by a newer instance", fatal=True)}
    with pytest.raises(ProducerFenced, match="fenced"):
        t.checkpoint.commit([(JOBS_EVENTS, _event(1))], OFFSETS)
    t.checkpoint.abort()  # what the runner does before the worker stops
    assert t.producer.delivered == [] and t.state.get(0, "s#1") == b"before"
    assert "abort_transaction" in t.producer.journal


def test_a_failed_batch_aborts_its_transaction(tmp_path: Path) -> None:
    """The stage raised while handling: the runner aborts; what was drained is never visible."""
    t = Transactional(tmp_path)
    t.batch()
    t.checkpoint.produce([(JOBS_EVENTS, _event(1))])
    t.checkpoint.abort()
    assert t.producer.journal[-3:] == ["abort_transaction", "seek", "seek"]
    assert t.producer.delivered == [] and t.state.get(0, "s#1") == b"before"
    t.checkpoint.abort()  # a second abort (the runner's, after the checkpoint's own) does nothing more
    assert t.producer.journal.count("abort_transaction") == 1


def test_rewind_skips_partitions_a_rebalance_took(tmp_path: Path) -> None:
    t = Transactional(tmp_path)
    t.consumer.assigned = {("p.asr.segments", 0)}
    t.batch()
    t.checkpoint.abort()
    assert t.consumer.seeks == [("p.asr.segments", 0, 4)]


def test_restore_markers_go_out_in_their_own_transaction(tmp_path: Path) -> None:
    t = Transactional(tmp_path)
    t.state.assign([1])
    assert t.producer.journal == ["begin_transaction", f"produce {CHANGELOG}", "commit_transaction"]


def test_a_call_that_never_returns_wedges_the_producer(tmp_path: Path) -> None:
    """librdkafka can wait forever in send_offsets_to_transaction whatever its timeout (confluentinc/librdkafka#5511):
    after its timeout (at most 30 s) the checkpoint gives up on the producer, and asks nothing more of it."""
    t = Transactional(tmp_path)
    t.batch()
    release = threading.Event()
    hung = t.producer.send_offsets_to_transaction

    def never_returns(*args: Any) -> None:
        release.wait(30)
        hung(*args)

    t.producer.send_offsets_to_transaction = never_returns  # type: ignore[method-assign,assignment]
    started = time.monotonic()
    try:
        with pytest.raises(ProducerWedged, match="send_offsets_to_transaction did not return in 1 s"):
            t.checkpoint.commit([(JOBS_EVENTS, _event(1))], OFFSETS)
        assert time.monotonic() - started >= 1.0  # its timeout (1 s here) was given first
        assert "commit_transaction" not in t.producer.journal and "abort_transaction" not in t.producer.journal
    finally:
        release.set()


def test_how_long_a_transactional_call_may_take() -> None:
    assert wedged_after("send_offsets_to_transaction", 60.0) == 30.0
    assert wedged_after("begin_transaction", 10.0) == 10.0
    assert wedged_after("commit_transaction", 60.0) == 90.0  # it flushes the batch's outputs
