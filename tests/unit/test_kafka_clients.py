"""Kafka connection settings -> librdkafka properties (streams.kafka.clients), and the clients built from them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from foundation.settings import KafkaSettings, Settings
from streams.kafka.admin import new_topic_partitions
from streams.kafka.clients import (
    admin_client,
    connection_config,
    describe,
    publisher_producer,
    reader_consumer,
    restore_consumer,
    stage_consumer,
    stage_producer,
)

SASL_ENV = {
    "STREAMSCRIBE_KAFKA__BOOTSTRAP_SERVERS": "kafka-0.example:9093,kafka-1.example:9093",
    "STREAMSCRIBE_KAFKA__SECURITY_PROTOCOL": "sasl_ssl",
    "STREAMSCRIBE_KAFKA__SASL_MECHANISM": "scram-sha-512",
    "STREAMSCRIBE_KAFKA__SASL_USERNAME": "streamscribe",
    "STREAMSCRIBE_KAFKA__SASL_PASSWORD": "pa55-word",
    "STREAMSCRIBE_KAFKA__SSL_CA_LOCATION": "/etc/kafka/ca.pem",
    "STREAMSCRIBE_KAFKA__SSL_CERTIFICATE_LOCATION": "/etc/kafka/client.pem",
    "STREAMSCRIBE_KAFKA__SSL_KEY_LOCATION": "/etc/kafka/client.key",
    "STREAMSCRIBE_KAFKA__SSL_KEY_PASSWORD": "key-pa55",
    "STREAMSCRIBE_KAFKA__CLIENT_CONFIG": '{"ssl.cipher.suites": "ECDHE-RSA-AES256-GCM-SHA384"}',
}


def test_the_environment_names_of_the_deployment_map_to_librdkafka(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SASL_ENV.items():
        monkeypatch.setenv(name, value)
    kafka = Settings().kafka
    assert connection_config(kafka) == {
        "bootstrap.servers": "kafka-0.example:9093,kafka-1.example:9093",
        "security.protocol": "sasl_ssl",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "streamscribe",
        "sasl.password": "pa55-word",
        "ssl.ca.location": "/etc/kafka/ca.pem",
        "ssl.certificate.location": "/etc/kafka/client.pem",
        "ssl.key.location": "/etc/kafka/client.key",
        "ssl.key.password": "key-pa55",
        "ssl.endpoint.identification.algorithm": "https",
        "ssl.cipher.suites": "ECDHE-RSA-AES256-GCM-SHA384",
    }
    # secrets stay out of reprs and of what is logged
    assert "pa55" not in repr(kafka) and "pa55" not in str(describe(kafka))
    assert describe(kafka)["sasl_username"] == "streamscribe"


def test_plaintext_is_the_default_and_carries_no_security_properties() -> None:
    assert connection_config(KafkaSettings(bootstrap_servers="b:9092")) == {
        "bootstrap.servers": "b:9092", "security.protocol": "plaintext"}


@pytest.mark.parametrize(("fields", "message"), [
    ({"security_protocol": "SASL_SSL"}, "needs a sasl_mechanism"),
    ({"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN", "sasl_username": "u"},
     "needs sasl_username and sasl_password"),
    ({"sasl_username": "u", "sasl_password": "p"}, "security_protocol is PLAINTEXT"),
    ({"ssl_ca_location": "/ca.pem"}, "use SSL"),
    ({"security_protocol": "SSL", "ssl_certificate_location": "/c.pem"}, "needs both"),
    ({"security_protocol": "TLS"}, "SASL_SSL"),
    ({"security_protocol": "SASL_SSL", "sasl_mechanism": "GSSAPI"}, "SCRAM-SHA-512"),
])
def test_settings_that_cannot_work_are_refused_when_they_load(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        KafkaSettings(**fields)


def test_connection_properties_come_only_from_the_typed_settings() -> None:
    kafka = KafkaSettings(client_config={"sasl.password": "sneaky", "linger.ms": "20"})
    with pytest.raises(ValueError, match=r"sasl\.password"):
        connection_config(kafka)


FACTORIES: dict[str, Callable[[KafkaSettings], Any]] = {
    "stage producer": lambda k: stage_producer(k, "t"),
    "publisher producer": lambda k: publisher_producer(k, "t"),
    "stage consumer": lambda k: stage_consumer(k, "streamscribe-vad", "t"),
    "restore consumer": lambda k: restore_consumer(k, "streamscribe-vad", "t"),
    "reader consumer": lambda k: reader_consumer(k, "tail-x"),
    "admin client": lambda k: admin_client(k),
}


@pytest.mark.parametrize("factory", FACTORIES.values(), ids=FACTORIES.keys())
def test_librdkafka_accepts_every_client_with_sasl(factory: Callable[[KafkaSettings], Any]) -> None:
    """librdkafka refuses an unknown or malformed property when a client is made; nothing connects here."""
    kafka = KafkaSettings(bootstrap_servers="127.0.0.1:1", security_protocol="SASL_PLAINTEXT",
                          sasl_mechanism="SCRAM-SHA-256", sasl_username="u", sasl_password="p",
                          client_config={"socket.connection.setup.timeout.ms": "1000"})
    client = factory(kafka)
    if hasattr(client, "close"):
        client.close()


def test_the_broker_picks_its_defaults_and_an_explicit_value_wins() -> None:
    tansu, apache = KafkaSettings(broker="tansu"), KafkaSettings(broker="apache")
    # the embedded broker reads every partition's watermark on every fetch: one partition a topic there
    assert (tansu.partitions, tansu.fetch_wait_max_ms, tansu.processing_guarantee) == (1, 50, "at_least_once")
    assert (apache.partitions, apache.fetch_wait_max_ms, apache.processing_guarantee) == (4, 500, "exactly_once")
    assert KafkaSettings(broker="tansu", partitions=4).partitions == 4


def test_a_topic_made_after_others_gets_as_many_partitions_as_they_have() -> None:
    tansu = KafkaSettings(broker="tansu")
    assert new_topic_partitions(tansu, []) == 1  # a new embedded stack
    assert new_topic_partitions(tansu, [4, 4, 4]) == 4  # one made when the embedded default was 4 stays co-partitioned
    assert new_topic_partitions(KafkaSettings(broker="apache", partitions=8), [4, 4]) == 8


def test_embedded_topics_get_a_partition_for_each_worker_of_the_busiest_stage() -> None:
    def partitions(broker: str, workers: dict[str, int]) -> int:
        return Settings.model_validate({"kafka": {"broker": broker}, "embedded": {"workers": workers}}).kafka.partitions

    assert partitions("tansu", {"asr": 2, "vad": 3}) == 3
    assert partitions("tansu", {}) == 1
    assert partitions("apache", {"asr": 2, "vad": 3}) == 4
