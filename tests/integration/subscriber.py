"""A downstream subscriber of result topics, as a user of the platform writes one: the project's reader consumer
(``read_committed`` unless told otherwise) assigned at the current end of every partition of its topics, the
Avro events decoded, kept per topic. It reads in a thread of its own, so a test can kill things meanwhile."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Hashable
from typing import Any

from confluent_kafka import TopicPartition

from foundation.settings import Settings
from streams.kafka.clients import assign_at_end, reader_consumer
from streams.kafka.schema_registry import make_registry
from streams.kafka.serde import AvroSerde


class Subscriber:
    def __init__(self, settings: Settings, topics: tuple[str, ...], *, read_committed: bool = True) -> None:
        kafka = settings.kafka
        self.prefix = kafka.topic_prefix
        self.serde = AvroSerde(make_registry(settings.schema_registry.url, settings.schema_registry_file), self.prefix)
        self.consumer = reader_consumer(kafka, f"test-subscriber-{uuid.uuid4().hex[:8]}", read_committed=read_committed)
        full = [self.prefix + t for t in topics]
        md = self.consumer.list_topics(timeout=10).topics
        assign_at_end(self.consumer, [TopicPartition(t, p) for t in full for p in md[t].partitions], timeout=30)
        self.events: dict[str, list[dict[str, Any]]] = {t: [] for t in topics}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="test-subscriber")
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for msg in self.consumer.consume(500, 0.2):
                if msg.error() is not None:
                    continue
                topic = (msg.topic() or "").removeprefix(self.prefix)
                value = self.serde.deserialize(msg.topic() or "", msg.value())
                with self._lock:
                    self.events[topic].append(value)

    def of(self, topic: str, stream_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self.events[topic] if e.get("stream_id") == stream_id]

    def wait_for(self, check: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"the subscriber did not see {what} within {timeout:.0f} s")
            time.sleep(0.05)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.consumer.close()


def repeated(events: list[dict[str, Any]], identity: Callable[[dict[str, Any]], Hashable]) -> dict[Hashable, int]:
    """The identities seen more than once, with their counts."""
    return {k: n for k, n in Counter(identity(e) for e in events).items() if n > 1}


def chunk_id(e: dict[str, Any]) -> Hashable:
    return (e["revision"], e["seq"])


def segment_id(e: dict[str, Any]) -> Hashable:
    """asr.segments: one event per recognised window (or its END); transcripts: one per readable segment, one
    COMPLETED or FAILED per stream and revision."""
    if "segment" in e:
        return (e["revision"], e["kind"], (e["segment"] or {}).get("id"))
    return (e["revision"], e["kind"], e["segment_id"])
