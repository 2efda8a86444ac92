"""The fairness pool (streams.runtime.fairness) alone, and the stage runner taking its batches from it: streams
served in turn within the highest lane, a stream's order kept, and offsets never committed past a record held
back."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from confluent_kafka import KafkaError, TopicPartition

from foundation.events import SpeechSegment
from streams.kafka.topics import AUDIO_SPEECH, AUDIO_SPEECH_HIGH, AUDIO_SPEECH_LOW, SPEECH_LANES
from streams.runtime.fairness import FairPool
from streams.runtime.stage import BaseStage, Context, Record, StageSpec
from tests.unit.kafka_fakes import FakeMessage, FakeTransactionalProducer
from tests.unit.test_runner import Harness


def msg(stream: str, offset: int, partition: int = 0, topic: str = AUDIO_SPEECH, size: int = 10) -> FakeMessage:
    return FakeMessage(topic, partition, offset, stream.encode(), b"x" * size)


def names(messages: Sequence[object]) -> list[str]:
    return [f"{m.key().decode()}{m.offset()}" for m in messages]  # type: ignore[attr-defined]


def test_a_short_stream_behind_a_long_one_is_served_in_the_next_batch() -> None:
    pool = FairPool(SPEECH_LANES, 10_000)
    pool.add([msg("L", i) for i in range(20)])  # a long recording's windows, all ahead in the log
    pool.add([msg("S", 20), msg("S", 21), msg("T", 22), msg("U", 0, partition=1)])
    assert names(pool.take(8)) == ["L0", "S20", "T22", "U0", "L1", "S21", "L2", "L3"]
    assert names(pool.take(3)) == ["L4", "L5", "L6"]  # the short ones are done; the long one goes on alone
    pool.add([msg("V", 23)])
    assert names(pool.take(3)) == ["V23", "L7", "L8"]  # a newcomer goes first: the long one was just served


def test_a_streams_own_records_keep_their_order() -> None:
    pool = FairPool(SPEECH_LANES, 10_000)
    pool.add([msg("a", 0), msg("b", 1), msg("a", 2), msg("b", 3), msg("a", 4)])
    taken = [*pool.take(2), *pool.take(2), *pool.take(2)]
    assert [m.offset() for m in taken if m.key() == b"a"] == [0, 2, 4]
    assert [m.offset() for m in taken if m.key() == b"b"] == [1, 3]
    assert len(pool) == 0 and pool.bytes == 0


def test_offsets_are_never_committed_past_a_record_held_back() -> None:
    pool = FairPool(SPEECH_LANES, 10_000)
    pool.add([msg("L", i) for i in range(6)] + [msg("S", 6), msg("W", 0, partition=1), msg("W", 1, partition=1)])
    pool.take(3)  # L0, S6, W0: offset 1 (L1) is the first still held on partition 0
    assert pool.commit_offsets([(AUDIO_SPEECH, 0), (AUDIO_SPEECH, 1)]) == {(AUDIO_SPEECH, 0): 1,
                                                                          (AUDIO_SPEECH, 1): 1}
    pool.take(10)
    assert pool.commit_offsets([(AUDIO_SPEECH, 0), (AUDIO_SPEECH, 1)]) == {(AUDIO_SPEECH, 0): 7,
                                                                          (AUDIO_SPEECH, 1): 2}
    assert pool.held_partitions() == set()


def test_the_highest_lane_held_is_taken_alone() -> None:
    pool = FairPool(SPEECH_LANES, 10_000)
    pool.add([msg("batch", i) for i in range(4)] + [msg("bulk", 0, topic=AUDIO_SPEECH_LOW)])
    pool.add([msg("call", 0, topic=AUDIO_SPEECH_HIGH), msg("call", 1, topic=AUDIO_SPEECH_HIGH)])
    assert names(pool.take(8)) == ["call0", "call1"]  # urgent work is never batched with lower lanes
    assert names(pool.take(8)) == ["batch0", "batch1", "batch2", "batch3"]
    assert names(pool.take(8)) == ["bulk0"]


def test_by_partition_takes_a_prefix_of_each_partition() -> None:
    """Exactly-once: what is handled of a partition is always a prefix, so its committed offset is exact."""
    pool = FairPool(SPEECH_LANES, 10_000, by_partition=True)
    pool.add([msg("L", 0), msg("L", 1), msg("S", 2), msg("M", 0, partition=1)])
    assert names(pool.take(3)) == ["L0", "M0", "L1"]
    assert pool.commit_offsets([(AUDIO_SPEECH, 0), (AUDIO_SPEECH, 1)]) == {(AUDIO_SPEECH, 0): 2,
                                                                          (AUDIO_SPEECH, 1): 1}


def test_capacity_and_drop() -> None:
    pool = FairPool(SPEECH_LANES, 25)
    pool.add([msg("a", 0), msg("a", 1)])
    assert pool.has_room()
    pool.add([msg("b", 0, partition=1)])
    assert not pool.has_room() and pool.bytes == 30
    pool.drop([(AUDIO_SPEECH, 0)])  # revoked: the new owner reads them again from the committed offset
    assert len(pool) == 1 and pool.bytes == 10 and pool.held_partitions() == {(AUDIO_SPEECH, 1)}
    assert pool.commit_offsets([(AUDIO_SPEECH, 0)]) == {}


class Recorder(BaseStage):
    """Stateless; notes the streams of each batch it is handed."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    def handle(self, record: Record, ctx: Context) -> None:
        self.batches.append([record.value["stream_id"]])

    def handle_batch(self, records: Sequence[Record], ctx: Context) -> bool:
        self.batches.append([r.value["stream_id"] for r in records])
        return True


