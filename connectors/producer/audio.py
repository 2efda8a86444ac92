"""A Python producer for ``audio.chunks``: the contract other sources follow.

Contract: key = stream_id (UTF-8); value = ``schemas/avro/audio_chunk.avsc`` in the Confluent wire format;
``seq`` starts at 0 and grows by one per chunk; ``start_sample`` counts per-channel samples from the start of
the stream; each chunk holds at most one second; the last chunk has ``end_of_stream = true`` (it may be
empty). Job options (model, language, ...) go in ``options`` of the chunk with seq 0. All chunks of a stream
go to one partition (the key sees to it), so order holds.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from connectors.ingest.decode import TARGET_RATE, decode_chunks, probe
from foundation.events import AudioChunk, AudioEncoding
from foundation.settings import Settings
from streams.kafka.clients import publisher_producer
from streams.kafka.lanes import chunk_lane
from streams.kafka.schema_registry import make_registry
from streams.kafka.serde import AvroSerde


class AudioProducer:
    def __init__(self, settings: Settings, client_id: str = "audio-producer") -> None:
        self.prefix = settings.kafka.topic_prefix
        self.lanes: dict[str, str] = {}  # stream id -> its chunk topic, chosen by its first chunk
        self.serde = AvroSerde(make_registry(settings.schema_registry.url, settings.schema_registry_file),
                               settings.kafka.topic_prefix)
        self.producer = publisher_producer(settings.kafka, client_id)

    def send(self, stream_id: str, seq: int, start_sample: int, frames: np.ndarray, *, sample_rate: int,
             end_of_stream: bool = False, options: dict[str, str] | None = None, source: str = "producer",
             job_id: str | None = None, error: str | None = None, encoding: AudioEncoding = "PCM_S16LE") -> None:
        event = AudioChunk(
            stream_id=stream_id, job_id=job_id, seq=seq, start_sample=start_sample, sample_rate=sample_rate,
            channels=frames.shape[1] if frames.ndim == 2 else 1, encoding=encoding,
            data=frames.astype("<i2").tobytes() if encoding == "PCM_S16LE" else frames.astype(np.uint8).tobytes(),
            end_of_stream=end_of_stream, error=error, options=options or {}, source=source)
        # every chunk of a stream goes to the lane its first chunk's options chose (they ride on seq 0 only)
        if seq == 0 or stream_id not in self.lanes:
            self.lanes[stream_id] = self.prefix + chunk_lane(options or {}, source)
        topic = self.lanes.pop(stream_id) if end_of_stream else self.lanes[stream_id]
        payload = self.serde.serialize(topic, event)
        while True:
            try:
                self.producer.produce(topic, key=stream_id.encode(), value=payload)
                break
            except BufferError:
                self.producer.poll(0.1)
        self.producer.poll(0)

    def send_file(self, path: Path, stream_id: str, *, speed: float | None = None,
                  options: dict[str, str] | None = None, chunk_seconds: float = 1.0,
                  on_chunk: Any = None) -> int:
        """Decode ``path`` and produce it as one stream. ``speed`` paces it (1.0 = real time; None = as fast
        as possible). Returns the number of chunks, end-of-stream included. The file's duration goes into the
        stream's options (as an upload's does), so the stages report the job's progress."""
        info = probe(path)
        if info.duration and "duration" not in (options or {}):
            options = {**(options or {}), "duration": f"{info.duration:.3f}"}
        started = time.monotonic()
        seq = 0
        samples = 0
        channels = 1
        for chunk in decode_chunks(path, chunk_seconds):
            channels = chunk.frames.shape[1]
            if speed:
                due = started + chunk.start_sample / TARGET_RATE / speed
                time.sleep(max(0.0, due - time.monotonic()))
            self.send(stream_id, seq, chunk.start_sample, chunk.frames, sample_rate=TARGET_RATE,
                      options=options if seq == 0 else None)
            samples = chunk.start_sample + len(chunk.frames)
            seq += 1
            if on_chunk:
                on_chunk(seq)
        self.send(stream_id, seq, samples, np.zeros((0, channels), dtype=np.int16), sample_rate=TARGET_RATE,
                  end_of_stream=True)
        self.flush()
        return seq + 1

    def flush(self, timeout: float = 30) -> None:
        if self.producer.flush(timeout):
            raise RuntimeError("audio chunks were not all delivered")
