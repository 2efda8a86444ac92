"""Priority lanes on the real stack: a high-priority stream passes a backlog of normal work that was queued
before it on the same partition (in arrival order it would finish last), and a job's priority reaches its
stream from the REST API."""

from __future__ import annotations

import asyncio
import threading
import time
import urllib.request
import uuid
import zlib
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from bench.corpus import write_long_recording
from connectors.producer.audio import AudioProducer
from streams.kafka.clients import assign_at_end, reader_consumer
from streams.kafka.schema_registry import make_registry
from streams.kafka.serde import AvroSerde
from streams.kafka.topics import AUDIO_SPEECH, AUDIO_SPEECH_HIGH, AUDIO_SPEECH_LOW, TRANSCRIPTS
from streamscribe.client import Client
from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration


def _stream_id(prefix: str, partition: int, partitions: int) -> str:
    """A stream id that librdkafka's default partitioner (CRC-32 of the key) puts on ``partition``."""
    while True:
        candidate = f"{prefix}-{uuid.uuid4().hex[:10]}"
        if zlib.crc32(candidate.encode()) % partitions == partition:
            return candidate


def _lane_pauses(stack: Stack) -> float:
    """How often the asr worker has paused a partition of the normal lane (its Prometheus counter)."""
    port = stack.info["children"]["asr"]["metrics_port"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return sum(s.value for family in text_string_to_metric_families(text) for s in family.samples
               if s.name == "streamscribe_lane_pauses_total" and s.labels.get("topic") == AUDIO_SPEECH)


class Completions:
    """Watches ``transcripts`` from its current end and notes the order in which streams complete."""

    def __init__(self, stack: Stack, topics: tuple[str, ...] = (TRANSCRIPTS,)) -> None:
        settings = stack.settings()
        self.serde = AvroSerde(make_registry("", settings.schema_registry_file))
        self.consumer = reader_consumer(settings.kafka, f"t-{uuid.uuid4()}")
        assign_at_end(self.consumer, [TopicPartition(t, p) for t in topics for p in range(settings.kafka.partitions)])
        self.order: list[str] = []
        self.seen: dict[str, list[str]] = {}  # topic -> keys seen on it

    def poll(self, keys: set[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not keys <= set(self.order):
            assert time.monotonic() < deadline, f"not completed: {keys - set(self.order)}"
            for msg in self.consumer.consume(100, 0.5):
                if msg.error() or msg.key() is None:
                    continue
                key = msg.key().decode()
                self.seen.setdefault(msg.topic(), []).append(key)
                if msg.topic() == TRANSCRIPTS and key in keys and key not in self.order:
                    value: dict[str, Any] = self.serde.deserialize(TRANSCRIPTS, msg.value())
                    if value["kind"] == "COMPLETED":
                        self.order.append(key)

    def close(self) -> None:
        self.consumer.close()


def test_a_high_priority_stream_passes_the_backlog_on_its_partition(stack: Stack, speech: Path,
                                                                      tmp_path: Path) -> None:
    settings = stack.settings()
    partitions = settings.kafka.partitions
    partition = int(uuid.uuid4().int % partitions)
    bulk, urgent = _stream_id("bulk", partition, partitions), _stream_id("urgent", partition, partitions)
    long_recording = tmp_path / "long.wav"
    write_long_recording(long_recording, speech)  # 7.7 minutes of speech: a backlog of several seconds of ASR
    pauses_before = _lane_pauses(stack)
    watch = Completions(stack)
    producer = AudioProducer(settings)
    try:
        producer.send_file(long_recording, bulk, options={"diarize": "off", "segmentation": "merge"})
        producer.producer.flush(30)
        # the urgent call comes after the whole backlog, on the same partition of every topic; one speech
        # event per utterance, so its lane has a backlog of its own for a while
        producer.send_file(speech / "meetings" / "ami_dev00.flac", urgent,
                           options={"diarize": "off", "segmentation": "utterance", "priority": "high"})
        producer.producer.flush(30)
        watch.poll({bulk, urgent}, timeout=600)
    finally:
        watch.close()
    assert watch.order == [urgent, bulk], "the high-priority stream did not pass the normal backlog"
    # and the recogniser held the normal lane back for it (not merely shared its time)
    assert _lane_pauses(stack) > pauses_before


async def test_a_job_priority_picks_its_speech_lane(stack: Stack, speech: Path) -> None:
    """Through the REST API: a high job's speech travels on the high lane, a replay (background work) on the
    low lane, and the transcripts are the same as on the normal lane."""
    settings = stack.settings()
    lanes = reader_consumer(settings.kafka, f"t-{uuid.uuid4()}")
    assign_at_end(lanes, [TopicPartition(t, p) for t in (AUDIO_SPEECH_HIGH, AUDIO_SPEECH_LOW)
                          for p in range(settings.kafka.partitions)])
    seen: dict[str, set[str]] = {AUDIO_SPEECH_HIGH: set(), AUDIO_SPEECH_LOW: set()}
    stop = threading.Event()

    def collect() -> None:
        while not stop.is_set():
            for msg in lanes.consume(100, 0.3):
                if not msg.error() and msg.key() is not None:
                    seen[str(msg.topic())].add(msg.key().decode())

    reader = threading.Thread(target=collect, daemon=True)
    reader.start()
    try:
        job, transcript = await stack.transcribe(speech / "read" / "LJ001-0002.wav", diarize="off", priority="high")
        assert job["status"] == "completed" and job["priority"] == "high", job
        assert transcript["model"] == "tiny.en"
        async with Client(stack.url) as client:
            async with client.session.post(f"{stack.url}/v1/replays", json={
                    "job_ids": [job["job_id"]], "model": "tiny.en", "beam_size": 4}) as resp:
                replay = await resp.json()
                assert resp.status == 202, replay
            revision = replay["jobs"][0]["revision"]
            for _ in range(600):
                revisions = await client.revisions(job["job_id"])
                if any(r["revision"] == revision and r["status"] == "completed" for r in revisions["revisions"]):
                    break
                await asyncio.sleep(0.2)
            else:
                raise AssertionError(f"replay revision {revision} did not complete: {revisions}")
        deadline = time.monotonic() + 10
        while job["stream_id"] not in seen[AUDIO_SPEECH_LOW] and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
    finally:
        stop.set()
        reader.join(5)
        lanes.close()
    assert job["stream_id"] in seen[AUDIO_SPEECH_HIGH], "the high job's speech was not on the high lane"
    assert job["stream_id"] in seen[AUDIO_SPEECH_LOW], "the replay's speech was not on the low lane"
