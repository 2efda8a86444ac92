"""The 3-node Apache Kafka cluster (KRaft, from the Maven jars): replication, acks=all, broker failover, SASL_SSL.

The clients here are plain confluent-kafka clients built from dicts; they move to streams/kafka/clients.py once
its typed connection settings (security protocol, SASL, TLS) exist, and these tests then use those.
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
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from foundation.settings import KafkaSettings
from streams.kafka.topics import all_topics
from streams.stages.registry import state_groups
from streamscribe.stack.certificates import make_ca
from tests.integration.apache_kafka import ApacheKafka

pytestmark = pytest.mark.integration

ClientConfig = dict[str, Any]


def plain(kafka: ApacheKafka) -> ClientConfig:
    return {"bootstrap.servers": kafka.cluster.bootstrap_servers}


def sasl_ssl(kafka: ApacheKafka, password: str | None = None) -> ClientConfig:
    return {"bootstrap.servers": kafka.cluster.sasl_bootstrap_servers, "security.protocol": "SASL_SSL",
            "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": kafka.username,
            "sasl.password": kafka.password if password is None else password,
            "ssl.ca.location": str(kafka.cluster.ca_file), "ssl.endpoint.identification.algorithm": "https"}


def new_topic(kafka: ApacheKafka, partitions: int, replication_factor: int = -1) -> str:
    """A fresh topic; replication factor -1 takes the cluster's default."""
    name = f"test.{uuid.uuid4().hex[:10]}"
    admin = AdminClient(plain(kafka))  # kept referenced until the result is in (a dropped client cancels it)
    admin.create_topics([NewTopic(name, partitions, replication_factor)], operation_timeout=30)[name].result(60)
    return name


def partitions_of(kafka: ApacheKafka, topic: str) -> dict[int, tuple[int, list[int], list[int]]]:
    """partition -> (leader, replicas, in-sync replicas)."""
    md = AdminClient(plain(kafka)).list_topics(topic, timeout=10).topics[topic]
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


def producer(config: ClientConfig) -> Producer:
    return Producer({**config, "acks": "all", "enable.idempotence": True, "linger.ms": 5,
                     "message.timeout.ms": 120_000})


def produce(p: Producer, topic: str, values: list[str], rec: Recorder) -> None:
    for value in values:
        p.produce(topic, key=value.split(":")[0].encode(), value=value.encode(), on_delivery=rec)
        p.poll(0)


def consume_all(config: ClientConfig, topic: str, timeout: float = 60) -> list[str]:
    """Every record of ``topic`` from the beginning to the current end of each partition, in partition order."""
    c = Consumer({**config, "group.id": f"reader-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False,
                  "auto.offset.reset": "earliest"})
    try:
        md = c.list_topics(topic, timeout=10).topics[topic]
        ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in md.partitions}
        c.assign([TopicPartition(topic, p, 0) for p in md.partitions])
        got: dict[int, list[str]] = {p: [] for p in md.partitions}
        deadline = time.monotonic() + timeout
        while any(len(got[p]) < ends[p] for p in got) and time.monotonic() < deadline:
            for msg in c.consume(500, 0.5):
                if msg.error() is None:
                    got[msg.partition()].append(msg.value().decode())
        return [v for p in sorted(got) for v in got[p]]
    finally:
        c.close()


def connect_errors(config: ClientConfig, wanted: Callable[[KafkaError], bool], limit_s: float = 30) -> list[str]:
    """The errors a producer reports while it connects, until one is ``wanted`` (polled for at most ``limit_s``:
    a bound, not a measure). librdkafka may report a refused connection or a transport error first."""
    errors: list[KafkaError] = []
    p = Producer({**config, "error_cb": errors.append})
    deadline = time.monotonic() + limit_s
    while not any(wanted(e) for e in errors) and time.monotonic() < deadline:
        p.poll(0.1)
    return [f"{e.name()}: {e.str()}" for e in errors]


def test_three_brokers_replication_three_min_insync_two(apache_kafka: ApacheKafka) -> None:
    admin = AdminClient(plain(apache_kafka))
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


def test_acks_all_produce_and_consume_in_key_order(apache_kafka: ApacheKafka) -> None:
    topic = new_topic(apache_kafka, partitions=4, replication_factor=3)
    values = [f"stream-{i % 7}:{i}" for i in range(700)]
    rec = Recorder()
    p = producer(plain(apache_kafka))
    produce(p, topic, values, rec)
    assert p.flush(60) == 0
    assert rec.failed == [] and sorted(rec.acked) == sorted(values)

    read = consume_all(plain(apache_kafka), topic)
    assert sorted(read) == sorted(values)
    for key in {v.split(":")[0] for v in values}:  # one key, one partition: its order is kept
        assert [v for v in read if v.startswith(key + ":")] == [v for v in values if v.startswith(key + ":")]


