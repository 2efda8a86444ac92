"""What the pipeline still holds on Kafka: for every stage's consumer group, the input partitions where it has
not yet read everything (committed offset behind the end of the log).

A job can only move on when some stage reads one of its events; all of a stream's events are keyed by its id, so
they sit in one partition of each topic. When no stage group has anything left to read on that partition, the
job's progress cannot come from Kafka any more: whatever was supposed to move it on is gone (a broker that lost
its history, retention, a claim check never published), or it has already happened.

Committed offsets are read for every group first and the ends of the logs after them: an event that is handed
from one stage to the next while the probe runs is produced before the first stage commits, so it shows as
unread somewhere whatever the timing.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

from foundation.settings import KafkaSettings
from streams.kafka.clients import admin_client, end_offsets, reader_consumer

PROBE_GROUP = "streamscribe-reconciler.probe"


def stream_partition(stream_id: str, partitions: int) -> int:
    """The partition every event keyed by ``stream_id`` goes to: librdkafka's default partitioner
    (``consistent_random``: CRC-32 of the key modulo the partition count), which every producer of the platform
    uses. ``tests/integration/test_recovery.py`` checks it against where the broker put a job's events."""
    return zlib.crc32(stream_id.encode()) % partitions


@dataclass(frozen=True)
class Backlog:
    """Partition counts of the topics the stages read, and the partitions with events some group has not read
    (topic names without the deployment's prefix)."""

    partitions: dict[str, int] = field(default_factory=dict)
    unread: dict[tuple[str, int], list[str]] = field(default_factory=dict)  # (topic, partition) -> groups

    def holding(self, stream_id: str) -> list[str]:
        """``group:topic`` for each stage group that has unread events on the stream's partition of a topic."""
        out = []
        for topic, count in self.partitions.items():
            for group in self.unread.get((topic, stream_partition(stream_id, count)), []):
                out.append(f"{group}:{topic}")
        return out


def probe(kafka: KafkaSettings, groups: dict[str, tuple[str, ...]], timeout: float = 15.0) -> Backlog:
    """The backlog of each consumer group in ``groups`` (group -> input topics, both without the prefix)."""
    prefix = kafka.topic_prefix
    admin = admin_client(kafka, "streamscribe-reconciler")
    metadata = admin.list_topics(timeout=timeout).topics
    counts = {t: len(metadata[prefix + t].partitions) for ts in groups.values() for t in ts if prefix + t in metadata}
    committed: dict[tuple[str, str, int], int] = {}
    for group, topics in groups.items():
        tps = [TopicPartition(prefix + t, p) for t in topics if t in counts for p in range(counts[t])]
        if not tps:
            continue
        result = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(prefix + group, tps)])
        for tp in result[prefix + group].result(timeout).topic_partitions:
            committed[(group, tp.topic.removeprefix(prefix), tp.partition)] = max(0, tp.offset)
    reader = reader_consumer(kafka, prefix + PROBE_GROUP, "streamscribe-reconciler")
    try:
        starts: dict[tuple[str, int], int] = {}
        for (_group, topic, partition), offset in committed.items():
            starts[(topic, partition)] = min(offset, starts.get((topic, partition), offset))
        ends = end_offsets(reader, [TopicPartition(prefix + t, p, o) for (t, p), o in starts.items()], timeout)
    finally:
        reader.close()
    unread: dict[tuple[str, int], list[str]] = {}
    for (group, topic, partition), offset in committed.items():
        end = ends.get((prefix + topic, partition))
        if end is None or end > offset:  # an end that could not be read counts as unread: never act on a guess
            unread.setdefault((topic, partition), []).append(group)
    return Backlog(counts, unread)
