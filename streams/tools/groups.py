"""Move a downstream consumer group on a topic: to a time, an offset, the beginning or the end.

The group must have no running members (stop its consumers first), as with ``kafka-consumer-groups
--reset-offsets``. A time is resolved per partition to the first event at or after it: by ListOffsets when the
broker answers it correctly, else by a binary search on event timestamps (producers' CreateTime, which grows
within a partition), so it works on Apache Kafka and the embedded broker alike.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from foundation.settings import KafkaSettings
from streams.kafka.clients import end_offsets, reader_consumer


@dataclass(frozen=True)
class Move:
    partition: int
    current: int | None  # committed offset, None if the group never committed
    target: int
    end: int


def _probe(kafka: KafkaSettings) -> Consumer:
    return reader_consumer(kafka, f"offsets-probe-{uuid.uuid4().hex}", "streamscribe-offsets-probe",
                           partition_eof=True)


def _ends(kafka: KafkaSettings, tps: list[TopicPartition]) -> dict[int, int]:
    probe = _probe(kafka)
    try:
        return {p: end for (_, p), end in end_offsets(probe, tps).items()}
    finally:
        probe.close()


def _timestamp_at(consumer: Consumer, topic: str, partition: int, offset: int) -> int | None:
    """The timestamp of the first event at or after ``offset``; None when there is none before the end of the
    partition (on Apache Kafka a transaction's commit marker holds an offset but no event: a probe that lands on
    the last one reaches the end at once instead of waiting out its polls)."""
    consumer.assign([TopicPartition(topic, partition, offset)])
    for _ in range(50):
        msg = consumer.poll(0.2)
        if msg is None:
            continue
        err = msg.error()
        if err is None:
            return int(msg.timestamp()[1])
        if err.code() == KafkaError._PARTITION_EOF:
            return None
    return None


def offset_at_time(kafka: KafkaSettings, topic: str, partition: int, ts_ms: int, end: int) -> int:
    """The first offset in [0, end] whose event timestamp is >= ts_ms (``end`` when none is)."""
    consumer = _probe(kafka)
    try:
        try:
            found = consumer.offsets_for_times([TopicPartition(topic, partition, ts_ms)], timeout=10)[0].offset
        except KafkaException:
            found = -1
        if 0 <= found <= end:  # verify, the embedded broker's ListOffsets is unreliable
            at = _timestamp_at(consumer, topic, partition, found) if found < end else None
            before = _timestamp_at(consumer, topic, partition, found - 1) if found > 0 else None
            if (found == end or (at is not None and at >= ts_ms)) and (before is None or before < ts_ms):
                return found
        lo, hi = 0, end
        while lo < hi:
            mid = (lo + hi) // 2
            ts = _timestamp_at(consumer, topic, partition, mid)
            if ts is None or ts >= ts_ms:
                hi = mid
            else:
                lo = mid + 1
        return lo
    finally:
        consumer.close()


def plan(kafka: KafkaSettings, group: str, topic: str, *, to_datetime: datetime | None = None,
         to_offset: int | None = None, to_earliest: bool = False, to_latest: bool = False,
         partitions: list[int] | None = None) -> list[Move]:
    admin_consumer = reader_consumer(kafka, group, "streamscribe-offsets")
    try:
        md = admin_consumer.list_topics(topic, timeout=10)
        if topic not in md.topics or md.topics[topic].error is not None:
            raise KeyError(f"no topic {topic!r}")
        tps = [TopicPartition(topic, p) for p in sorted(md.topics[topic].partitions)
               if partitions is None or p in partitions]
        committed = {tp.partition: tp.offset for tp in admin_consumer.committed(tps, timeout=10)}
    finally:
        admin_consumer.close()
    ends = _ends(kafka, tps)
    moves = []
    for tp in tps:
        end = ends.get(tp.partition, 0)
        if to_datetime is not None:
            target = offset_at_time(kafka, topic, tp.partition, int(to_datetime.timestamp() * 1000), end)
        elif to_offset is not None:
            target = max(0, min(to_offset, end))
        elif to_earliest:
            target = 0
        elif to_latest:
            target = end
        else:
            raise ValueError("choose one of to_datetime, to_offset, to_earliest, to_latest")
        current = committed.get(tp.partition)
        moves.append(Move(tp.partition, current if current is not None and current >= 0 else None, target, end))
    return moves


def apply(kafka: KafkaSettings, group: str, topic: str, moves: list[Move]) -> None:
    """Commit the planned offsets for the group (a standalone commit: the group must have no members)."""
    consumer = reader_consumer(kafka, group, "streamscribe-offsets")
    try:
        consumer.commit(offsets=[TopicPartition(topic, m.partition, m.target) for m in moves], asynchronous=False)
    finally:
        consumer.close()
