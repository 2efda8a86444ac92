"""Dead letters of a stack's topic, read from the beginning of ``<topic>.dlq`` by key."""

from __future__ import annotations

import time
import uuid
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from streams.kafka.clients import reader_consumer
from streams.kafka.schema_registry import make_registry
from streams.kafka.serde import AvroSerde
from streams.kafka.topics import dlq_name
from tests.integration.conftest import Stack


def read_dead_letters(stack: Stack, topic: str, keys: set[str], timeout: float = 60) -> dict[str, dict[str, Any]]:
    """The dead letters of ``topic`` keyed by any of ``keys``, decoded; waits up to ``timeout`` for all."""
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
