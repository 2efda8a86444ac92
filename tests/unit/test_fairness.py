"""The fairness pool (streams.runtime.fairness) alone, and the stage runner taking its batches from it: streams
served in turn within the highest lane, a stream's order kept, and offsets never committed past a record held
back."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from confluent_kafka import KafkaError, TopicPartition

from foundation.events import SpeechSegment
from streams.kafka.topics import AUDIO_SPEECH, AUDIO_SPEECH_HIGH, AUDIO_SPEECH_LOW, SPEECH_LANES
from streams.runtime.fairness import MAX_AHEAD, FairPool, decode_ahead, encode_ahead
from streams.runtime.stage import BaseStage, Context, Record, StageSpec
from tests.unit.fake_clock import FakeClock
from tests.unit.kafka_fakes import FakeMessage, FakeTransactionalProducer
from tests.unit.test_runner import Harness


def msg(stream: str, offset: int, partition: int = 0, topic: str = AUDIO_SPEECH, size: int = 10) -> FakeMessage:
    return FakeMessage(topic, partition, offset, stream.encode(), b"x" * size)


def names(messages: Sequence[object]) -> list[str]:
    return [f"{m.key().decode()}{m.offset()}" for m in messages]  # type: ignore[attr-defined]


def test_a_short_stream_behind_a_long_one_is_served_in_the_next_batch() -> None:
    clock = FakeClock()
    pool = FairPool(SPEECH_LANES, 10_000, settle_s=5, clock=clock)
    pool.add([msg("L", i) for i in range(30)])  # a long recording's windows, all ahead in the log
    pool.add([msg("S", 30), msg("S", 31), msg("T", 32), msg("U", 0, partition=1)])
    # streams arriving together fill the batch, one record per stream in turn
    assert names(pool.take(8)) == ["L0", "S30", "T32", "U0", "L1", "S31", "L2", "L3"]
    assert names(pool.take(3)) == ["L4", "L5", "L6"]  # the short ones are done; the long one goes on alone
    clock.now += 10  # the long one has run for a while: settled
    assert names(pool.take(3)) == ["L7", "L8", "L9"]
    pool.add([msg("V", 33), msg("V", 34)])
    # a newcomer beside a settled stream goes first and alone: it would wait for the long one's records
    # batched with it
    assert names(pool.take(8)) == ["V33"]
    assert names(pool.take(8)) == ["L10"]  # in turn, one at a time while the newcomer is fresh
    assert names(pool.take(8)) == ["V34"]
    clock.now += 1
    assert names(pool.take(8)) == ["L11"]  # the newcomer is done, but another may follow it: still one at a time
    clock.now += 5
    assert names(pool.take(4)) == ["L12", "L13", "L14", "L15"]  # arrivals stopped: full batches again


def test_short_jobs_one_after_another_beside_a_long_one_wait_for_one_window_each() -> None:
    clock = FakeClock()
    pool = FairPool(SPEECH_LANES, 10_000, settle_s=5, clock=clock)
    pool.add([msg("L", i) for i in range(40)])
    assert len(pool.take(8)) == 8
    clock.now += 10
    for n, short in enumerate("ABCD"):  # each submitted when the one before it completed
        assert len(pool.take(8)) == (8 if n == 0 else 1)  # the batch in progress when it arrives
        pool.add([msg(short, 100 + n)])
        assert names(pool.take(8)) == [f"{short}{100 + n}"]
        clock.now += 1.5
    clock.now += 5
    assert len(pool.take(8)) == 8


def test_a_new_call_beside_running_calls_is_batched_with_them() -> None:
    clock = FakeClock()
    pool = FairPool(SPEECH_LANES, 10_000, settle_s=5, clock=clock)
    pool.add([msg(f"call{n}", n, topic=AUDIO_SPEECH_HIGH) for n in range(6)])
    assert len(pool.take(8)) == 6
    clock.now += 10
    pool.add([msg(f"call{n}", 10 + n, topic=AUDIO_SPEECH_HIGH) for n in range(7)])  # call6 is new
    assert len(pool.take(8)) == 7


def test_a_call_turn_in_the_top_lane_takes_all_it_holds() -> None:
    """Live sessions' partials and the final behind them are taken together, not one per batch: with one record per
    turn, a final behind three partials would wait for four batches."""
    pool = FairPool(SPEECH_LANES, 10_000)
    pool.add([msg(f"call{c}", 10 * c + i, topic=AUDIO_SPEECH_HIGH) for i in range(4) for c in range(3)])
    pool.add([msg("batch", 100 + i) for i in range(3)])  # a lower lane waits for the calls
    assert names(pool.take(8)) == ["call00", "call01", "call02", "call03", "call110", "call111", "call112",
                                   "call113"]
    assert names(pool.take(8)) == ["call220", "call221", "call222", "call223"]  # the rest of the lane
    assert names(pool.take(8)) == ["batch100", "batch101", "batch102"]


def test_a_streams_end_goes_with_its_last_window_beyond_the_limit() -> None:
    """An END costs the recogniser nothing: a short job beside a long one completes with its last window, instead of
    its END waiting for the next batch of the long one's windows."""
    clock = FakeClock()
    pool = FairPool(SPEECH_LANES, 100_000, settle_s=5, free_bytes=100, clock=clock)
    pool.add([msg("L", i, size=1000) for i in range(12)])
    assert len(pool.take(8)) == 8
    clock.now += 10
    pool.add([msg("S", 20, size=1000), msg("S", 21, size=50)])  # a short job's one window and its END
    assert names(pool.take(8)) == ["S20", "S21"]  # a batch of one window (S is fresh beside L), and the END
    clock.now += 10  # S has left: full batches again
    assert names(pool.take(8)) == ["L8", "L9", "L10", "L11"]
    # an END alone costs no turn of the limit either
    pool.add([msg("E", 30, size=50), msg("M", 31, size=1000), msg("N", 32, size=1000)])
    clock.now += 10
    assert names(pool.take(2)) == ["E30", "M31", "N32"]


