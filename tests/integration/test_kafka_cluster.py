"""The 3-node Apache Kafka cluster (KRaft, from the Maven jars): replication, acks=all, broker failover, SASL_SSL,
and the topic catalogue made on it (``streamscribe topics create``: created, grown, configs set and checked).

Every client is one of the platform's own (streams/kafka/clients.py), configured by the typed KafkaSettings.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, TopicPartition
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic

from foundation.settings import KafkaSettings
from streams.kafka.admin import topic_config_mismatches
from streams.kafka.clients import (
    KafkaAuthenticationError,
    KafkaConnectionError,
    admin_client,
    check_connection,
    end_offsets,
    publisher_producer,
    reader_consumer,
)
from streams.kafka.topics import all_topics
from streams.stages.registry import state_groups
from streamscribe.stack.certificates import make_ca
from streamscribe.stack.kafka_cluster import class_archive
from tests.integration.apache_kafka import ApacheKafka

pytestmark = [pytest.mark.integration, pytest.mark.broker("apache")]


def new_topic(kafka: ApacheKafka, partitions: int, replication_factor: int = -1) -> str:
    """A fresh topic; replication factor -1 takes the cluster's default."""
    name = f"test.{uuid.uuid4().hex[:10]}"
    admin = admin_client(kafka.plain())  # kept referenced until the result is in (a dropped client cancels it)
    admin.create_topics([NewTopic(name, partitions, replication_factor)], operation_timeout=30)[name].result(60)
    return name


def partitions_of(kafka: ApacheKafka, topic: str) -> dict[int, tuple[int, list[int], list[int]]]:
    """partition -> (leader, replicas, in-sync replicas)."""
    md = admin_client(kafka.plain()).list_topics(topic, timeout=10).topics[topic]
    return {p.id: (p.leader, list(p.replicas), list(p.isrs)) for p in md.partitions.values()}


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        time.sleep(0.5)


class Recorder:
    """Delivery reports of a producer: the values the cluster acknowledged and the errors."""

    def __init__(self) -> None:
        self.acked: list[str] = []
        self.failed: list[tuple[str, str]] = []

    def __call__(self, err: KafkaError | None, msg: Any) -> None:
        value = msg.value().decode()
        if err is None:
            self.acked.append(value)
        else:
            self.failed.append((value, err.str()))


def produce(p: Any, topic: str, values: list[str], rec: Recorder) -> None:
    for value in values:
        p.produce(topic, key=value.split(":")[0].encode(), value=value.encode(), on_delivery=rec)
        p.poll(0)


def consume_all(kafka: KafkaSettings, topic: str, timeout: float = 60) -> list[str]:
    """Every record of ``topic`` from the beginning to the current end of each partition, in partition order."""
    c = reader_consumer(kafka, f"reader-{uuid.uuid4().hex[:8]}")
    try:
        md = c.list_topics(topic, timeout=10).topics[topic]
        ends = end_offsets(c, [TopicPartition(topic, p) for p in md.partitions], timeout=30)
        c.assign([TopicPartition(topic, p, 0) for p in md.partitions])
        got: dict[int, list[str]] = {p: [] for p in md.partitions}
        deadline = time.monotonic() + timeout
        while any(len(got[p]) < ends[(topic, p)] for p in got) and time.monotonic() < deadline:
            for msg in c.consume(500, 0.5):
                if msg.error() is None:
                    got[msg.partition() or 0].append((msg.value() or b"").decode())
        return [v for p in sorted(got) for v in got[p]]
    finally:
        c.close()


def test_three_brokers_replication_three_min_insync_two(apache_kafka: ApacheKafka) -> None:
    admin = admin_client(apache_kafka.plain())
    assert sorted(admin.list_topics(timeout=10).brokers) == [1, 2, 3]
    broker = admin.describe_configs([ConfigResource(ConfigResource.Type.BROKER, "1")])
    configs = next(iter(broker.values())).result(timeout=30)
    for name, value in {"default.replication.factor": "3", "min.insync.replicas": "2",
                        "offsets.topic.replication.factor": "3", "transaction.state.log.replication.factor": "3",
                        "transaction.state.log.min.isr": "2", "unclean.leader.election.enable": "false"}.items():
        assert configs[name].value == value, name

    topic = new_topic(apache_kafka, partitions=6)  # replication factor from the cluster's default
    for leader, replicas, isr in partitions_of(apache_kafka, topic).values():
        assert sorted(replicas) == [1, 2, 3] and sorted(isr) == [1, 2, 3] and leader in replicas
    res = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, topic)])
    assert next(iter(res.values())).result(timeout=30)["min.insync.replicas"].value == "2"


