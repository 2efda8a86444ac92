"""An Apache Kafka cluster of a test module's own: 3 KRaft nodes from the jars in .cache/kafka/libs
(``streamscribe.stack.kafka_cluster``), with SASL_SSL listeners and one SCRAM-SHA-512 user whose password, CA and
broker certificate are made here when the first test that needs it starts. One for the session, shared by the
tests that need a cluster of their own (test_analytics.py's SASL_SSL test, test_kafka_cluster.py, test_kafka_sasl.py;
each under topic names of its own): tests/integration/conftest.py runs those tests last, one after another, so
that only they pay for it (one start instead of one per module), once the session's stack is stopped.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from foundation.settings import KafkaSettings
from streamscribe.stack.kafka_cluster import ClusterSpec, KafkaCluster, KafkaClusterError

SCRAM_USER = "streamscribe"


@dataclass
class ApacheKafka:
    cluster: KafkaCluster
    username: str
    password: str

    def plain(self, **fields: object) -> KafkaSettings:
        """Settings of a client on the PLAINTEXT listeners."""
        return KafkaSettings(bootstrap_servers=self.cluster.bootstrap_servers, **fields)  # type: ignore[arg-type]

    def sasl_ssl(self, password: str | None = None, **fields: object) -> KafkaSettings:
        """Settings of a client on the SASL_SSL listeners, as the SCRAM user, trusting the cluster's CA."""
        given: dict[str, object] = {
            "bootstrap_servers": self.cluster.sasl_bootstrap_servers, "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-512", "sasl_username": self.username,
            "sasl_password": self.password if password is None else password,
            "ssl_ca_location": str(self.cluster.ca_file)}
        return KafkaSettings(**{**given, **fields})  # type: ignore[arg-type]

    def sasl_env(self, password: str | None = None) -> dict[str, str]:
        """The same as STREAMSCRIBE_KAFKA__* variables, for a stack or a worker started against this cluster."""
        return {"STREAMSCRIBE_KAFKA__BOOTSTRAP_SERVERS": self.cluster.sasl_bootstrap_servers,
                "STREAMSCRIBE_KAFKA__BROKER": "apache",
                "STREAMSCRIBE_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
                "STREAMSCRIBE_KAFKA__SASL_MECHANISM": "SCRAM-SHA-512",
                "STREAMSCRIBE_KAFKA__SASL_USERNAME": self.username,
                "STREAMSCRIBE_KAFKA__SASL_PASSWORD": self.password if password is None else password,
                "STREAMSCRIBE_KAFKA__SSL_CA_LOCATION": str(self.cluster.ca_file)}


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