FAIR = StageSpec(name="asr", doc="test", inputs=SPEECH_LANES, outputs=(), lanes=SPEECH_LANES,
                 build=lambda _settings: Recorder(), batch=4, lookahead=1 << 20)


def window(h: Harness, stream: str, offset: int, partition: int = 0) -> FakeMessage:
    seg = SpeechSegment(stream_id=stream, kind="FINAL", segment_id=f"{stream}-{offset}", index=offset, start=0,
                        end=1, audio=b"\x00\x00")
    return FakeMessage(AUDIO_SPEECH, partition, offset, stream.encode(), h.serde.serialize(AUDIO_SPEECH, seg))


def test_the_runner_serves_streams_in_turn_and_commits_only_below_what_it_holds(tmp_path: Path) -> None:
    h = Harness(tmp_path, FAIR, Recorder())
    h.settings.lanes.lower_batch["asr"] = 4
    h.consumer.batches = [[window(h, "long", i) for i in range(10)],
                          [window(h, "short", 10), window(h, "short", 11), window(h, "other", 0, partition=1)]]
    h.runner.step()
    assert h.stage.batches == [["long", "short", "other", "long"]]
    # partition 0: offsets 2-9 and 11 are held back, and offset 10 was handled past them: 2 is committed
    assert h.consumer.committed_offsets[-1] == {(AUDIO_SPEECH, 0): 2, (AUDIO_SPEECH, 1): 1}
    h.runner.step()
    assert h.stage.batches[-1] == ["short", "long", "long", "long"]
    assert h.consumer.committed_offsets[-1] == {(AUDIO_SPEECH, 0): 5}
    while len(h.runner.pool or ()):
        h.runner.step()
    assert h.consumer.committed_offsets[-1] == {(AUDIO_SPEECH, 0): 12}


def test_exactly_once_an_aborted_batch_drops_what_the_pool_held_of_its_partitions(tmp_path: Path) -> None:
    h = Harness(tmp_path, FAIR, Recorder(), exactly_once=True)
    h.consumer.batches = [[window(h, "a", 3), window(h, "b", 4), window(h, "a", 5), window(h, "a", 6),
                           window(h, "a", 7), window(h, "c", 0, partition=1)]]
    assert isinstance(h.producer, FakeTransactionalProducer)
    h.producer.fail = {"commit_transaction": KafkaError(KafkaError._STATE, "needs abort", txn_requires_abort=True)}
    h.producer.times = 1
    h.runner.step()
    # fair by partition under exactly-once: a prefix of partition 0 (3, 4, 5) with partition 1 in turn
    assert h.stage.batches == [["a", "c", "b", "a"]]
    assert sorted(h.consumer.seeks) == [(AUDIO_SPEECH, 0, 3), (AUDIO_SPEECH, 1, 0)]
    assert h.runner.pool is not None and len(h.runner.pool) == 0  # 6 and 7 are consumed again after the rewind
    h.consumer.rebalance(revoke=[TopicPartition(AUDIO_SPEECH, 0)])
