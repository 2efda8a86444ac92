"""A local Apache Kafka cluster in KRaft mode, run from the jars Maven copied into the project's cache.

Every node is a combined broker and controller, ``java -cp <libs>/* kafka.Kafka server.properties`` on loopback,
its storage formatted first with ``kafka.tools.StorageTool`` from the same jars (``kafka/pom.xml``; ``make kafka``
puts them in ``.cache/kafka/libs``). The defaults are those of a small production cluster: 3 nodes, replication
factor 3 and ``min.insync.replicas`` 2, the same for the consumer-offsets and transaction-state topics, so losing
one node loses no acknowledged write. With SCRAM users given, each node also listens for SASL_SSL clients: the
users are written into the metadata when the storage is formatted, and TLS uses a CA and a broker certificate
made here (``streamscribe.stack.certificates``).

Layout under ``root``: ``cluster.json`` (cluster id and each node's ports, reused at the next start while they
are free, so that a cluster stopped and started again keeps its addresses), ``log4j2.properties``,
``node-<id>/server.properties``, ``node-<id>/data`` (metadata and topic logs), ``tls/`` (CA and broker
certificate); each node's output goes to ``<logs>/kafka-<id>.log``.

Every JVM here (nodes and the storage tool) runs with the client compiler only and the serial collector, and maps
the class-data-sharing archive ``make kafka`` writes beside the jars (``streamscribe.stack.kafka_archive``) when it
is there. This cluster runs on a developer's or CI's machine for minutes to hours at a few hundred requests a
second, where the server compiler never pays for itself: measured on 2 cores (BENCHMARKS.md, "The test suite's
CPU"), the server compiler's thread took more than half of a node's CPU through the integration suite, and a
3-node cluster's start took 31 CPU seconds with the JVM's server defaults against 10 with these settings.
A production cluster (the ``apache/kafka`` image of docker-compose.kafka.yml, Strimzi) keeps its own JVM settings.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from foundation.logs import get_logger
from foundation.settings import KafkaSettings
from streams.kafka.clients import admin_client
from streamscribe.stack.certificates import CertificateFiles, issue_server_certificate, make_ca
from streamscribe.stack.ports import free_port, is_free

log = get_logger(__name__)

REPO = Path(__file__).resolve().parents[2]
DEFAULT_LIBS = REPO / ".cache" / "kafka" / "libs"
KAFKA_MAIN = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"
SCRAM_MECHANISM = "SCRAM-SHA-512"
HOST = "127.0.0.1"
# Characters the storage tool's --add-scram syntax ("[name=...,password=...]") takes without quoting.
_SCRAM_SAFE = re.compile(r"^[A-Za-z0-9_.~-]+$")
# Internal topics get fewer partitions than Kafka's default 50: this cluster shares a small machine.
INTERNAL_TOPIC_PARTITIONS = 12

LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = out
# every client, admin and broker configuration is printed at INFO: keep those out of the node logs
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = WARN
"""


class KafkaClusterError(RuntimeError):
    """The cluster could not be set up, started or reached; the message says why and where the logs are."""


@dataclass(frozen=True)
class ClusterSpec:
    brokers: int = 3
    replication_factor: int = 3
    min_insync_replicas: int = 2
    partitions: int = 4
    heap: str = "384m"
    # username -> password; when given, every node also has a SASL_SSL listener for SCRAM-SHA-512 clients
    scram_users: Mapping[str, str] = field(default_factory=dict)
    # a node that stops heartbeating (kill -9) is fenced, and its partitions led elsewhere, after this long.
    # Kafka's default: shorter ones fence a node that is merely slow on a loaded machine (a node restarting with
    # a few hundred partitions to load was fenced again and again at 4 s with 30 runnable processes on 2 cores)
    broker_session_timeout_ms: int = 9000
    # more options for each node's JVM (kafka_archive: where to write the class archive at exit)
    jvm_options: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.brokers < 1:
            raise ValueError("a cluster needs at least one broker")
        if not 1 <= self.replication_factor <= self.brokers:
            raise ValueError(f"replication factor {self.replication_factor} needs 1..{self.brokers} brokers")
        if not 1 <= self.min_insync_replicas <= self.replication_factor:
            raise ValueError("min.insync.replicas must be between 1 and the replication factor")
        for name, password in self.scram_users.items():
            if not (_SCRAM_SAFE.match(name) and _SCRAM_SAFE.match(password)):
                raise ValueError(f"SCRAM user {name!r}: names and passwords may use only letters, digits and _.~-")

    @property
    def sasl_ssl(self) -> bool:
        return bool(self.scram_users)


