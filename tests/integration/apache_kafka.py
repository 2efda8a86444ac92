"""The Apache Kafka cluster of the integration tests: 3 KRaft nodes from the jars in .cache/kafka/libs
(``streamscribe.stack.kafka_cluster``), with SASL_SSL listeners and one SCRAM-SHA-512 user, started once per
session. It is meant to become the fixture that picks the broker (Tansu or Apache Kafka) for the whole suite.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from streamscribe.stack.kafka_cluster import ClusterSpec, KafkaCluster, KafkaClusterError

SCRAM_USER = "streamscribe"


@dataclass
class ApacheKafka:
    cluster: KafkaCluster
    username: str
    password: str


@pytest.fixture(scope="session")
def apache_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApacheKafka]:
    password = secrets.token_hex(16)
    cluster = KafkaCluster(tmp_path_factory.mktemp("kafka"),
                           ClusterSpec(brokers=3, replication_factor=3, min_insync_replicas=2,
                                       scram_users={SCRAM_USER: password}))
    try:
        cluster.start()
    except KafkaClusterError as exc:
        pytest.fail(f"the Apache Kafka cluster did not start: {exc}")
    try:
        yield ApacheKafka(cluster, SCRAM_USER, password)
    finally:
        cluster.stop()
