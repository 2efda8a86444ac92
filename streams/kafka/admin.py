"""Topic creation and consumer-group lag."""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import NewTopic

from foundation.logs import get_logger
from foundation.settings import KafkaSettings
from streams.kafka.clients import admin_client, check_connection, end_offsets, reader_consumer
from streams.kafka.topics import all_topics

log = get_logger(__name__)


def ensure_topics(kafka: KafkaSettings, state_groups: tuple[str, ...], timeout: float = 30) -> list[str]:
    """Create every catalogued topic that does not exist yet, and the state changelogs of ``state_groups``
    (the consumer groups of the stateful stages); returns the names created. A cluster that refuses the
    credentials fails here at once (``check_connection``)."""
    check_connection(kafka, timeout)
    admin = admin_client(kafka)
    existing = set(admin.list_topics(timeout=timeout).topics)
    wanted = [(name, cfg) for name, cfg in all_topics(kafka, state_groups) if name not in existing]
    if not wanted:
        return []
    futures = admin.create_topics(
        [NewTopic(name, kafka.partitions, kafka.replication_factor, config=cfg) for name, cfg in wanted],
        operation_timeout=timeout,
    )
    created = []
    for name, fut in futures.items():
        try:
            fut.result()
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    log.info("topics created", topics=created)
    return created


@dataclass(frozen=True)
class GroupLag:
    group: str
    topic: str
    committed: int
    end: int

    @property
    def lag(self) -> int:
        return max(0, self.end - self.committed)


def group_lag(kafka: KafkaSettings, group: str, topics: list[str], timeout: float = 10) -> list[GroupLag]:
    """Committed offset vs. end of log per topic (summed over partitions).

    The end of each partition is read from the high watermark a fetch returns, not from ListOffsets: that
    works on Apache Kafka and on the embedded broker, whose ListOffsets(latest) answers wrongly.
    """
    admin = admin_client(kafka)
    md = admin.list_topics(timeout=timeout)
    tps = [TopicPartition(t, p) for t in topics if t in md.topics for p in md.topics[t].partitions]
    if not tps:
        return []
    fut = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group, tps)])[group]
    committed = {(tp.topic, tp.partition): max(0, tp.offset) for tp in fut.result().topic_partitions}
    probe = reader_consumer(kafka, f"{group}.lag-probe", "streamscribe-lag-probe")
    try:
        ends = end_offsets(probe, [TopicPartition(tp.topic, tp.partition, committed.get((tp.topic, tp.partition), 0))
                                   for tp in tps], timeout)
    finally:
        probe.close()
    out = []
    for topic in topics:
        keys = [k for k in committed if k[0] == topic]
        out.append(GroupLag(group, topic, sum(committed[k] for k in keys),
                            sum(ends.get(k, committed[k]) for k in keys)))
    return out
