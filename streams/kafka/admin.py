"""Topics made as the catalogue says (created, grown, configured and checked), and consumer-group lag."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewPartitions, NewTopic

from foundation.logs import get_logger
from foundation.settings import KafkaSettings
from streams.kafka.clients import admin_client, check_connection, end_offsets, reader_consumer
from streams.kafka.topics import all_topics

log = get_logger(__name__)


class TopicConfigMismatch(RuntimeError):
    """A topic's configuration on the cluster is not the catalogue's, and could not be made so."""


class MissingTopics(RuntimeError):
    """Topics a worker reads are not on the cluster (``streamscribe topics create`` creates them)."""


def wait_for_topics(kafka: KafkaSettings, topics: list[str], timeout: float = 120, interval: float = 1.0) -> None:
    """Return once every one of ``topics`` (full names, the deployment's prefix included) is in the cluster's
    metadata; ``MissingTopics`` naming the absent ones after ``timeout``. A topic just created can take a moment
    to reach every broker's metadata, and a client that saw it missing may not look again for minutes."""
    admin = admin_client(kafka)
    deadline = time.monotonic() + timeout
    while True:
        missing = sorted(set(topics) - set(admin.list_topics(timeout=max(1.0, min(10.0, timeout))).topics))
        if not missing:
            return
        if time.monotonic() >= deadline:
            raise MissingTopics(f"topics missing on the cluster after {timeout:.0f} s: {', '.join(missing)} "
                                "(run `streamscribe topics create`)")
        log.info("waiting for topics", missing=missing)
        time.sleep(interval)


@dataclass
class TopicsReport:
    """What ``ensure_topics`` did: topics created, topics grown to more partitions, configs changed, and the
    configs checked (``describe_configs``) afterwards. ``checked`` is False on Tansu, which ignores configs."""

    created: list[str] = field(default_factory=list)
    grown: dict[str, tuple[int, int]] = field(default_factory=dict)  # topic -> (partitions before, after)
    altered: dict[str, dict[str, str]] = field(default_factory=dict)  # topic -> {config: catalogue value}
    checked: bool = False

    def to_json(self) -> dict[str, object]:
        return {"created": self.created, "grown": {t: list(v) for t, v in self.grown.items()},
                "altered": self.altered, "configs_checked": self.checked}


def ensure_topics(kafka: KafkaSettings, state_groups: tuple[str, ...], timeout: float = 30) -> TopicsReport:
    """Make every catalogued topic (DLQs and the state changelogs of ``state_groups``, the consumer groups of
    the stateful stages included) as the catalogue says: create the missing ones with ``kafka.partitions``
    partitions, ``kafka.replication_factor`` replicas and the catalogue's configs. On Apache Kafka also: grow a
    topic with fewer partitions than ``kafka.partitions`` (CreatePartitions: with no stream in flight, since a
    stream's key then maps to another partition), set every config that differs from the catalogue, and check
    them all with ``describe_configs`` (``TopicConfigMismatch`` if one is still off). Tansu accepts configs but
    applies none of them (no compaction, no retention: the embedded stack sweeps retention itself) and cannot add
    partitions, so there only missing topics are created. A cluster that refuses the credentials fails here at
    once (``check_connection``)."""
    check_connection(kafka, timeout)
    admin = admin_client(kafka)
    catalogue = all_topics(kafka, state_groups)
    report = TopicsReport(created=_create_missing(admin, kafka, catalogue, timeout))
    if kafka.broker == "tansu":
        return report
    report.grown = _grow(admin, kafka, [name for name, _ in catalogue], timeout)
    report.altered = _configure(admin, dict(catalogue), timeout)
    off = settled_mismatches(admin, dict(catalogue), timeout, wait=CONFIG_SETTLE_S if report.altered else 0.0)
    if off:
        raise TopicConfigMismatch(f"topic configs differ from the catalogue after setting them: {off}")
    report.checked = True
    log.info("topics ready", created=report.created, grown=report.grown, altered=report.altered)
    return report


def _create_missing(admin: AdminClient, kafka: KafkaSettings, catalogue: list[tuple[str, dict[str, str]]],
                    timeout: float) -> list[str]:
    existing = admin.list_topics(timeout=timeout).topics
    wanted = [(name, cfg) for name, cfg in catalogue if name not in existing]
    if not wanted:
        return []
    partitions = new_topic_partitions(kafka, [len(existing[name].partitions) for name, _ in catalogue
                                              if name in existing])
    futures = admin.create_topics(
        [NewTopic(name, partitions, kafka.replication_factor, config=cfg) for name, cfg in wanted],
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


def new_topic_partitions(kafka: KafkaSettings, existing: list[int]) -> int:
    """Partitions of a catalogued topic made after others (``existing``: the partition counts of the catalogued
    topics already there): ``kafka.partitions``, or more if the catalogue's topics have more. Topics read together
    must keep one partition count (``asr.segments`` and ``speaker.turns``, a stage's input and its state
    changelog), and a stack made when the default was higher keeps it (the embedded default went from 4 to 1)."""
    return max([kafka.partitions, *existing])


def _grow(admin: AdminClient, kafka: KafkaSettings, topics: list[str], timeout: float) -> dict[str, tuple[int, int]]:
    """Topics with fewer partitions than ``kafka.partitions`` get more (never fewer: Kafka cannot shrink)."""
    md = admin.list_topics(timeout=timeout).topics
    short = {t: len(md[t].partitions) for t in topics if t in md and len(md[t].partitions) < kafka.partitions}
    if not short:
        return {}
    futures = admin.create_partitions([NewPartitions(t, kafka.partitions) for t in short],
                                      operation_timeout=timeout)
    for fut in futures.values():
        fut.result()
    log.warning("partitions added", topics=sorted(short), partitions=kafka.partitions)
    return {t: (n, kafka.partitions) for t, n in short.items()}


def _described(admin: AdminClient, topics: list[str], timeout: float) -> dict[str, dict[str, str]]:
    futures = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, t) for t in topics],
                                     request_timeout=timeout)
    return {res.name: {k: str(e.value) for k, e in fut.result(timeout=timeout).items()}
            for res, fut in futures.items()}