@dataclass
class Node:
    node_id: int
    port: int  # PLAINTEXT: clients on loopback and replication between brokers
    controller_port: int
    sasl_port: int | None  # SASL_SSL clients, when the cluster has SCRAM users
    directory: Path
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    @property
    def properties_path(self) -> Path:
        return self.directory / "server.properties"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def formatted(self) -> bool:
        return (self.data_dir / "meta.properties").exists()


def server_properties(spec: ClusterSpec, node: Node, voters: str, keystore: Path | None) -> dict[str, str]:
    """The ``server.properties`` of one combined broker+controller node."""
    listeners = [f"PLAINTEXT://{HOST}:{node.port}", f"CONTROLLER://{HOST}:{node.controller_port}"]
    advertised = [f"PLAINTEXT://{HOST}:{node.port}"]
    protocols = ["PLAINTEXT:PLAINTEXT", "CONTROLLER:PLAINTEXT"]
    props = {
        "process.roles": "broker,controller",
        "node.id": str(node.node_id),
        "controller.quorum.voters": voters,
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(node.data_dir),
        "num.partitions": str(spec.partitions),
        "default.replication.factor": str(spec.replication_factor),
        "min.insync.replicas": str(spec.min_insync_replicas),
        "offsets.topic.replication.factor": str(spec.replication_factor),
        "offsets.topic.num.partitions": str(INTERNAL_TOPIC_PARTITIONS),
        "transaction.state.log.replication.factor": str(spec.replication_factor),
        "transaction.state.log.min.isr": str(spec.min_insync_replicas),
        "transaction.state.log.num.partitions": str(INTERNAL_TOPIC_PARTITIONS),
        "share.coordinator.state.topic.replication.factor": str(spec.replication_factor),
        "share.coordinator.state.topic.min.isr": str(spec.min_insync_replicas),
        "unclean.leader.election.enable": "false",
        # the platform creates its topics explicitly (streams.kafka.admin.ensure_topics)
        "auto.create.topics.enable": "false",
        "group.initial.rebalance.delay.ms": "0",
        "broker.session.timeout.ms": str(spec.broker_session_timeout_ms),
        "broker.heartbeat.interval.ms": str(max(250, spec.broker_session_timeout_ms * 2 // 9)),
        # a small machine: few threads, and a log cleaner (compaction) that fits a small heap
        "num.network.threads": "2",
        "num.io.threads": "4",
        "num.recovery.threads.per.data.dir": "1",
        "log.cleaner.threads": "1",
        "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
    }
    if spec.sasl_ssl:
        if keystore is None or node.sasl_port is None:
            raise ValueError("SASL_SSL needs a keystore and a port")
        listeners.append(f"SASL_SSL://{HOST}:{node.sasl_port}")
        advertised.append(f"SASL_SSL://{HOST}:{node.sasl_port}")
        protocols.append("SASL_SSL:SASL_SSL")
        props.update({
            "sasl.enabled.mechanisms": SCRAM_MECHANISM,
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config":
                "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            "listener.name.sasl_ssl.ssl.keystore.type": "PEM",
            "listener.name.sasl_ssl.ssl.keystore.location": str(keystore),
        })
    props.update({
        "listeners": ",".join(listeners),
        "advertised.listeners": ",".join(advertised),
        "listener.security.protocol.map": ",".join(protocols),
    })
    return props


def render_properties(props: Mapping[str, str]) -> str:
    """Java properties text (backslashes escaped; the values here hold no newlines)."""
    return "".join(f"{k}={v.replace(chr(92), chr(92) * 2)}\n" for k, v in props.items())


def new_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding, never starting with '-'."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def java_binary() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    found = shutil.which("java")
    if not found:
        raise KafkaClusterError("Java 17 or newer is needed to run Apache Kafka "
                                "(apt-get install openjdk-17-jre-headless)")
    return found


def class_archive(libs: Path) -> Path:
    """Where ``make kafka`` writes the class-data-sharing archive of the jars in ``libs``."""
    return libs.parent / "classes.jsa"


def check_libs(libs: Path) -> None:
    if not any(libs.glob("kafka_2.13-*.jar")) or not any(libs.glob("kafka-storage-*.jar")):
        raise KafkaClusterError(f"Apache Kafka's jars are not in {libs}: run `make kafka` (part of `make setup`)")


class KafkaCluster:
    """Start, stop, kill and restart the nodes of a local KRaft cluster (see the module docstring)."""

    def __init__(self, root: Path, spec: ClusterSpec | None = None, libs: Path = DEFAULT_LIBS,
                 logs: Path | None = None) -> None:
        self.root = root.resolve()
        self.spec = spec or ClusterSpec()
        self.libs = libs.resolve()
        self.logs = (logs or self.root / "logs").resolve()
        self.nodes: dict[int, Node] = {}
        self.ca: CertificateFiles | None = None
        self.cluster_id = ""

    # -- addresses -----------------------------------------------------------------------------------
    @property
    def bootstrap_servers(self) -> str:
        return ",".join(f"{HOST}:{n.port}" for n in self.nodes.values())

    @property
    def sasl_bootstrap_servers(self) -> str:
        if not self.spec.sasl_ssl:
            raise KafkaClusterError("this cluster has no SASL_SSL listeners (no SCRAM users were given)")
        return ",".join(f"{HOST}:{n.sasl_port}" for n in self.nodes.values())

    @property
    def ca_file(self) -> Path:
        """The CA certificate (PEM) that SASL_SSL clients trust."""
        if self.ca is None:
            raise KafkaClusterError("this cluster has no TLS listeners (no SCRAM users were given)")
        return self.ca.cert

    def describe(self) -> list[dict[str, Any]]:
        """One entry per node, for status output and the stack file."""
        return [self.describe_node(n) for n in self.nodes]

    def describe_node(self, node_id: int) -> dict[str, Any]:
        n = self.nodes[node_id]
        return {"node_id": n.node_id, "pid": n.proc.pid if n.proc else None, "alive": n.alive,
                "bootstrap": f"{HOST}:{n.port}", "controller": f"{HOST}:{n.controller_port}",
                "sasl_ssl": f"{HOST}:{n.sasl_port}" if n.sasl_port else None, "log": str(n.log_path)}

    # -- lifecycle -----------------------------------------------------------------------------------
    def start(self, timeout: float = 300) -> None:
        """Write the configuration, format storage that is not formatted yet, start every node and wait until
        the metadata lists all brokers. Raises KafkaClusterError with the log's tail if that does not happen."""
        check_libs(self.libs)
        self.root.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        self.cluster_id = self._cluster_id()
        (self.root / "log4j2.properties").write_text(LOG4J2)
        self._plan_nodes()
        keystore = self._make_tls() if self.spec.sasl_ssl else None
        voters = ",".join(f"{n.node_id}@{HOST}:{n.controller_port}" for n in self.nodes.values())
        for node in self.nodes.values():
            node.directory.mkdir(parents=True, exist_ok=True)
            node.properties_path.write_text(render_properties(server_properties(self.spec, node, voters, keystore)))
        self._format([n for n in self.nodes.values() if not n.formatted])
        started = time.monotonic()
        try:
            for node in self.nodes.values():
                self._launch(node)
            self.wait_brokers(set(self.nodes), timeout)
        except BaseException:
            self.stop()
            raise
        log.info("kafka cluster ready", brokers=len(self.nodes), bootstrap=self.bootstrap_servers,
                 seconds=round(time.monotonic() - started, 1))

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM every running node (a clean shutdown), SIGKILL those still running after ``timeout``."""
        running = [n for n in self.nodes.values() if n.alive]
        for node in running:
            assert node.proc is not None
            node.proc.terminate()
        deadline = time.monotonic() + timeout
        for node in running:
            assert node.proc is not None
            try:
                node.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("kafka node did not stop in time; killing it", node=node.node_id)
                node.proc.kill()
                node.proc.wait()

    def kill(self, node_id: int) -> int:
        """``kill -9`` one node (no clean shutdown); returns its pid."""
        node = self.nodes[node_id]
        if node.proc is None or not node.alive:
            raise KafkaClusterError(f"kafka node {node_id} is not running")
        node.proc.send_signal(signal.SIGKILL)
        node.proc.wait()
        return node.proc.pid

    def restart(self, node_id: int, timeout: float = 300) -> None:
        """Start a stopped or killed node again on its ports and data, and wait until it is a broker again."""
        node = self.nodes[node_id]
        if node.alive:
            raise KafkaClusterError(f"kafka node {node_id} is still running")
        self._launch(node)
        self.wait_brokers({n.node_id for n in self.nodes.values() if n.alive}, timeout)

    def launch(self, node_id: int) -> subprocess.Popen[bytes]:
        """Start one node of a prepared cluster again (a supervisor restarting a dead node); see ``rejoined``."""
        node = self.nodes[node_id]
        self._launch(node)
        assert node.proc is not None
        return node.proc

    def rejoined(self, node_id: int, timeout: float) -> bool:
        """Wait until the node is a broker of the cluster again (in the metadata); False if it exits or the time
        runs out."""
        try:
            self.wait_brokers({n.node_id for n in self.nodes.values() if n.alive} | {node_id}, timeout)
        except KafkaClusterError as exc:
            log.warning("kafka node not back yet", node=node_id, error=str(exc).splitlines()[0])
            return False
        return True

    def wait_brokers(self, expected: set[int], timeout: float = 60) -> None:
        """Wait until the cluster metadata lists exactly the brokers ``expected`` (a killed one leaves it once
        fenced). Fails early, with the log's tail, if a node that should be running exited."""
        # quiet: refused connections are expected until the nodes listen (their logs say what went wrong)
        admin = admin_client(KafkaSettings(bootstrap_servers=self.bootstrap_servers), "kafka-cluster-probe",
                             quiet=True)
        deadline = time.monotonic() + timeout
        seen: set[int] = set()
        while time.monotonic() < deadline:
            for node_id in expected:
                if not self.nodes[node_id].alive:
                    raise KafkaClusterError(f"kafka node {node_id} exited:\n{self.log_tail(node_id)}")
            try:
                seen = set(admin.list_topics(timeout=2).brokers)
            except Exception:  # no broker answers yet: keep waiting
                seen = set()
            if seen == expected:
                return
            time.sleep(0.2)
        tails = "\n".join(self.log_tail(n) for n in sorted(expected))
        raise KafkaClusterError(f"brokers {sorted(expected)} were not all in the metadata after {timeout:.0f} s "
                                f"(seen: {sorted(seen)}); logs in {self.logs}\n{tails}")

    def log_tail(self, node_id: int, chars: int = 3000) -> str:
        path = self.nodes[node_id].log_path
        text = path.read_text(errors="replace") if path.exists() else "(no log)"
        return f"--- {path.name}\n{text[-chars:]}"

    def __enter__(self) -> KafkaCluster:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- steps ---------------------------------------------------------------------------------------
    def _saved(self) -> dict[str, Any]:
        path = self.root / "cluster.json"
        return dict(json.loads(path.read_text())) if path.exists() else {}

    def _cluster_id(self) -> str:
        saved = self._saved()
        if "cluster_id" in saved:
            return str(saved["cluster_id"])
        cid = new_cluster_id()
        (self.root / "cluster.json").write_text(json.dumps({"cluster_id": cid}))
        return cid

    def _plan_nodes(self) -> None:
        """Node ids 1..N, each with distinct free loopback ports: those of the last start while they are free
        (kept across restarts of a node, and across a stop and start of the cluster)."""
        saved = self._saved()
        before: dict[str, list[int | None]] = saved.get("ports", {})
        taken: set[int] = set()

        def port(wanted: int | None) -> int:
            if wanted and wanted not in taken and is_free(wanted, HOST):
                taken.add(wanted)
                return wanted
            while True:
                p = free_port()
                if p not in taken:
                    taken.add(p)
                    return p

        self.nodes = {}
        for node_id in range(1, self.spec.brokers + 1):
            old = before.get(str(node_id), [None, None, None])
            self.nodes[node_id] = Node(node_id, port(old[0]), port(old[1]),
                                       port(old[2]) if self.spec.sasl_ssl else None,
                                       self.root / f"node-{node_id}", self.logs / f"kafka-{node_id}.log")
        saved["ports"] = {str(n.node_id): [n.port, n.controller_port, n.sasl_port] for n in self.nodes.values()}
        (self.root / "cluster.json").write_text(json.dumps(saved))

    def _make_tls(self) -> Path:
        """A CA and one broker certificate for the loopback names; returns the PEM keystore (key + chain)."""
        tls = self.root / "tls"
        self.ca = make_ca(tls, "streamscribe kafka CA")
        broker = issue_server_certificate(self.ca, tls, "broker", [HOST, "localhost"])
        keystore = tls / "broker-keystore.pem"
        fd = os.open(keystore, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(broker.key.read_bytes() + broker.cert.read_bytes())
        return keystore

    def _java(self, main: str, *args: str, heap: str, node: bool = True) -> list[str]:
        """The command of one JVM on the jars (see the module docstring); ``node``: a node, with the spec's own
        JVM options, not a tool."""
        archive = class_archive(self.libs)
        shared = [f"-XX:SharedArchiveFile={archive}"] if archive.exists() else []  # a stale one is ignored
        return [java_binary(), f"-Xmx{heap}", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", *shared,
                *(self.spec.jvm_options if node else ()), "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={self.root / 'log4j2.properties'}",
                "-cp", f"{self.libs}/*", main, *args]

    def _format(self, nodes: list[Node]) -> None:
        """Format the nodes' storage in parallel, with the cluster id and the SCRAM users (bootstrap records)."""
        scram: list[str] = []
        for name, password in self.spec.scram_users.items():
            scram += ["--add-scram", f"{SCRAM_MECHANISM}=[name={name},password={password}]"]
        procs = [(node, subprocess.Popen(
            self._java(STORAGE_TOOL, "format", "-t", self.cluster_id, "-c", str(node.properties_path), *scram,
                       heap="128m", node=False),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)) for node in nodes]
        for node, proc in procs:
            out, _ = proc.communicate(timeout=120)
            if proc.returncode != 0:
                tail = out.decode(errors="replace")[-3000:]
                raise KafkaClusterError(f"formatting node {node.node_id} failed:\n{tail}")

    def _launch(self, node: Node) -> None:
        with open(node.log_path, "ab") as logf:
            node.proc = subprocess.Popen(self._java(KAFKA_MAIN, str(node.properties_path), heap=self.spec.heap),
                                         stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
        log.info("kafka node started", node=node.node_id, pid=node.proc.pid, port=node.port)
