"""confluent-kafka client configuration built from the settings object."""

from __future__ import annotations

from typing import Any

from confluent_kafka import Consumer, Producer

from streamscribe.settings import KafkaSettings


def base_config(kafka: KafkaSettings) -> dict[str, Any]:
    return {"bootstrap.servers": kafka.bootstrap_servers, **kafka.client_config}


def producer_config(kafka: KafkaSettings, client_id: str) -> dict[str, Any]:
    return {
        **base_config(kafka),
        "client.id": client_id,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "none",
        "message.max.bytes": kafka.max_message_bytes,
    }


def consumer_config(kafka: KafkaSettings, group: str, client_id: str) -> dict[str, Any]:
    return {
        **base_config(kafka),
        "group.id": kafka.topic_prefix + group,
        "client.id": client_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": kafka.session_timeout_ms,
        "heartbeat.interval.ms": max(500, kafka.session_timeout_ms // 6),
        "fetch.wait.max.ms": kafka.fetch_wait_max_ms,
        "fetch.message.max.bytes": kafka.max_message_bytes,
        "max.partition.fetch.bytes": kafka.max_message_bytes,
        # ASR batches can take tens of seconds on two cores; the group must not evict the worker meanwhile.
        "max.poll.interval.ms": 600_000,
        "partition.assignment.strategy": "range",
    }


def make_producer(kafka: KafkaSettings, client_id: str) -> Producer:
    return Producer(producer_config(kafka, client_id))


def make_consumer(kafka: KafkaSettings, group: str, client_id: str) -> Consumer:
    return Consumer(consumer_config(kafka, group, client_id))