def topic_config_mismatches(admin: AdminClient, catalogue: dict[str, dict[str, str]],
                            timeout: float = 30) -> dict[str, dict[str, tuple[str, str]]]:
    """Per topic, each config whose value on the cluster (``describe_configs``) is not the catalogue's:
    {topic: {config: (on the cluster, in the catalogue)}}."""
    actual = _described(admin, list(catalogue), timeout)
    off: dict[str, dict[str, tuple[str, str]]] = {}
    for topic, wanted in catalogue.items():
        diff = {k: (actual[topic].get(k, "(unset)"), v) for k, v in wanted.items() if actual[topic].get(k) != v}
        if diff:
            off[topic] = diff
    return off


# How long a config just set may take to show in ``describe_configs``: a broker applies it when it replays the
# cluster's metadata log, so the broker that answers may still give the old value for a moment.
CONFIG_SETTLE_S = 15.0


def settled_mismatches(admin: AdminClient, catalogue: dict[str, dict[str, str]], timeout: float,
                       wait: float, interval: float = 0.5) -> dict[str, dict[str, tuple[str, str]]]:
    """``topic_config_mismatches``, asked again every ``interval`` s for up to ``wait`` s while some remain."""
    deadline = time.monotonic() + wait
    while True:
        off = topic_config_mismatches(admin, catalogue, timeout)
        if not off or time.monotonic() >= deadline:
            return off
        log.info("topic configs not applied yet", topics=sorted(off))
        time.sleep(interval)


def _configure(admin: AdminClient, catalogue: dict[str, dict[str, str]], timeout: float) -> dict[str, dict[str, str]]:
    """Set the configs that differ from the catalogue (only those: a config set by hand and not catalogued is
    left alone)."""
    off = topic_config_mismatches(admin, catalogue, timeout)
    if not off:
        return {}
    resources = [ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
        ConfigEntry(k, wanted, incremental_operation=AlterConfigOpType.SET) for k, (_, wanted) in diff.items()])
        for topic, diff in off.items()]
    for fut in admin.incremental_alter_configs(resources, request_timeout=timeout).values():
        fut.result()
    log.warning("topic configs set to the catalogue's", changes={t: {k: f"{a} -> {w}" for k, (a, w) in d.items()}
                                                                 for t, d in off.items()})
    return {t: {k: w for k, (_, w) in d.items()} for t, d in off.items()}


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
