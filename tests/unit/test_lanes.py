"""Priority lanes: which lane a stream takes, and which lanes the lane priority pauses and resumes."""

from __future__ import annotations

from confluent_kafka import TopicPartition

from foundation.settings import Settings
from streams.kafka.lanes import priority_of, speech_lane
from streams.kafka.topics import AUDIO_SPEECH, AUDIO_SPEECH_HIGH, AUDIO_SPEECH_LOW, SPEECH_LANES
from streams.runtime.priority import Backlogs, LaneDecision, LanePriority
from tests.unit.fake_clock import FakeClock
from tests.unit.kafka_fakes import FakeConsumer

ASSIGNED = {(t, p) for t in SPEECH_LANES for p in (0, 1)}


def test_lane_of_a_stream() -> None:
    assert speech_lane({}, "upload") == AUDIO_SPEECH
    assert speech_lane({}, "producer") == AUDIO_SPEECH
    assert speech_lane({}, "live") == AUDIO_SPEECH_HIGH
    assert speech_lane({}, "telephony") == AUDIO_SPEECH_HIGH
    assert speech_lane({"priority": "high"}, "upload") == AUDIO_SPEECH_HIGH
    assert speech_lane({"priority": "low"}, "upload") == AUDIO_SPEECH_LOW
    assert speech_lane({"priority": "low"}, "live") == AUDIO_SPEECH_LOW  # a stream may ask to yield
    assert priority_of({"priority": "urgent!"}, "upload") == "normal"  # not a priority: the default


class Lanes:
    """The asr stage's lane priority (32 events per batch, default lane settings) fed by backlog facts read
    from a fake consumer's watermarks and positions."""

    def __init__(self) -> None:
        self.consumer = FakeConsumer()
        self.clock = FakeClock()
        lanes = Settings().lanes
        self.priority = LanePriority(SPEECH_LANES, 32, yield_batch=lanes.yield_batch_of("asr"),
                                     lower_batch=lanes.lower_batch_of("asr", 32), busy_s=lanes.busy_s,
                                     clock=self.clock)
        self.backlogs = Backlogs(self.consumer)

    def decide(self) -> LaneDecision:
        decision = self.priority.decide(ASSIGNED, self.backlogs.waiting(ASSIGNED))
        assert all(self.consumer.watermark_calls), "the backlog must not ask the broker on every batch"
        return decision

    def caught_up(self) -> None:
        for t in SPEECH_LANES:
            for p in (0, 1):
                self.consumer.high[(t, p)] = self.consumer.pos[(t, p)] = 10


def test_lower_lanes_pause_while_a_higher_one_has_a_backlog() -> None:
    lanes = Lanes()
    lanes.caught_up()
    assert lanes.decide() == LaneDecision((), (), 8, None)
    assert lanes.priority.paused == set()

    lanes.consumer.high[(AUDIO_SPEECH, 1)] = 50  # normal work waits: low pauses
    decision = lanes.decide()
    assert set(decision.pause) == {(AUDIO_SPEECH_LOW, 0), (AUDIO_SPEECH_LOW, 1)} and decision.busy == AUDIO_SPEECH
    assert lanes.priority.paused == {(AUDIO_SPEECH_LOW, 0), (AUDIO_SPEECH_LOW, 1)}

    lanes.consumer.high[(AUDIO_SPEECH_HIGH, 0)] = 12  # a live call: normal and low pause
    decision = lanes.decide()
    assert set(decision.pause) == {(AUDIO_SPEECH, 0), (AUDIO_SPEECH, 1)}  # low is paused already
    assert {t for t, _ in lanes.priority.paused} == {AUDIO_SPEECH, AUDIO_SPEECH_LOW}
    assert len(lanes.priority.paused) == 4

    lanes.consumer.pos[(AUDIO_SPEECH_HIGH, 0)] = 12  # the call's events are handled: normal resumes, low waits
    decision = lanes.decide()
    assert set(decision.resume) == {(AUDIO_SPEECH, 0), (AUDIO_SPEECH, 1)} and decision.pause == ()
    assert lanes.priority.paused == {(AUDIO_SPEECH_LOW, 0), (AUDIO_SPEECH_LOW, 1)}

    lanes.consumer.pos[(AUDIO_SPEECH, 1)] = 50
    decision = lanes.decide()
    assert set(decision.resume) == {(AUDIO_SPEECH_LOW, 0), (AUDIO_SPEECH_LOW, 1)}
    assert lanes.priority.paused == set()


