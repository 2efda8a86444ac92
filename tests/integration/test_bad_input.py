"""Bad input gets a clear error and loses nothing: bad files fail their own jobs, poison events go to
dead-letter topics, and everything else keeps flowing (on the real broker and PostgreSQL)."""

from __future__ import annotations

import asyncio
import struct
import time
import uuid
import wave
import zlib
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from foundation.events import AudioChunk
from streams.kafka.clients import publisher_producer, reader_consumer
from streams.kafka.schema_registry import make_registry
from streams.kafka.serde import AvroSerde
from streams.kafka.topics import (
    ASR_SEGMENTS,
    AUDIO_CHUNKS,
    AUDIO_SPEECH,
    INGEST_REQUESTS,
    JOBS_EVENTS,
    TRANSCRIPTS,
    dlq_name,
)
from tests.integration.conftest import Stack

pytestmark = [pytest.mark.integration, pytest.mark.embedded]


def _png(path: Path) -> None:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\x80\x80\x80" * 8 for _ in range(8))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def _silence(path: Path, seconds: float) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\x00\x00" * int(16000 * seconds))


async def test_bad_files_fail_their_own_jobs_and_others_complete(stack: Stack, speech: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"\x00\x01garbage" * 300)  # fixed bytes: random ones are sometimes probed as audio
    truncated = tmp_path / "truncated.flac"
    truncated.write_bytes((speech / "read" / "jfk.flac").read_bytes()[:60])
    silent = tmp_path / "silent.wav"
    _silence(silent, 8.0)
    text = tmp_path / "notes.txt"
    text.write_text("this is a text file, not a recording\n" * 50)
    image = tmp_path / "picture.png"
    _png(image)

    bad = {empty: "empty file", garbage: "unsupported or corrupt", truncated: "",
           silent: "no speech detected", text: "no audio stream", image: "no audio stream"}
    good = speech / "read" / "LJ001-0003.wav"
    results = await asyncio.gather(*(stack.transcribe(p) for p in [*bad, good]))
    by_file = dict(zip([*bad, good], results, strict=True))

    for path, reason in bad.items():
        job, _ = by_file[path]
        assert job["status"] == "failed", (path.name, job)
        assert job["error"], (path.name, job)
        assert reason in job["error"], (path.name, job["error"])
    job, transcript = by_file[good]
    assert job["status"] == "completed", job
    assert "chinese" in transcript["text"].lower()


async def test_failed_job_transcript_is_409_and_cli_exits_nonzero(stack: Stack, tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp3"
    empty.write_bytes(b"")
    out = stack.cli("transcribe", str(empty))
    assert out.returncode != 0
    assert "failed" in out.stderr and "empty file (0 bytes)" in out.stderr
    assert out.stdout == ""


def _read_dlq(stack: Stack, topic: str, keys: set[str], timeout: float = 60) -> dict[str, dict[str, Any]]:
    settings = stack.settings()
    serde = AvroSerde(make_registry("", settings.schema_registry_file))
    consumer = reader_consumer(settings.kafka, f"t-{uuid.uuid4()}")
    found: dict[str, dict[str, Any]] = {}
    try:
        consumer.assign([TopicPartition(dlq_name(topic), p, OFFSET_BEGINNING)
                         for p in range(settings.kafka.partitions)])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not keys <= set(found):
            for msg in consumer.consume(100, 0.5):
                if msg.error() or msg.key() is None:
                    continue
                key = msg.key().decode()
                if key in keys:
                    found[key] = serde.deserialize(dlq_name(topic), msg.value())
    finally:
        consumer.close()
    return found


async def test_poison_events_are_dead_lettered_and_stages_keep_going(stack: Stack, speech: Path) -> None:
    settings = stack.settings()
    serde = AvroSerde(make_registry("", settings.schema_registry_file))
    producer = publisher_producer(settings.kafka, "test-poison")
    topics = [INGEST_REQUESTS, AUDIO_CHUNKS, AUDIO_SPEECH, ASR_SEGMENTS, TRANSCRIPTS, JOBS_EVENTS]
    sent: dict[str, dict[str, bytes]] = {}
    for topic in topics:
        not_avro = f"poison-{uuid.uuid4().hex}"
        unknown_schema = f"poison-{uuid.uuid4().hex}"
        sent[topic] = {not_avro: b"{\"json\": \"is not the contract\"}",
                       unknown_schema: b"\x00\x00\x0f\x42\x40" + b"\x02\x04\x06"}
    # a well-formed event whose content a stage cannot handle: PCM with an odd byte count
    odd_pcm_key = f"poison-{uuid.uuid4().hex}"
    sent[AUDIO_CHUNKS][odd_pcm_key] = serde.serialize(AUDIO_CHUNKS, AudioChunk(
        stream_id=odd_pcm_key, seq=0, start_sample=0, sample_rate=16000, channels=1, data=b"\x01\x02\x03"))
    for topic, events in sent.items():
        for key, value in events.items():
            producer.produce(topic, key=key.encode(), value=value)
    assert producer.flush(30) == 0

    # the pipeline keeps flowing past the poison
    job, transcript = await stack.transcribe(speech / "read" / "LJ001-0004.wav")
    assert job["status"] == "completed", job
    assert "block books" in transcript["text"].lower()

    for topic, events in sent.items():
        found = _read_dlq(stack, topic, set(events))
        assert set(found) == set(events), f"{topic}: dead letters missing for {set(events) - set(found)}"
        for key, letter in found.items():
            assert letter["topic"] == topic and letter["value"] == events[key]
            assert letter["error"] and letter["error_type"] and letter["stage"].startswith("streamscribe-")
    odd = _read_dlq(stack, AUDIO_CHUNKS, {odd_pcm_key})[odd_pcm_key]
    assert odd["stage"] == "streamscribe-vad" and "even byte count" in odd["error"]
