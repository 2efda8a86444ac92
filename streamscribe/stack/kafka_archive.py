"""The class-data-sharing archive of the local Apache Kafka cluster's JVMs, made once by ``make kafka``:

    .venv/bin/python -m streamscribe.stack.kafka_archive [--libs .cache/kafka/libs]

It starts a one-node cluster from the jars with ``-XX:ArchiveClassesAtExit``, has it do what the platform asks of
a broker (create a topic, take a transaction with the consumed offsets in it, serve a consumer group), and stops
it: the JVM writes every class it loaded into ``classes.jsa`` beside the jars (``kafka_cluster.class_archive``),
which every later node and storage tool maps instead of loading and verifying those classes again. Java 17 has no
automatic archive (JDK 19's ``-XX:+AutoCreateSharedArchive``), hence this step. A JVM that finds the archive stale
(other jars, another JVM) says so in its log and starts without it.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path

from confluent_kafka import TopicPartition
from confluent_kafka.admin import NewTopic

from foundation.logs import get_logger
from foundation.settings import KafkaSettings
from streams.kafka.clients import admin_client, stage_consumer, stage_producer
from streamscribe.stack.kafka_cluster import (
    DEFAULT_LIBS,
    ClusterSpec,
    KafkaCluster,
    KafkaClusterError,
    check_libs,
    class_archive,
)

log = get_logger(__name__)


def exercise(bootstrap: str, timeout: float = 60) -> None:
    """A topic, a stage's transactional write with consumed offsets, and its consumer group reading it back (read
    committed), through the platform's own client builders."""
    kafka = KafkaSettings(bootstrap_servers=bootstrap)
    topic, group = "archive.exercise", "archive"
    admin = admin_client(kafka)  # held while its future resolves
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])[topic].result(timeout)
    producer = stage_producer(kafka, "archive", transactional=f"archive-{uuid.uuid4().hex}")
    producer.init_transactions(timeout)
    consumer = stage_consumer(kafka, group, "archive")
    producer.begin_transaction()
    for i in range(10):
        producer.produce(topic, key=str(i).encode(), value=b"x" * 100)
    producer.send_offsets_to_transaction([TopicPartition(topic, 0, 0)], consumer.consumer_group_metadata(), timeout)
    producer.commit_transaction(timeout)
    consumer.subscribe([topic])
    seen, deadline = 0, time.monotonic() + timeout
    while seen < 10 and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and not msg.error():
            seen += 1
    consumer.close()
    if seen < 10:
        raise KafkaClusterError(f"the archive's exercise read {seen} of 10 records")


def make_archive(libs: Path = DEFAULT_LIBS, timeout: float = 300) -> Path:
    """Write ``class_archive(libs)`` anew (see the module docstring); its path."""
    check_libs(libs)
    archive = class_archive(libs)
    archive.unlink(missing_ok=True)  # the node below must not map the archive it replaces
    partial = archive.with_name(archive.name + ".partial")
    partial.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="kafka-archive-") as tmp:
        spec = ClusterSpec(brokers=1, replication_factor=1, min_insync_replicas=1,
                           jvm_options=(f"-XX:ArchiveClassesAtExit={partial}",))
        cluster = KafkaCluster(Path(tmp), spec, libs=libs)
        cluster.start(timeout)
        try:
            exercise(cluster.bootstrap_servers)
        finally:
            cluster.stop(timeout=120)  # a clean exit: the JVM writes the archive as it exits
    if not partial.exists() or partial.stat().st_size == 0:
        raise KafkaClusterError(f"the JVM wrote no class archive at {partial}")
    partial.replace(archive)
    log.info("kafka class archive written", path=str(archive), mb=round(archive.stat().st_size / 2**20, 1))
    return archive


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--libs", type=Path, default=DEFAULT_LIBS, help="the jars (make kafka)")
    make_archive(parser.parse_args().libs.resolve())


if __name__ == "__main__":
    main()