def test_newcomers_arriving_together_fill_the_batch() -> None:
    pool = FairPool(SPEECH_LANES, 10_000)
    pool.add([msg(s, i) for i, s in enumerate("ABCDEFGHIJ")])  # none served yet: no round to cut short
    assert len(pool.take(8)) == 8
    pool.add([msg(s, 20 + i) for i, s in enumerate("KLMNOPQRST")])  # beside streams served moments ago
    assert len(pool.take(8)) == 8


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


def test_exactly_once_the_offsets_handled_past_the_commit_travel_in_its_metadata() -> None:
    """Fair within a partition under exactly-once too: what was handled past the committed offset is named in
    its metadata, and a pool given that partition skips exactly those records."""
    p0 = (AUDIO_SPEECH, 0)
    pool = FairPool(SPEECH_LANES, 10_000, exactly_once=True)
    pool.add([msg("L", i) for i in range(10, 16)] + [msg("S", 16), msg("S", 17), msg("T", 19)])  # 18: a marker
    assert names(pool.take(5)) == ["L10", "S16", "T19", "L11", "S17"]
    offsets = pool.commit_offsets([p0])
    assert offsets == {p0: 12} and pool.commit_metadata(offsets) == {p0: "ahead1:4-5,7"}
    pool.committed(offsets)

    after = FairPool(SPEECH_LANES, 10_000, exactly_once=True)  # the partition's next owner, from the commit
    after.restore(p0, 12, "ahead1:4-5,7")
    after.add([msg("L", i) for i in range(12, 16)] + [msg("S", 16), msg("S", 17), msg("T", 19), msg("U", 20)])
    assert names(after.take(10)) == ["L12", "U20", "L13", "L14", "L15"]
    offsets = after.commit_offsets([p0])
    assert offsets == {p0: 21} and after.commit_metadata(offsets) == {p0: ""}


def test_exactly_once_an_abort_goes_back_to_the_last_commit_and_its_skips() -> None:
    p0 = (AUDIO_SPEECH, 0)
    pool = FairPool(SPEECH_LANES, 10_000, exactly_once=True)
    pool.restore(p0, 5, "ahead1:2")  # offset 7 was handled before
    pool.add([msg("L", 5), msg("L", 6), msg("S", 7), msg("T", 8)])
    assert names(pool.take(2)) == ["L5", "T8"]
    assert pool.rewind_points({p0: 5}) == {p0: 5}
    assert pool.rewind([p0]) == {p0: 5} and len(pool) == 0 and pool.bytes == 0
    pool.add([msg("L", 5), msg("L", 6), msg("S", 7), msg("T", 8)])  # consumed again from the commit
    assert names(pool.take(4)) == ["L5", "T8", "L6"]  # 7 still skipped; 8 handled again (its batch aborted)