def test_every_node_maps_the_class_archive_of_make_kafka(apache_kafka: ApacheKafka) -> None:
    """``make kafka`` wrote the archive, and each running node's JVM mapped it (a stale or missing one would cost
    every start of the suite's clusters 15 CPU seconds a node, silently)."""
    archive = class_archive(apache_kafka.cluster.libs)
    assert archive.exists(), "make kafka did not write the class archive"
    for node in apache_kafka.cluster.nodes.values():
        assert node.proc is not None
        maps = Path(f"/proc/{node.proc.pid}/maps").read_text()
        assert str(archive) in maps, f"kafka node {node.node_id} did not map {archive}"


def test_acks_all_produce_and_consume_in_key_order(apache_kafka: ApacheKafka) -> None:
    topic = new_topic(apache_kafka, partitions=4, replication_factor=3)
    values = [f"stream-{i % 7}:{i}" for i in range(700)]
    rec = Recorder()
    p = publisher_producer(apache_kafka.plain(), "test")
    produce(p, topic, values, rec)
    assert p.flush(60) == 0
    assert rec.failed == [] and sorted(rec.acked) == sorted(values)

    read = consume_all(apache_kafka.plain(), topic)
    assert sorted(read) == sorted(values)
    for key in {v.split(":")[0] for v in values}:  # one key, one partition: its order is kept
        assert [v for v in read if v.startswith(key + ":")] == [v for v in values if v.startswith(key + ":")]


def test_sasl_ssl_with_scram_user_and_project_ca(apache_kafka: ApacheKafka) -> None:
    topic = new_topic(apache_kafka, partitions=2, replication_factor=3)
    values = [f"call-{i % 3}:{i}" for i in range(50)]
    rec = Recorder()
    p = publisher_producer(apache_kafka.sasl_ssl(), "test")
    produce(p, topic, values, rec)
    assert p.flush(60) == 0
    assert rec.failed == [] and sorted(rec.acked) == sorted(values)
    assert sorted(consume_all(apache_kafka.sasl_ssl(), topic)) == sorted(values)


def test_sasl_ssl_wrong_password_is_an_authentication_error(apache_kafka: ApacheKafka) -> None:
    started = time.monotonic()
    with pytest.raises(KafkaAuthenticationError) as refused:
        check_connection(apache_kafka.sasl_ssl(password="not-the-password"), timeout=60)
    assert time.monotonic() - started < 30, "the refusal took as long as an unreachable cluster"
    message = str(refused.value)
    assert "refused the connection as 'streamscribe' (SCRAM-SHA-512)" in message, message
    assert "Authentication failed" in message and "not-the-password" not in message
    # and nothing is written with it: the message is reported undeliverable, not silently kept
    rec = Recorder()
    p = publisher_producer(apache_kafka.sasl_ssl(password="not-the-password",
                                                 client_config={"message.timeout.ms": "3000"}), "test")
    produce(p, "anything", ["k:v"], rec)
    p.flush(30)
    assert rec.acked == [] and len(rec.failed) == 1


def test_sasl_ssl_rejects_a_broker_the_client_ca_did_not_sign(apache_kafka: ApacheKafka, tmp_path: Path) -> None:
    other_ca = make_ca(tmp_path / "other-ca", "some other CA")
    kafka = apache_kafka.sasl_ssl(ssl_ca_location=str(other_ca.cert))
    # reported as _SSL (refused at once) or, depending on when the handshake breaks, as _TRANSPORT (then the
    # deadline names the last reason): the reason is what matters
    with pytest.raises(KafkaConnectionError, match="certificate verify failed"):
        check_connection(kafka, timeout=20)


