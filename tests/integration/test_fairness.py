"""Fair recognition on the real stack: short jobs submitted beside a long recording in the same lane, two of
them on the long one's own partition (behind all of its speech windows in the log), complete while the long
one is still being recognised; first come first served, they would all wait for the whole of it."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import TopicPartition

from bench.corpus import write_repeated_recording
from connectors.producer.audio import AudioProducer
from streams.kafka.clients import assign_at_end, reader_consumer
from streams.kafka.schema_registry import make_registry
from streams.kafka.serde import AvroSerde
from streams.kafka.topics import ASR_SEGMENTS, TRANSCRIPTS
from tests.integration.conftest import Stack
from tests.integration.subscriber import Subscriber, repeated, segment_id
from tests.integration.test_priority import _stream_id

pytestmark = pytest.mark.integration


class Timeline:
    """What happens on ``asr.segments`` and ``transcripts`` from now on, in order: (stream, what) pairs, what
    being ``recognised`` (a final ASR segment) or ``completed`` (the transcript's completion)."""

    def __init__(self, stack: Stack) -> None:
        settings = stack.settings()
        self.serde = AvroSerde(make_registry("", settings.schema_registry_file))
        self.consumer = reader_consumer(settings.kafka, f"t-{uuid.uuid4()}")
        assign_at_end(self.consumer, [TopicPartition(t, p) for t in (ASR_SEGMENTS, TRANSCRIPTS)
                                      for p in range(settings.kafka.partitions)])
        self.events: list[tuple[str, str]] = []

    def until(self, done: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            assert time.monotonic() < deadline, f"timed out; seen {self.events[-20:]}"
            for msg in self.consumer.consume(100, 0.5):
                if msg.error() or msg.key() is None:
                    continue
                value = self.serde.deserialize(str(msg.topic()), msg.value())
                if msg.topic() == ASR_SEGMENTS and value["kind"] == "FINAL":
                    self.events.append((value["stream_id"], "recognised"))
                elif msg.topic() == TRANSCRIPTS and value["kind"] == "COMPLETED":
                    self.events.append((value["stream_id"], "completed"))

    def completed(self, streams: set[str]) -> bool:
        return streams <= {s for s, what in self.events if what == "completed"}

    def close(self) -> None:
        self.consumer.close()


@pytest.mark.timeout(1800)  # a busy two-core machine recognises the long recording slowly
def test_short_jobs_finish_while_a_long_one_is_recognised(stack: Stack, speech: Path, tmp_path: Path) -> None:
    settings = stack.settings()
    partitions = settings.kafka.partitions
    partition = int(uuid.uuid4().int % partitions)
    long_id = _stream_id("long", partition, partitions)
    shorts = [_stream_id("short-same", partition, partitions),
              _stream_id("short-other", (partition + 1) % partitions, partitions),
              _stream_id("short-same", partition, partitions)]
    long_recording = tmp_path / "long.wav"
    write_repeated_recording(long_recording, 6)  # 6.2 minutes, about 15 windows of 28 s
    timeline = Timeline(stack)
    producer = AudioProducer(settings)
    options = {"diarize": "off", "segmentation": "merge"}
    try:
        producer.send_file(long_recording, long_id, options=options)
        producer.producer.flush(30)
        # the short jobs come once the long one is being recognised (its windows are queued by then)
        timeline.until(lambda: (long_id, "recognised") in timeline.events, timeout=300)
        for stream, name in zip(shorts, ("LJ001-0001.wav", "LJ001-0002.wav", "LJ001-0003.wav"), strict=True):
            producer.send_file(speech / "read" / name, stream, options=options)
        producer.producer.flush(30)
        timeline.until(lambda: timeline.completed({long_id, *shorts}), timeout=900)
    finally:
        timeline.close()
    events = timeline.events
    last_short = max(events.index((s, "completed")) for s in shorts)
    long_windows = [i for i, e in enumerate(events) if e == (long_id, "recognised")]
    after = sum(1 for i in long_windows if i > last_short)
    assert after >= 2, (f"the short jobs waited for the long one: {after} of its {len(long_windows)} windows "
                        f"were recognised after them; {events}")


@pytest.mark.broker("apache")
@pytest.mark.timeout(1800)
def test_exactly_once_windows_handled_ahead_are_not_recognised_again_after_a_kill(stack: Stack, speech: Path,
                                                                                 tmp_path: Path) -> None:
    """Exactly-once with fairness: a short job on the long one's partition is recognised (and committed) past the
    committed offset, which stays at the long one's first window still waiting; ``kill -9`` of asr then, and its
    restart reads the partition again from that offset. The offsets committed beside it tell the new process
    which windows were handled: read_committed subscribers see each of the short job's segments once."""
    settings = stack.settings()
    assert settings.kafka.processing_guarantee == "exactly_once"
    partitions = settings.kafka.partitions
    partition = int(uuid.uuid4().int % partitions)
    long_id, short_id = _stream_id("eos-long", partition, partitions), _stream_id("eos-short", partition, partitions)
    long_recording = tmp_path / "long.wav"
    write_repeated_recording(long_recording, 8)  # 8.3 minutes, about 20 windows
    committed = Subscriber(settings, (ASR_SEGMENTS, TRANSCRIPTS))
    producer = AudioProducer(settings)
    options = {"diarize": "off", "segmentation": "merge"}

    def ended(stream: str) -> bool:
        return any(e["kind"] == "END" for e in committed.of(ASR_SEGMENTS, stream))

    try:
        producer.send_file(long_recording, long_id, options=options)
        producer.producer.flush(30)
        committed.wait_for(lambda: any(e["kind"] == "FINAL" for e in committed.of(ASR_SEGMENTS, long_id)), 300,
                           "the long recording's first window")
        producer.send_file(speech / "read" / "LJ001-0001.wav", short_id, options=options)
        producer.producer.flush(30)
        committed.wait_for(lambda: ended(short_id), 600, "the short job recognised")
        assert not ended(long_id), "the long recording was recognised before the kill; the test proves nothing"
        stack.wait_restarted("asr", stack.kill9("asr"))
        committed.wait_for(lambda: any(e["kind"] == "COMPLETED" for e in committed.of(TRANSCRIPTS, long_id)), 900,
                           "the long recording's transcript")
        time.sleep(2)  # a window recognised again would come by now
        short, long = committed.of(ASR_SEGMENTS, short_id), committed.of(ASR_SEGMENTS, long_id)
        assert repeated(short, segment_id) == {}, "the short job's windows were recognised again after the restart"
        assert repeated(long, segment_id) == {}
        assert sum(e["kind"] == "END" for e in long) == 1 and sum(e["kind"] == "FINAL" for e in long) >= 15
    finally:
        committed.close()