def test_exactly_once_a_partition_with_too_many_handled_ahead_is_served_in_order() -> None:
    p0 = (AUDIO_SPEECH, 0)
    pool = FairPool(SPEECH_LANES, 10_000, exactly_once=True)
    pool.add([msg("L", i) for i in range(3)] + [msg(f"s{i}", 3 + i) for i in range(MAX_AHEAD + 5)])
    taken = names(pool.take(MAX_AHEAD + 3))
    # L0 is the head; then one record of each short stream until MAX_AHEAD of them are past the first held
    # (L1); from then on only the head of the partition may go
    assert taken[:2] == ["L0", "s03"] and taken[-2:] == ["L1", "L2"]
    assert len([t for t in taken if t.startswith("s")]) == MAX_AHEAD
    offsets = pool.commit_offsets([p0])
    assert offsets == {p0: 3 + MAX_AHEAD} and pool.commit_metadata(offsets) == {p0: ""}
    worst = encode_ahead(0, range(0, 2_000_000, 10_000))  # MAX_AHEAD single offsets far apart
    assert len(worst) < 4096 - 96  # the broker's default offset.metadata.max.bytes


def test_ahead_metadata_round_trips_and_ignores_other_metadata() -> None:
    assert encode_ahead(100, [103, 101, 102, 110, 200]) == "ahead1:1-3,10,100"
    assert decode_ahead(100, "ahead1:1-3,10,100") == [101, 102, 103, 110, 200]
    assert decode_ahead(100, "") == [] and decode_ahead(100, "written by another tool") == []
    assert encode_ahead(7, []) == ""


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


def test_exactly_once_an_aborted_batch_goes_back_to_the_last_commit(tmp_path: Path) -> None:
    h = Harness(tmp_path, FAIR, Recorder(), exactly_once=True)
    h.consumer.batches = [[window(h, "a", 3), window(h, "b", 4), window(h, "a", 5), window(h, "a", 6),
                           window(h, "a", 7), window(h, "c", 0, partition=1)]]
    assert isinstance(h.producer, FakeTransactionalProducer)
    h.producer.fail = {"commit_transaction": KafkaError(KafkaError._STATE, "needs abort", txn_requires_abort=True)}
    h.producer.times = 1
    h.runner.step()
    assert h.stage.batches == [["a", "b", "c", "a"]]  # fair within partition 0 too
    assert sorted(h.consumer.seeks) == [(AUDIO_SPEECH, 0, 3), (AUDIO_SPEECH, 1, 0)]
    assert h.runner.pool is not None and len(h.runner.pool) == 0  # 6 and 7 are consumed again after the rewind
    assert h.producer.offsets == []
    h.consumer.rebalance(revoke=[TopicPartition(AUDIO_SPEECH, 0)])


def test_exactly_once_the_runner_skips_what_the_commit_says_was_handled_and_commits_what_it_handled_ahead(
        tmp_path: Path) -> None:
    h = Harness(tmp_path, FAIR, Recorder(), exactly_once=True)
    assert isinstance(h.producer, FakeTransactionalProducer)
    p0 = TopicPartition(AUDIO_SPEECH, 0)
    h.consumer.committed_at = {(AUDIO_SPEECH, 0): (10, "ahead1:2")}  # offset 12 was handled by the last owner
    h.consumer.rebalance(revoke=[p0], assign=[p0])
    h.consumer.batches = [[window(h, "L", 10), window(h, "L", 11), window(h, "S", 12), window(h, "T", 13)]]
    h.runner.step()
    assert h.stage.batches == [["L", "T", "L"]]  # S's window 12 is not handled twice
    assert h.producer.offsets[-1][0] == {(AUDIO_SPEECH, 0): 14} and h.producer.offset_metadata[-1] == {
        (AUDIO_SPEECH, 0): None}
    h.consumer.batches = [[window(h, "M", i) for i in range(20, 26)] + [window(h, "N", 26)]]
    h.runner.step()
    assert h.stage.batches[-1] == ["M", "N", "M", "M"]
    # 23-25 are held back, 26 was handled past them: the commit says so, in the same transaction as the outputs
    assert h.producer.offsets[-1][0] == {(AUDIO_SPEECH, 0): 23} and h.producer.offset_metadata[-1] == {
        (AUDIO_SPEECH, 0): "ahead1:3"}
