"""The local Apache Kafka cluster's configuration and certificates (no JVM started here; the cluster itself is
tested in tests/integration/test_kafka_cluster.py)."""

from __future__ import annotations

import base64
import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature

from streamscribe.stack.certificates import issue_server_certificate, make_ca
from streamscribe.stack.kafka_cluster import (
    ClusterSpec,
    KafkaCluster,
    KafkaClusterError,
    Node,
    check_libs,
    class_archive,
    new_cluster_id,
    render_properties,
    server_properties,
)


def node(tmp_path: Path, sasl_port: int | None = None) -> Node:
    return Node(2, 21002, 22002, sasl_port, tmp_path / "node-2", tmp_path / "logs" / "kafka-2.log")


def test_spec_refuses_what_a_cluster_cannot_do() -> None:
    with pytest.raises(ValueError, match="replication factor"):
        ClusterSpec(brokers=1, replication_factor=3)
    with pytest.raises(ValueError, match=r"min\.insync\.replicas"):
        ClusterSpec(brokers=3, replication_factor=3, min_insync_replicas=4)
    with pytest.raises(ValueError, match="SCRAM user"):
        ClusterSpec(scram_users={"alice": "pass,word]"})


def test_node_properties_replicate_three_ways_with_two_in_sync(tmp_path: Path) -> None:
    props = server_properties(ClusterSpec(), node(tmp_path), "1@127.0.0.1:22001,2@127.0.0.1:22002", None)
    assert props["process.roles"] == "broker,controller" and props["node.id"] == "2"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:21002,CONTROLLER://127.0.0.1:22002"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:21002"
    for key in ("default.replication.factor", "offsets.topic.replication.factor",
                "transaction.state.log.replication.factor"):
        assert props[key] == "3", key
    assert props["min.insync.replicas"] == "2" and props["transaction.state.log.min.isr"] == "2"
    assert props["auto.create.topics.enable"] == "false"
    assert props["log.dirs"] == str(tmp_path / "node-2" / "data")
    assert not any(k.startswith("listener.name.sasl_ssl") for k in props)


def test_sasl_ssl_listener_uses_scram_and_a_pem_keystore(tmp_path: Path) -> None:
    spec = ClusterSpec(scram_users={"streamscribe": "s3cret"})
    props = server_properties(spec, node(tmp_path, 23002), "2@127.0.0.1:22002", tmp_path / "ks.pem")
    assert props["listeners"].endswith(",SASL_SSL://127.0.0.1:23002")
    assert "SASL_SSL://127.0.0.1:23002" in props["advertised.listeners"]
    assert "SASL_SSL:SASL_SSL" in props["listener.security.protocol.map"]
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["listener.name.sasl_ssl.ssl.keystore.type"] == "PEM"
    assert props["listener.name.sasl_ssl.ssl.keystore.location"] == str(tmp_path / "ks.pem")
    assert props["inter.broker.listener.name"] == "PLAINTEXT"  # brokers replicate on loopback without SASL
    with pytest.raises(ValueError, match="keystore"):
        server_properties(spec, node(tmp_path, 23002), "2@127.0.0.1:22002", None)


def test_properties_text_escapes_backslashes() -> None:
    assert render_properties({"a": "x", "log.dirs": "C:\\data"}) == "a=x\nlog.dirs=C:\\\\data\n"


def test_cluster_ids_are_kafka_uuids() -> None:
    for _ in range(200):
        cid = new_cluster_id()
        assert len(cid) == 22 and not cid.startswith("-")
        assert len(base64.urlsafe_b64decode(cid + "==")) == 16


def test_missing_jars_say_how_to_get_them(tmp_path: Path) -> None:
    with pytest.raises(KafkaClusterError, match="make kafka"):
        check_libs(tmp_path)


def test_server_certificate_is_signed_by_the_ca_for_loopback(tmp_path: Path) -> None:
    ca = make_ca(tmp_path / "tls")
    server = issue_server_certificate(ca, tmp_path / "tls", "broker", ["127.0.0.1", "localhost"])
    ca_cert, _ = ca.load()
    chain = x509.load_pem_x509_certificates(server.cert.read_bytes())
    assert [c.subject for c in chain] == [chain[0].subject, ca_cert.subject]  # leaf, then the CA
    chain[0].verify_directly_issued_by(ca_cert)
    other_ca, _ = make_ca(tmp_path / "other").load()
    with pytest.raises((ValueError, InvalidSignature)):  # another CA's name, or its signature, does not match
        chain[0].verify_directly_issued_by(other_ca)
    san = chain[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert stat.S_IMODE(server.key.stat().st_mode) == 0o600
    with pytest.raises(ValueError, match="at least one host"):
        issue_server_certificate(ca, tmp_path / "tls", "nohost", [])


def test_every_jvm_uses_the_client_compiler_and_maps_the_class_archive_when_there(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("streamscribe.stack.kafka_cluster.java_binary", lambda: "java")
    libs = tmp_path / "kafka" / "libs"
    libs.mkdir(parents=True)
    cluster = KafkaCluster(tmp_path / "c", ClusterSpec(jvm_options=("-XX:ArchiveClassesAtExit=/x.jsa",)), libs=libs)
    node, tool = cluster._java("kafka.Kafka", "p", heap="1m"), cluster._java("T", heap="1m", node=False)
    for cmd in (node, tool):
        assert "-XX:TieredStopAtLevel=1" in cmd and "-XX:+UseSerialGC" in cmd
        assert not any(a.startswith("-XX:SharedArchiveFile") for a in cmd)  # none made yet
    assert "-XX:ArchiveClassesAtExit=/x.jsa" in node and "-XX:ArchiveClassesAtExit=/x.jsa" not in tool
    class_archive(libs).write_bytes(b"archive")
    for cmd in (cluster._java("kafka.Kafka", "p", heap="1m"), cluster._java("T", heap="1m", node=False)):
        assert f"-XX:SharedArchiveFile={class_archive(libs)}" in cmd
        assert cmd.index(f"-XX:SharedArchiveFile={class_archive(libs)}") < cmd.index("-cp")