def _topics_create(apache_kafka: ApacheKafka, home: Path, prefix: str, *args: str) -> dict[str, Any]:
    env = {**os.environ, "STREAMSCRIBE_HOME": str(home),
           "STREAMSCRIBE_KAFKA__BOOTSTRAP_SERVERS": apache_kafka.cluster.bootstrap_servers,
           "STREAMSCRIBE_KAFKA__BROKER": "apache", "STREAMSCRIBE_KAFKA__TOPIC_PREFIX": prefix,
           "STREAMSCRIBE_KAFKA__PARTITIONS": "2", "STREAMSCRIBE_KAFKA__REPLICATION_FACTOR": "3"}
    out = subprocess.run([sys.executable, "-m", "streamscribe.cli", "topics", "create", "--timeout", "60", *args],
                         env=env, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    report: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return report


def test_topics_create_makes_the_catalogue_with_its_configs_and_checks_them(apache_kafka: ApacheKafka,
                                                                            tmp_path: Path) -> None:
    prefix = f"p{uuid.uuid4().hex[:6]}."
    expected = dict(all_topics(KafkaSettings(topic_prefix=prefix), state_groups()))
    first = _topics_create(apache_kafka, tmp_path, prefix)
    assert sorted(first["created"]) == sorted(expected) and first["configs_checked"] is True
    admin = admin_client(apache_kafka.plain())
    assert topic_config_mismatches(admin, expected) == {}  # compacted changelogs, retention of audio topics...
    changelog, audio = f"{prefix}streamscribe-vad.state", f"{prefix}audio.chunks"
    assert expected[changelog]["cleanup.policy"] == "compact" and expected[audio]["retention.ms"] == str(7 * 86400000)
    for topic in expected:
        assert all(len(replicas) == 3 and len(isr) >= 2 for _, replicas, isr in
                   partitions_of(apache_kafka, topic).values()), topic

    # someone changes two configs by hand: the next run sets them back to the catalogue's, and says so
    drifted = [ConfigResource(ConfigResource.Type.TOPIC, changelog, incremental_configs=[
                   ConfigEntry("cleanup.policy", "delete", incremental_operation=AlterConfigOpType.SET)]),
               ConfigResource(ConfigResource.Type.TOPIC, audio, incremental_configs=[
                   ConfigEntry("retention.ms", "-1", incremental_operation=AlterConfigOpType.SET)])]
    for fut in admin.incremental_alter_configs(drifted).values():
        fut.result(30)
    # each broker applies a config change when it replays the metadata log: wait until whichever broker answers
    # shows both (three answers in a row), so that the next run finds the drift it is meant to repair
    seen: list[bool] = []

    def drift_shown() -> bool:
        seen.append(set(topic_config_mismatches(admin, expected)) == {changelog, audio})
        return seen[-3:] == [True] * 3

    wait_until(drift_shown, 60, "the configs changed by hand to show on the cluster")
    second = _topics_create(apache_kafka, tmp_path, prefix)
    assert second["created"] == [] and second["grown"] == {}
    assert second["altered"] == {changelog: {"cleanup.policy": "compact"}, audio: {"retention.ms": str(7 * 86400000)}}
    assert topic_config_mismatches(admin, expected) == {}

    # more partitions: every topic of the catalogue grows (CreatePartitions), changelogs with their inputs
    third = _topics_create(apache_kafka, tmp_path, prefix, "--partitions", "3")
    assert set(third["grown"]) == set(expected) and all(v == [2, 3] for v in third["grown"].values())
    assert all(len(partitions_of(apache_kafka, t)) == 3 for t in expected)


def test_kill9_of_a_broker_loses_no_acknowledged_write_and_it_rejoins(apache_kafka: ApacheKafka) -> None:
    cluster = apache_kafka.cluster
    topic = new_topic(apache_kafka, partitions=6, replication_factor=3)
    victim = partitions_of(apache_kafka, topic)[0][0]  # the leader of partition 0
    survivors = {n for n in cluster.nodes if n != victim}
    rec = Recorder()
    p = publisher_producer(apache_kafka.plain(client_config={"message.timeout.ms": "120000"}), "test")

    produce(p, topic, [f"s{i % 12}:{i}" for i in range(0, 400)], rec)  # some of these are in flight ...
    cluster.kill(victim)  # ... when the leader of partition 0 dies without a clean shutdown
    produce(p, topic, [f"s{i % 12}:{i}" for i in range(400, 1000)], rec)
    assert p.flush(150) == 0, "acks=all writes did not complete with one broker down"
    assert rec.failed == [], rec.failed[:5]
    assert len(rec.acked) == 1000

    cluster.wait_brokers(survivors, timeout=60)  # fenced: the metadata no longer lists it

    def led_by_survivors_with_two_in_sync() -> bool:
        # each broker applies the metadata log on its own: poll until the one answering has the change too
        return all(leader in survivors and victim not in isr and len(isr) == 2 and len(replicas) == 3
                   for leader, replicas, isr in partitions_of(apache_kafka, topic).values())

    wait_until(led_by_survivors_with_two_in_sync, 60, f"partitions led by {sorted(survivors)}, {victim} out of the ISR")

    read = consume_all(apache_kafka.plain(), topic)
    assert len(read) == len(set(read)), "a record was written twice"
    assert set(read) == set(rec.acked), f"acknowledged but lost: {sorted(set(rec.acked) - set(read))[:10]}"

    cluster.restart(victim)
    wait_until(lambda: all(sorted(isr) == [1, 2, 3] for _, _, isr in partitions_of(apache_kafka, topic).values()),
               120, f"broker {victim} back in the in-sync replicas of every partition")
    assert sorted(admin_client(apache_kafka.plain()).list_topics(timeout=10).brokers) == [1, 2, 3]
