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
