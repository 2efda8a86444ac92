"""Live results for the gateway's open sessions: one consumer per gateway process reads ``asr.segments`` and
``speaker.turns`` from the end of the log and hands each event to the session that owns its stream (if any, on
this process). Events reach a session's queue as they are decoded, with the topic they came from in
``"topic"`` (``asr.segments`` or ``speaker.turns``)."""

from __future__ import annotations

import asyncio
import threading
import uuid
from typing import Any

from confluent_kafka import TopicPartition

from foundation.logs import get_logger
from foundation.settings import Settings
from streams.kafka.clients import assign_at_end, reader_consumer
from streams.kafka.schema_registry import make_registry
from streams.kafka.serde import AvroSerde
from streams.kafka.topics import ASR_SEGMENTS, SPEAKER_TURNS

TOPICS = (ASR_SEGMENTS, SPEAKER_TURNS)

log = get_logger(__name__)


class ResultsFeed:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.prefix = settings.kafka.topic_prefix
        self.serde = AvroSerde(make_registry(settings.schema_registry.url, settings.schema_registry_file),
                               settings.kafka.topic_prefix)
        self._sessions: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Queue[dict[str, Any]]]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="results-feed")

    def start(self) -> None:
        self._thread.start()

    def wait_ready(self, timeout: float = 15) -> bool:
        return self._ready.wait(timeout)

    def register(self, stream_id: str) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        with self._lock:
            self._sessions[stream_id] = (asyncio.get_running_loop(), queue)
        return queue

    def unregister(self, stream_id: str) -> None:
        with self._lock:
            self._sessions.pop(stream_id, None)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        kafka = self.settings.kafka
        consumer = reader_consumer(kafka, f"{kafka.topic_prefix}gateway-live-{uuid.uuid4().hex}", "gateway-live")
        try:
            parts = []
            for topic in TOPICS:
                md = consumer.list_topics(self.prefix + topic, timeout=10)
                parts += [TopicPartition(self.prefix + topic, p) for p in md.topics[self.prefix + topic].partitions]
            assign_at_end(consumer, parts)
            self._ready.set()
            while not self._stop.is_set():
                msg = consumer.poll(0.2)
                if msg is None or msg.error():
                    continue
                key = msg.key()
                with self._lock:
                    target = self._sessions.get(key.decode()) if key else None
                if target is None:
                    continue
                topic = msg.topic() or ""
                try:
                    value = self.serde.deserialize(topic, msg.value())
                except Exception as exc:  # the stages dead-letter such events; a viewer just skips them
                    log.warning("undecodable live result skipped", error=str(exc))
                    continue
                value["topic"] = topic.removeprefix(self.prefix)
                loop, queue = target
                loop.call_soon_threadsafe(queue.put_nowait, value)
        except Exception:
            log.exception("live results feed stopped")
        finally:
            consumer.close()
