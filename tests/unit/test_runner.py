"""The stage runner's batch handling (streams.runtime.runner): dead letters, roll-back of a failed record's
outputs and state, the job's FAILED event, and the rest of the batch going on; rebalances and lane pauses.

The runner is built through its constructor with in-memory Kafka clients (tests/unit/kafka_fakes.py), a real
Avro serde and a real state store."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, TopicPartition

from foundation.events import AudioChunk, IngestRequest, SpeechSegment
from foundation.settings import KafkaSettings, Settings
from streams.kafka.schema_registry import FileSchemaRegistry
from streams.kafka.serde import AvroSerde
from streams.kafka.topics import (
    AUDIO_CHUNKS,
    AUDIO_SPEECH,
    AUDIO_SPEECH_HIGH,
    AUDIO_SPEECH_LOW,
    INGEST_REQUESTS,
    JOBS_EVENTS,
    SPEECH_LANES,
    dlq_name,
)
from streams.runtime.poison import PoisonGuard
from streams.runtime.runner import StageRunner
from streams.runtime.stage import BaseStage, Context, Record, StageSpec
from streams.runtime.state import StateStore
from tests.unit.kafka_fakes import (
    FakeConsumer,
    FakeMessage,
    FakeProducer,
    FakeRestoreConsumer,
    FakeTransactionalProducer,
)


class Splitter(BaseStage):
    """Per request: remembers the stream in its state, reports RUNNING and emits one chunk; a request whose
    options say ``explode`` raises after doing all that, one saying ``stray`` emits on an undeclared topic."""

    def __init__(self) -> None:
        self.forgotten: list[str] = []

    def handle(self, record: Record, ctx: Context) -> None:
        req = record.value
        ctx.put(req["stream_id"], b"seen")
        ctx.job_event(req, "RUNNING", progress=0.0)
        ctx.emit(AUDIO_CHUNKS, AudioChunk(stream_id=req["stream_id"], job_id=req["job_id"], seq=0, start_sample=0,
                                          sample_rate=16000, channels=1, data=b"\x00\x00"))
        if req["options"].get("explode"):
            raise ValueError("cannot split this one")
        if req["options"].get("stray"):
            ctx.emit(AUDIO_SPEECH, SpeechSegment(stream_id=req["stream_id"], kind="END", segment_id="x", index=0,
                                                 start=0, end=0, audio=b""))

    def forget(self, record: Record) -> None:
        self.forgotten.append(record.value["stream_id"])


SPLITTER = StageSpec(name="splitter", doc="test stage", inputs=(INGEST_REQUESTS,), outputs=(AUDIO_CHUNKS,),
                     build=lambda _settings: Splitter(), stateful=True, batch=10)


class Harness:
    """The runner on fake clients; at-least-once unless ``exactly_once`` (a transactional producer)."""

    def __init__(self, tmp_path: Path, spec: StageSpec, stage: Any, exactly_once: bool = False,
                 poison: PoisonGuard | None = None) -> None:
        self.settings = Settings(kafka=KafkaSettings(broker="apache" if exactly_once else "tansu"))
        self.producer = FakeTransactionalProducer() if exactly_once else FakeProducer()
        self.consumer = FakeConsumer(journal=self.producer.journal)
        self.serde = AvroSerde(FileSchemaRegistry(tmp_path / "registry.json"))
        self.state = None
        if spec.changelog:
            self.state = StateStore(spec.changelog, lambda: FakeRestoreConsumer(self.producer), self.producer,  # type: ignore
                                    transactional=exactly_once)
        self.stage = stage
        self.runner = StageRunner(spec, stage, self.settings, consumer=self.consumer, producer=self.producer,  # type: ignore
                                  serde=self.serde, state=self.state, poison=poison)
        self.runner.subscribe()
        self.consumer.rebalance(assign=[TopicPartition(t, p) for t in spec.inputs for p in (0, 1)])
        self.consumer.assigned = {(t, p) for t in spec.inputs for p in (0, 1)}
        self.producer.delivered.clear()  # the state store's restore markers
        self.producer.journal.clear()

    def request(self, offset: int, stream: str, **options: str) -> FakeMessage:
        event = IngestRequest(stream_id=stream, job_id=f"job-{stream}", object_key="k", options=options)
        return FakeMessage(INGEST_REQUESTS, 0, offset, stream.encode(), self.serde.serialize(INGEST_REQUESTS, event))

    def read(self, topic: str) -> list[dict[str, Any]]:
        return [self.serde.deserialize(topic, m.value) for m in self.producer.on(topic)]


def test_a_record_that_fails_is_dead_lettered_rolled_back_and_the_batch_goes_on(tmp_path: Path) -> None:
    h = Harness(tmp_path, SPLITTER, Splitter())
    undecodable = FakeMessage(INGEST_REQUESTS, 0, 1, b"garbage", b'{"not": "avro"}')
    h.consumer.batches = [[h.request(0, "a"), undecodable, h.request(2, "b", explode="yes"), h.request(3, "c")]]
    assert h.runner.step() == 4

    letters = h.read(dlq_name(INGEST_REQUESTS))
    assert [(d["offset"], d["error_type"]) for d in letters] == [(1, "SerdeError"), (2, "ValueError")]
    assert all(d["topic"] == INGEST_REQUESTS and d["stage"] == "streamscribe-splitter" for d in letters)
    assert letters[0]["value"] == b'{"not": "avro"}' and letters[0]["key"] == b"garbage"  # the original bytes
    assert "cannot split this one" in letters[1]["error"]
    assert [m.key for m in h.producer.on(dlq_name(INGEST_REQUESTS))] == [b"garbage", b"b"]  # keyed as the original

    # the failed record's output and state change are gone; the records around it went through
    assert [c["stream_id"] for c in h.read(AUDIO_CHUNKS)] == ["a", "c"]
    assert h.state is not None
    assert h.state.get(0, "a") == b"seen" and h.state.get(0, "c") == b"seen" and h.state.get(0, "b") is None
    assert sorted(m.key for m in h.producer.on("streamscribe-splitter.state")) == [b"a", b"c"]
    assert h.stage.forgotten == ["b"]

    # its job failed, naming the dead-letter topic; the others run
    jobs = [(e["job_id"], e["state"]) for e in h.read(JOBS_EVENTS)]
    assert jobs == [("job-a", "RUNNING"), ("job-b", "FAILED"), ("job-c", "RUNNING")]
    failed = next(e for e in h.read(JOBS_EVENTS) if e["state"] == "FAILED")
    assert failed["stage"] == "streamscribe-splitter" and dlq_name(INGEST_REQUESTS) in failed["error"]
    assert "ValueError: cannot split this one" in failed["error"]

    # the whole batch is committed, after its outputs and changelog
    assert h.consumer.committed_offsets == [{(INGEST_REQUESTS, 0): 4}]
    assert h.producer.journal[-1] == "commit"


def test_an_output_on_an_undeclared_topic_is_a_failure_of_its_record(tmp_path: Path) -> None:
    h = Harness(tmp_path, SPLITTER, Splitter())
    h.consumer.batches = [[h.request(0, "a", stray="yes"), h.request(1, "b")]]
    h.runner.step()
    letters = h.read(dlq_name(INGEST_REQUESTS))
    assert [d["error_type"] for d in letters] == ["UndeclaredOutput"] and AUDIO_SPEECH in letters[0]["error"]
    assert h.producer.on(AUDIO_SPEECH) == [] and [c["stream_id"] for c in h.read(AUDIO_CHUNKS)] == ["b"]


class Batcher(BaseStage):
    """Stateless, handles whole batches, and fails a batch holding a poisoned request; a request saying ``crash``
    kills the process (as a native library's crash would), one saying ``disconnect`` raises a transient error."""

    transient_errors: tuple[type[BaseException], ...] = (ConnectionError,)

    def __init__(self, kills: bool = True) -> None:
        self.batches: list[int] = []
        self.kills = kills  # False: a request saying ``crash`` raises (where a kill would take pytest with it)

    def handle(self, record: Record, ctx: Context) -> None:
        if record.value["options"].get("crash"):
            if not self.kills:
                raise RuntimeError("the stage was handed the record that kills it")
            os.kill(os.getpid(), signal.SIGKILL)
        if record.value["options"].get("disconnect"):
            raise ConnectionError("database gone")
        if record.value["options"].get("explode"):
            raise ValueError("poisoned")
        ctx.emit(AUDIO_CHUNKS, AudioChunk(stream_id=record.value["stream_id"], seq=0, start_sample=0,
                                          sample_rate=16000, channels=1, data=b""))

    def handle_batch(self, records: Sequence[Record], ctx: Context) -> bool:
        self.batches.append(len(records))
        for r in records:
            self.handle(r, ctx)
        return True


def test_a_failed_batch_is_retried_record_by_record(tmp_path: Path) -> None:
    spec = StageSpec(name="batcher", doc="test", inputs=(INGEST_REQUESTS,), outputs=(AUDIO_CHUNKS,),
                     build=lambda _settings: Batcher())
    h = Harness(tmp_path, spec, Batcher())
    h.consumer.batches = [[h.request(0, "a"), h.request(1, "b", explode="yes"), h.request(2, "c")]]
    h.runner.step()
    assert h.stage.batches == [3]
    assert [c["stream_id"] for c in h.read(AUDIO_CHUNKS)] == ["a", "c"]  # no duplicate of "a" from the batch try
    assert [d["offset"] for d in h.read(dlq_name(INGEST_REQUESTS))] == [1]
    assert h.consumer.committed_offsets == [{(INGEST_REQUESTS, 0): 3}]


BATCHER = StageSpec(name="batcher", doc="test", inputs=(INGEST_REQUESTS,), outputs=(AUDIO_CHUNKS,),
                    build=lambda _settings: Batcher())


def test_a_record_that_kills_the_worker_is_narrowed_down_and_dead_lettered_at_the_third_death(tmp_path: Path) -> None:
    """Each attempt is a new worker process (a fork) on the same hand file, as the supervisor's restarts are."""
    hand = tmp_path / "workers" / "batcher-w0.hand"
    hands: list[list[list[Any]]] = []

    def worker(kills: bool = True) -> Harness:
        h = Harness(tmp_path, BATCHER, Batcher(kills), poison=PoisonGuard.open(hand, 3, "batcher"))
        h.consumer.batches = [[h.request(0, "a"), h.request(1, "b", crash="yes"), h.request(2, "c")]]
        return h

    def dies(h: Harness) -> int:
        pid = os.fork()
        if pid == 0:
            try:
                h.runner.step()
            finally:
                os._exit(0)
        _, status = os.waitpid(pid, 0)
        hands.append(json.loads(hand.read_text())["records"])
        return os.waitstatus_to_exitcode(status)

    assert [dies(worker()) for _ in range(3)] == [-signal.SIGKILL] * 3
    # the whole batch was in hand at the first death; then one record at a time, so the deaths name "b" alone
    assert hands == [[[INGEST_REQUESTS, 0, o, 0, k] for o, k in enumerate("abc")], [[INGEST_REQUESTS, 0, 1, 1, "b"]],
                     [[INGEST_REQUESTS, 0, 1, 2, "b"]]]

    h = worker(kills=False)  # the fourth process does not hand "b" to the stage: dead-lettered, the rest goes on
    assert h.runner.poison.suspects[(INGEST_REQUESTS, 0, 1)] == 3
    h.runner.step()
    letters = h.read(dlq_name(INGEST_REQUESTS))
    assert [(d["offset"], d["error_type"]) for d in letters] == [(1, "PoisonEvent")]
    assert "died 3 times" in letters[0]["error"]
    assert [c["stream_id"] for c in h.read(AUDIO_CHUNKS)] == ["a", "c"]
    failed = [e for e in h.read(JOBS_EVENTS) if e["state"] == "FAILED"]
    assert [e["job_id"] for e in failed] == ["job-b"] and "PoisonEvent" in failed[0]["error"]
    assert h.consumer.committed_offsets == [{(INGEST_REQUESTS, 0): 3}]
    assert hand.read_text() == "" and h.runner.poison.suspects == {}


def test_a_condemned_record_is_not_noted_as_in_hand(tmp_path: Path) -> None:
    """What the fourth process writes: only the records it hands to the stage (a watcher killing the worker
    whenever "b" is in hand would otherwise kill it forever)."""
    hand = tmp_path / "b.hand"
    hand.write_text(json.dumps({"records": [[INGEST_REQUESTS, 0, 1, 2, "b"]]}))
    guard = PoisonGuard.open(hand, 3, "batcher")
    h = Harness(tmp_path, BATCHER, Batcher(kills=False))
    records = [Record(INGEST_REQUESTS, 0, o, k, {}, 0) for o, k in enumerate("abc")]
    guard.hold(records)
    assert json.loads(hand.read_text())["records"] == [[INGEST_REQUESTS, 0, 0, 0, "a"], [INGEST_REQUESTS, 0, 2, 0, "c"]]
    guard.release(records[:1])
    assert hand.read_text() == "" and set(guard.suspects) == {(INGEST_REQUESTS, 0, 1)}  # "b" was not handled
    assert h.runner.poison.path is None  # a runner given no guard notes nothing


def test_a_hand_file_cut_short_by_the_death_is_ignored(tmp_path: Path) -> None:
    hand = tmp_path / "cut.hand"
    hand.write_text('{"records": [["ingest.requests", 0, 1')
    assert PoisonGuard.open(hand, 3, "batcher").suspects == {}


def test_a_worker_that_stops_on_an_error_of_its_own_leaves_no_suspects(tmp_path: Path) -> None:
    hand = tmp_path / "workers" / "batcher-w0.hand"
    h = Harness(tmp_path, BATCHER, Batcher(), poison=PoisonGuard.open(hand, 3, "batcher"))
    h.consumer.batches = [[h.request(0, "a"), h.request(1, "b", disconnect="yes")]]
    try:
        h.runner.step()
        raise AssertionError("a transient error stops the worker")
    except ConnectionError:
        pass
    assert hand.read_text() == ""  # a database outage is no death: its records are not counted against them
    assert PoisonGuard.open(hand, 3, "batcher").suspects == {}


class Idle(BaseStage):
    def handle(self, record: Record, ctx: Context) -> None:
        pass


LANED = StageSpec(name="asr", doc="test", inputs=SPEECH_LANES, outputs=(), lanes=SPEECH_LANES,
                  build=lambda _settings: Idle(), batch=32)


def test_lane_decisions_pause_and_resume_the_consumer(tmp_path: Path) -> None:
    h = Harness(tmp_path, LANED, Idle())
    for t in SPEECH_LANES:
        for p in (0, 1):
            h.consumer.high[(t, p)] = h.consumer.pos[(t, p)] = 10
    h.consumer.high[(AUDIO_SPEECH_HIGH, 0)] = 12  # urgent events wait
    h.runner.step()
    assert {t for t, _ in h.consumer.paused} == {AUDIO_SPEECH, AUDIO_SPEECH_LOW} and len(h.consumer.paused) == 4
    assert h.runner.batch_limit == 32
    h.consumer.pos[(AUDIO_SPEECH_HIGH, 0)] = 12  # handled; normal work waits too: it resumes, in small batches
    h.consumer.high[(AUDIO_SPEECH, 1)] = 20  # (the urgent lane was busy a moment ago)
    h.runner.step()
    assert h.consumer.paused == {(AUDIO_SPEECH_LOW, 0), (AUDIO_SPEECH_LOW, 1)} and h.runner.batch_limit == 1


def test_a_revoked_partition_is_forgotten(tmp_path: Path) -> None:
    h = Harness(tmp_path, LANED, Idle())
    h.consumer.high[(AUDIO_SPEECH_HIGH, 0)], h.consumer.pos[(AUDIO_SPEECH_HIGH, 0)] = 5, 0
    h.runner.step()
    assert (AUDIO_SPEECH, 0) in h.runner.lanes.paused
    h.consumer.rebalance(revoke=[TopicPartition(AUDIO_SPEECH, 0)])
    assert (AUDIO_SPEECH, 0) not in h.runner.lanes.paused and (AUDIO_SPEECH, 0) not in h.runner.partitions


def test_exactly_once_an_aborted_batch_is_rewound_and_handled_again(tmp_path: Path) -> None:
    h = Harness(tmp_path, SPLITTER, Splitter(), exactly_once=True)
    batch = [h.request(7, "a"), h.request(8, "b")]
    h.consumer.batches = [list(batch)]
    assert isinstance(h.producer, FakeTransactionalProducer)
    h.producer.fail = {"commit_transaction": KafkaError(KafkaError._STATE, "needs abort", txn_requires_abort=True)}
    h.producer.times = 1
    assert h.runner.step() == 2  # the worker goes on: no exception
    assert h.consumer.seeks == [(INGEST_REQUESTS, 0, 7)]  # rewound to the batch's first offset
    assert h.producer.on(AUDIO_CHUNKS) == [] and h.producer.offsets == []  # nothing visible, nothing committed
    assert h.state is not None and h.state.get(0, "a") is None
    assert h.stage.forgotten == ["a", "b"]  # what the stage kept in memory about them is dropped

    h.consumer.batches = [list(batch)]  # consumed again from the rewound position
    h.runner.step()
    assert [c["stream_id"] for c in h.read(AUDIO_CHUNKS)] == ["a", "b"]
    assert h.producer.offsets[-1][0] == {(INGEST_REQUESTS, 0): 9} and h.consumer.committed_offsets == []
    assert h.state.get(0, "a") == b"seen"


class Clusterer(Splitter):
    """A stage whose step builds large temporary arrays and asks for the freed memory to be given back."""

    def handle(self, record: Record, ctx: Context) -> None:
        super().handle(record, ctx)
        ctx.release_memory_after_commit()


def test_memory_asked_back_by_a_stage_is_released_after_the_batch_is_committed(tmp_path: Path) -> None:
    h = Harness(tmp_path, SPLITTER, Clusterer())
    seen: list[tuple[list[str], list[dict[tuple[str, int], int]]]] = []  # at each release: produced, committed
    h.runner.memory._release = lambda: seen.append(
        ([c["stream_id"] for c in h.read(AUDIO_CHUNKS)], list(h.consumer.committed_offsets)))
    h.consumer.batches = [[h.request(0, "a"), h.request(1, "b")]]
    assert h.runner.step() == 2
    # one release, once the batch's outputs and offsets were out
    assert seen == [(["a", "b"], [{(INGEST_REQUESTS, 0): 2}])]

    h.runner.stage = Splitter()  # a stage that asks for nothing: no release after its batch
    h.consumer.batches = [[h.request(2, "c")]]
    assert h.runner.step() == 1
    assert len(seen) == 1