def test_unknown_positions_do_not_pause_anything() -> None:
    lanes = Lanes()  # nothing fetched yet: no watermark, no position
    decision = lanes.decide()
    assert decision.pause == () and decision.busy is None
    assert lanes.priority.paused == set()


def test_a_revoked_partition_is_forgotten() -> None:
    lanes = Lanes()
    lanes.consumer.high[(AUDIO_SPEECH_HIGH, 0)], lanes.consumer.pos[(AUDIO_SPEECH_HIGH, 0)] = 5, 0
    lanes.decide()
    assert (AUDIO_SPEECH, 0) in lanes.priority.paused
    lanes.priority.forget([(AUDIO_SPEECH, 0)])
    assert (AUDIO_SPEECH, 0) not in lanes.priority.paused
    lanes.consumer.pos[(AUDIO_SPEECH_HIGH, 0)] = 5  # the urgent work is done: a revoked partition is not resumed
    decision = lanes.priority.decide(ASSIGNED - {(AUDIO_SPEECH, 0)}, set())
    assert (AUDIO_SPEECH, 0) not in decision.resume and (AUDIO_SPEECH, 1) in decision.resume


def test_batches_are_small_while_lower_lanes_run_after_urgent_work() -> None:
    lanes = Lanes()
    lanes.caught_up()
    lanes.consumer.high[(AUDIO_SPEECH, 0)] = 40  # a batch backlog, nothing urgent lately: one recogniser batch
    assert lanes.decide().batch_limit == 8  # (8 windows) at a time, so a call that starts now waits no longer

    lanes.consumer.high[(AUDIO_SPEECH_HIGH, 1)] = 11  # an urgent event: normal pauses, the urgent lane gets it all
    assert lanes.decide().batch_limit == 32 and (AUDIO_SPEECH, 0) in lanes.priority.paused

    lanes.consumer.pos[(AUDIO_SPEECH_HIGH, 1)] = 11  # handled; the backlog runs again, one window at a time (asr)
    assert lanes.decide().batch_limit == 1 and {t for t, _ in lanes.priority.paused} == {AUDIO_SPEECH_LOW}

    lanes.consumer.pos[(AUDIO_SPEECH, 0)] = 40  # nothing waits anywhere: whatever comes, in recogniser batches
    assert lanes.decide().batch_limit == 8
    lanes.consumer.pos[(AUDIO_SPEECH, 0)] = 10

    lanes.clock.now += 60  # the urgent lane has been quiet for a minute: recogniser batches again
    assert lanes.decide().batch_limit == 8


def test_events_consumed_keep_a_lane_busy() -> None:
    """A lane whose events were just consumed (nothing waiting now) still counts as busy for ``busy_s``."""
    lanes = Lanes()
    lanes.caught_up()
    lanes.consumer.high[(AUDIO_SPEECH, 0)] = 40
    assert lanes.decide().batch_limit == 8
    lanes.priority.note([AUDIO_SPEECH_HIGH])  # an urgent event came and went within one batch
    assert lanes.decide().batch_limit == 1
    lanes.clock.now += Settings().lanes.busy_s
    assert lanes.decide().batch_limit == 8


def test_a_backlog_shows_before_the_first_event_is_consumed() -> None:
    lanes = Lanes()
    lanes.consumer.high[(AUDIO_SPEECH_HIGH, 0)] = 7  # fetched, never consumed: no position yet
    lanes.backlogs.started_at([TopicPartition(AUDIO_SPEECH_HIGH, 0, 7)])  # the group had committed up to the end
    lanes.decide()
    assert lanes.priority.paused == set()
    lanes.consumer.high[(AUDIO_SPEECH_HIGH, 0)] = 9  # two new urgent events: the lower lanes wait for them
    lanes.decide()
    assert {t for t, _ in lanes.priority.paused} == {AUDIO_SPEECH, AUDIO_SPEECH_LOW}


def test_a_stage_without_lanes_takes_full_batches() -> None:
    priority = LanePriority((), 500, yield_batch=1, lower_batch=500, busy_s=5)
    assert priority.decide({("transcripts", 0)}, {("transcripts", 0)}) == LaneDecision((), (), 500, None)
