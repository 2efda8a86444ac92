"""Priority lanes: which lane a stream takes, and how a runner pauses and resumes lanes."""

from __future__ import annotations

from typing import Any

from confluent_kafka import TopicPartition

from foundation.settings import Settings
from streams.kafka.lanes import priority_of, speech_lane
from streams.kafka.topics import AUDIO_SPEECH, AUDIO_SPEECH_HIGH, AUDIO_SPEECH_LOW, SPEECH_LANES
from streams.runtime.runner import StageRunner


def test_lane_of_a_stream() -> None:
    assert speech_lane({}, "upload") == AUDIO_SPEECH
    assert speech_lane({}, "producer") == AUDIO_SPEECH
    assert speech_lane({}, "live") == AUDIO_SPEECH_HIGH
    assert speech_lane({}, "telephony") == AUDIO_SPEECH_HIGH
    assert speech_lane({"priority": "high"}, "upload") == AUDIO_SPEECH_HIGH
    assert speech_lane({"priority": "low"}, "upload") == AUDIO_SPEECH_LOW
    assert speech_lane({"priority": "low"}, "live") == AUDIO_SPEECH_LOW  # a stream may ask to yield
    assert priority_of({"priority": "urgent!"}, "upload") == "normal"  # not a priority: the default


class FakeConsumer:
    """Watermarks and positions per partition; records pause and resume calls."""

    def __init__(self) -> None:
        self.high: dict[tuple[str, int], int] = {}
        self.pos: dict[tuple[str, int], int] = {}
        self.paused: set[tuple[str, int]] = set()

    def get_watermark_offsets(self, tp: TopicPartition, cached: bool = False) -> tuple[int, int]:
        assert cached, "the runner must not ask the broker on every batch"
        return 0, self.high.get((tp.topic, tp.partition), -1001)

    def position(self, tps: list[TopicPartition]) -> list[TopicPartition]:
        return [TopicPartition(tp.topic, tp.partition, self.pos.get((tp.topic, tp.partition), -1001)) for tp in tps]

    def pause(self, tps: list[TopicPartition]) -> None:
        self.paused |= {(tp.topic, tp.partition) for tp in tps}

    def resume(self, tps: list[TopicPartition]) -> None:
        self.paused -= {(tp.topic, tp.partition) for tp in tps}


def _runner(consumer: FakeConsumer) -> Any:
    runner: Any = StageRunner.__new__(StageRunner)
    runner.consumer = consumer
    runner.lanes = list(SPEECH_LANES)
    runner.partitions = {(t, p) for t in SPEECH_LANES for p in (0, 1)}
    runner.paused = set()
    runner.prefix = ""
    runner.stage = type("S", (), {"name": "streamscribe-asr"})()
    runner.settings = Settings()
    runner.lane_seen = [float("-inf")] * len(SPEECH_LANES)
    runner.max_batch = runner.batch_limit = 32
    runner.lane_start = {}
    return runner


def test_lower_lanes_pause_while_a_higher_one_has_a_backlog() -> None:
    consumer = FakeConsumer()
    runner = _runner(consumer)
    for t in SPEECH_LANES:
        for p in (0, 1):
            consumer.high[(t, p)] = consumer.pos[(t, p)] = 10  # all caught up
    runner.prioritize()
    assert consumer.paused == set()

    consumer.high[(AUDIO_SPEECH, 1)] = 50  # normal work waits: low pauses
    runner.prioritize()
    assert consumer.paused == {(AUDIO_SPEECH_LOW, 0), (AUDIO_SPEECH_LOW, 1)}

    consumer.high[(AUDIO_SPEECH_HIGH, 0)] = 12  # a live call: normal and low pause
    runner.prioritize()
    assert {t for t, _ in consumer.paused} == {AUDIO_SPEECH, AUDIO_SPEECH_LOW} and len(consumer.paused) == 4

    consumer.pos[(AUDIO_SPEECH_HIGH, 0)] = 12  # the call's events are handled: normal resumes, low waits
    runner.prioritize()
    assert consumer.paused == {(AUDIO_SPEECH_LOW, 0), (AUDIO_SPEECH_LOW, 1)}

    consumer.pos[(AUDIO_SPEECH, 1)] = 50
    runner.prioritize()
    assert consumer.paused == set()


def test_unknown_positions_do_not_pause_anything() -> None:
    consumer = FakeConsumer()  # nothing fetched yet: no watermark, no position
    runner = _runner(consumer)
    runner.prioritize()
    assert consumer.paused == set()


def test_a_revoked_partition_is_forgotten() -> None:
    consumer = FakeConsumer()
    runner = _runner(consumer)
    consumer.high[(AUDIO_SPEECH_HIGH, 0)], consumer.pos[(AUDIO_SPEECH_HIGH, 0)] = 5, 0
    runner.prioritize()
    assert (AUDIO_SPEECH, 0) in runner.paused
    runner.state = None
    runner._on_revoke(consumer, [TopicPartition(AUDIO_SPEECH, 0)])
    assert (AUDIO_SPEECH, 0) not in runner.paused and (AUDIO_SPEECH, 0) not in runner.partitions


def test_batches_are_small_while_lower_lanes_run_after_urgent_work() -> None:
    consumer = FakeConsumer()
    runner = _runner(consumer)
    runner.max_batch = runner.batch_limit = 32
    for t in SPEECH_LANES:
        for p in (0, 1):
            consumer.high[(t, p)] = consumer.pos[(t, p)] = 10
    consumer.high[(AUDIO_SPEECH, 0)] = 40  # a batch backlog, nothing urgent lately: one recogniser batch
    runner.prioritize()  # (8 windows) at a time, so a call that starts now waits for no more than that
    assert runner.batch_limit == 8

    consumer.high[(AUDIO_SPEECH_HIGH, 1)] = 11  # an urgent event: normal pauses, the urgent lane gets it all
    runner.prioritize()
    assert runner.batch_limit == 32 and (AUDIO_SPEECH, 0) in consumer.paused

    consumer.pos[(AUDIO_SPEECH_HIGH, 1)] = 11  # handled; the backlog runs again, one window at a time (asr)
    runner.prioritize()
    assert runner.batch_limit == 1 and {t for t, _ in consumer.paused} == {AUDIO_SPEECH_LOW}

    consumer.pos[(AUDIO_SPEECH, 0)] = 40  # nothing waits anywhere: whatever comes, in recogniser batches
    runner.prioritize()
    assert runner.batch_limit == 8
    consumer.pos[(AUDIO_SPEECH, 0)] = 10

    runner.lane_seen[0] -= 60  # the urgent lane has been quiet for a minute: recogniser batches again
    runner.prioritize()
    assert runner.batch_limit == 8


def test_a_backlog_shows_before_the_first_event_is_consumed() -> None:
    consumer = FakeConsumer()
    runner = _runner(consumer)
    consumer.high[(AUDIO_SPEECH_HIGH, 0)] = 7  # fetched, never consumed: no position yet
    runner.lane_start[(AUDIO_SPEECH_HIGH, 0)] = 7  # ... and the group had committed up to the end
    runner.prioritize()
    assert consumer.paused == set()
    consumer.high[(AUDIO_SPEECH_HIGH, 0)] = 9  # two new urgent events: the lower lanes wait for them
    runner.prioritize()
    assert {t for t, _ in consumer.paused} == {AUDIO_SPEECH, AUDIO_SPEECH_LOW}
