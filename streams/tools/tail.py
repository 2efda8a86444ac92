"""Read a topic as JSON lines: the subscriber's view of the pipeline (``streamscribe tail``)."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from foundation.settings import Settings
from streams.kafka.clients import assign_at_end, end_offsets, reader_consumer
from streams.kafka.schema_registry import make_registry
from streams.kafka.serde import AvroSerde
from streams.kafka.topics import schema_of

INLINE_BYTES = 256


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode() if len(value) <= INLINE_BYTES else f"<{len(value)} bytes>"
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(type(value).__name__)


def _start(consumer: Consumer, partitions: list[TopicPartition], settings: Settings, from_beginning: bool) -> None:
    """A group resumes where it committed; where it never did, it starts at the end (or the beginning)."""
    committed = {(tp.topic, tp.partition): tp.offset for tp in consumer.committed(partitions, timeout=10)}
    fresh = [tp for tp in partitions if committed.get((tp.topic, tp.partition), -1) < 0]
    ends: dict[tuple[str, int], int] = {}
    if fresh and not from_beginning:
        probe = reader_consumer(settings.kafka, f"tail-probe-{uuid.uuid4().hex}", "streamscribe-tail-probe")
        try:
            ends = end_offsets(probe, fresh)
        finally:
            probe.close()
    fresh_keys = {(tp.topic, tp.partition) for tp in fresh}
    consumer.assign([
        TopicPartition(tp.topic, tp.partition,
                       ends.get(k, OFFSET_BEGINNING) if k in fresh_keys else committed[k])
        for tp in partitions if (k := (tp.topic, tp.partition))
    ])


def tail_topic(settings: Settings, topic: str, *, from_beginning: bool = False, group: str | None = None,
               max_events: int | None = None, idle_timeout: float | None = None) -> Iterator[str]:
    schema_of(topic)  # KeyError for topics without a contract
    full = settings.kafka.topic_prefix + topic
    serde = AvroSerde(make_registry(settings.schema_registry.url, settings.schema_registry_file),
                      settings.kafka.topic_prefix)
    consumer = reader_consumer(settings.kafka, group or f"tail-{uuid.uuid4().hex}", "streamscribe-tail")
    seen = 0
    try:
        parts = [TopicPartition(full, p) for p in consumer.list_topics(full, timeout=10).topics[full].partitions]
        if group:
            consumer.subscribe([full], on_assign=lambda c, ps: _start(c, ps, settings, from_beginning))
        elif from_beginning:
            consumer.assign([TopicPartition(full, p.partition, OFFSET_BEGINNING) for p in parts])
        else:
            assign_at_end(consumer, parts)
        last = time.monotonic()
        while max_events is None or seen < max_events:
            msg = consumer.poll(0.2)
            if msg is None or msg.error():
                if idle_timeout is not None and time.monotonic() - last > idle_timeout:
                    return
                continue
            last = time.monotonic()
            try:
                value: Any = serde.deserialize(full, msg.value())
            except Exception as exc:
                value = {"undecodable": str(exc)}
            key = msg.key()
            yield json.dumps({"topic": topic, "partition": msg.partition(), "offset": msg.offset(),
                              "key": key.decode(errors="replace") if key else None,
                              "timestamp": msg.timestamp()[1], "value": value},
                             default=_json_default, ensure_ascii=False)
            seen += 1
            if group:
                consumer.commit(message=msg, asynchronous=False)
    finally:
        consumer.close()
