"""confluent-kafka client configuration built from the settings object."""

from __future__ import annotations

from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from foundation.settings import KafkaSettings


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


def end_offsets(consumer: Consumer, partitions: list[TopicPartition],
                timeout: float = 10.0) -> dict[tuple[str, int], int]:
    """The current end of log of each partition, from the high watermark a fetch returns (not from ListOffsets,
    which the embedded broker answers wrongly): works the same on Apache Kafka and on Tansu. ``consumer`` is
    reassigned; partitions given with an offset are fetched from there (less to read than from the start)."""
    import time

    from confluent_kafka import OFFSET_BEGINNING

    consumer.assign([TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_BEGINNING)
                     for tp in partitions])
    ends: dict[tuple[str, int], int] = {}
    deadline = time.monotonic() + timeout
    while len(ends) < len(partitions) and time.monotonic() < deadline:
        consumer.consume(500, 0.1)
        for tp in partitions:
            _, hi = consumer.get_watermark_offsets(tp, cached=True)
            if hi >= 0:
                ends[(tp.topic, tp.partition)] = hi
    return ends


def assign_at_end(consumer: Consumer, partitions: list[TopicPartition], timeout: float = 10.0) -> None:
    """Assign ``partitions`` positioned at their current end of log (see ``end_offsets``)."""
    ends = end_offsets(consumer, partitions, timeout)
    consumer.assign([TopicPartition(tp.topic, tp.partition, ends.get((tp.topic, tp.partition), 0))
                     for tp in partitions])