def test_sasl_ssl_with_scram_user_and_project_ca(apache_kafka: ApacheKafka) -> None:
    topic = new_topic(apache_kafka, partitions=2, replication_factor=3)
    values = [f"call-{i % 3}:{i}" for i in range(50)]
    rec = Recorder()
    p = producer(sasl_ssl(apache_kafka))
    produce(p, topic, values, rec)
    assert p.flush(60) == 0
    assert rec.failed == [] and sorted(rec.acked) == sorted(values)
    assert sorted(consume_all(sasl_ssl(apache_kafka), topic)) == sorted(values)


def test_sasl_ssl_wrong_password_is_an_authentication_error(apache_kafka: ApacheKafka) -> None:
    errors = connect_errors(sasl_ssl(apache_kafka, password="not-the-password"),
                            lambda e: e.code() == KafkaError._AUTHENTICATION)
    auth = [e for e in errors if e.startswith("_AUTHENTICATION")]
    assert auth, f"a wrong password gave no authentication error: {errors}"
    assert "Authentication failed" in auth[0] and "SCRAM-SHA-512" in auth[0], auth[0]
    # and nothing is written with it: the message is reported undeliverable, not silently kept
    rec = Recorder()
    p = Producer({**sasl_ssl(apache_kafka, password="not-the-password"), "message.timeout.ms": 3000,
                  "error_cb": lambda _e: None})
    produce(p, "anything", ["k:v"], rec)
    p.flush(30)
    assert rec.acked == [] and len(rec.failed) == 1


def test_sasl_ssl_rejects_a_broker_the_client_ca_did_not_sign(apache_kafka: ApacheKafka,
                                                              tmp_path: Any) -> None:
    other_ca = make_ca(tmp_path / "other-ca", "some other CA")
    errors = connect_errors({**sasl_ssl(apache_kafka), "ssl.ca.location": str(other_ca.cert)},
                            lambda e: "certificate verify failed" in e.str())
    # reported as _SSL or, depending on when the handshake breaks, as _TRANSPORT: the reason is what matters
    assert any("certificate verify failed" in e for e in errors), \
        f"a broker certificate from another CA was not refused: {errors}"


def test_provision_creates_the_catalogue_with_its_configs_once(apache_kafka: ApacheKafka, tmp_path: Path) -> None:
    prefix = f"p{uuid.uuid4().hex[:6]}."
    env = {**os.environ, "STREAMSCRIBE_HOME": str(tmp_path),
           "STREAMSCRIBE_KAFKA__BOOTSTRAP_SERVERS": apache_kafka.cluster.bootstrap_servers,
           "STREAMSCRIBE_KAFKA__TOPIC_PREFIX": prefix, "STREAMSCRIBE_KAFKA__PARTITIONS": "2",
           "STREAMSCRIBE_KAFKA__REPLICATION_FACTOR": "3"}

    def provision() -> list[str]:
        out = subprocess.run([sys.executable, "-m", "streamscribe.provision", "--timeout", "60"], env=env,
                             capture_output=True, text=True, timeout=180)
        assert out.returncode == 0, out.stderr[-3000:]
        created: list[str] = json.loads(out.stdout.strip().splitlines()[-1])["created"]
        return created

    expected = dict(all_topics(KafkaSettings(topic_prefix=prefix), state_groups()))
    assert sorted(provision()) == sorted(expected)
    admin = AdminClient(plain(apache_kafka))
    described = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, t) for t in expected])
    for resource, future in described.items():
        configs = future.result(timeout=30)
        for key, value in expected[resource.name].items():  # compacted changelogs, retention of audio topics
            assert configs[key].value == value, (resource.name, key)
    for topic in expected:
        assert all(len(replicas) == 3 for _, replicas, _ in partitions_of(apache_kafka, topic).values()), topic
    assert provision() == [], "a second run must leave existing topics alone"


def test_kill9_of_a_broker_loses_no_acknowledged_write_and_it_rejoins(apache_kafka: ApacheKafka) -> None:
    cluster = apache_kafka.cluster
    topic = new_topic(apache_kafka, partitions=6, replication_factor=3)
    victim = partitions_of(apache_kafka, topic)[0][0]  # the leader of partition 0
    survivors = {n for n in cluster.nodes if n != victim}
    rec = Recorder()
    p = producer(plain(apache_kafka))

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

    read = consume_all(plain(apache_kafka), topic)
    assert len(read) == len(set(read)), "a record was written twice"
    assert set(read) == set(rec.acked), f"acknowledged but lost: {sorted(set(rec.acked) - set(read))[:10]}"

    cluster.restart(victim)
    wait_until(lambda: all(sorted(isr) == [1, 2, 3] for _, _, isr in partitions_of(apache_kafka, topic).values()),
               120, f"broker {victim} back in the in-sync replicas of every partition")
    assert sorted(AdminClient(plain(apache_kafka)).list_topics(timeout=10).brokers) == [1, 2, 3]
