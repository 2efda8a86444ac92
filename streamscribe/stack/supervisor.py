"""Run the embedded stack: broker, PostgreSQL, every pipeline stage as its own process, and the gateway.

The broker is Tansu on the stack's own SeaweedFS (``streamscribe up``, at-least-once), or with ``--kafka apache``
a KRaft cluster of Apache Kafka nodes from the jars in ``.cache/kafka/libs`` (``streamscribe.stack.kafka_cluster``:
3 nodes, replication factor 3, ``min.insync.replicas`` 2; exactly-once), or a cluster named by
``STREAMSCRIBE_KAFKA__BOOTSTRAP_SERVERS``. The supervisor restarts a worker that dies (a crash or a ``kill -9``)
with a short backoff, the way systemd or Kubernetes would, and so it does every infrastructure process: object
storage, broker, each Apache Kafka node, PostgreSQL (``streamscribe.stack.services``). It writes what it runs to
``<home>/stack.json`` for ``down``, ``status`` and the other commands.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from connectors.storage import spool
from foundation.logs import get_logger
from foundation.settings import Settings
from streamscribe.stack import broker, postgres, retention, seaweed
from streamscribe.stack.kafka_cluster import ClusterSpec, KafkaCluster
from streamscribe.stack.liveness import Watchdog
from streamscribe.stack.ports import free_port, wait_for_port
from streamscribe.stack.seaweed import Seaweed
from streamscribe.stack.services import Service, tend
from streamscribe.stack.state import stack_file

log = get_logger(__name__)

# how often the supervisor looks at its processes: a crash is noticed this late (its restart waits a backoff of
# 0.5 s or more anyway); longer than 0.2 s, so that an idle stack's supervisor stays idle
SUPERVISE_S = 0.5


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    restart: bool = True
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    backoff: float = 0.5
    started_at: float = 0.0
    started_wall: float = 0.0  # the same moment as seconds since the epoch (stack.json; the reconciler reads the
    # gateway's: live sessions older than it were cut)
    extra: dict[str, Any] = field(default_factory=dict)

    def start(self) -> None:
        with open(self.log_path, "ab") as logf:
            self.proc = subprocess.Popen(self.argv, env=self.env, stdout=logf, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        self.started_at = time.monotonic()
        self.started_wall = time.time()
        log.info("started", child=self.name, pid=self.proc.pid)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None


KafkaKind = str  # "tansu" (the embedded default) or "apache"
SECRET_KAFKA_SETTINGS = frozenset({"STREAMSCRIBE_KAFKA__SASL_PASSWORD", "STREAMSCRIBE_KAFKA__SSL_KEY_PASSWORD"})


def kafka_environment(kind: KafkaKind, brokers: int, given: dict[str, str]) -> dict[str, str]:
    """The ``STREAMSCRIBE_KAFKA__*`` settings the stack's processes get for its broker, where the environment
    (``given``) does not set them already. Tansu's client workarounds and its at-least-once guarantee come with
    ``broker=tansu`` (foundation.settings.BROKER_DEFAULTS); on Apache Kafka the stack asks for exactly-once, three
    replicas (as many as there are brokers, up to 3) and static group membership (its workers have stable
    names, so a restarted worker takes its partitions back without a rebalance)."""
    wanted = {"STREAMSCRIBE_KAFKA__BROKER": kind}
    if kind == "apache":
        wanted.update({"STREAMSCRIBE_KAFKA__PROCESSING_GUARANTEE": "exactly_once",
                       "STREAMSCRIBE_KAFKA__REPLICATION_FACTOR": str(min(3, brokers)),
                       "STREAMSCRIBE_KAFKA__STATIC_MEMBERSHIP": "true"})
    return {k: v for k, v in wanted.items() if k not in given}


class Supervisor:
    def __init__(self, settings: Settings, gateway_port: int, kafka: KafkaKind = "tansu", brokers: int = 3) -> None:
        self.settings = settings
        self.home = settings.home.resolve()
        self.gateway_port = gateway_port
        self.kafka = kafka
        self.brokers = brokers
        self.cluster: KafkaCluster | None = None
        self.logs = self.home / "logs"
        self.children: list[Child] = []
        self.infra: dict[str, Service] = {}
        self.seaweed: Seaweed | None = None
        self.stopping = False
        self.retention: retention.Sweeper | None = None
        self.watchdog: Watchdog | None = None
        self.info: dict[str, Any] = {}

    # -- start ---------------------------------------------------------------------------------------
    def start(self) -> None:
        # the stage modules load their model libraries: imported when a stack starts, not by every CLI command
        from streams.stages.registry import names
        from streamscribe.provision import provision_topics

        self.logs.mkdir(parents=True, exist_ok=True)
        self.settings.storage_root.mkdir(parents=True, exist_ok=True)
        cleared = spool.clear_root(self.settings.spool_root)  # what a crash left: no plaintext survives an up
        if cleared:
            log.warning("removed transient files left by a previous run", count=cleared)
        env = {**os.environ, "STREAMSCRIBE_HOME": str(self.home), "STREAMSCRIBE_PROFILE": "embedded"}

        bootstrap = os.environ.get("STREAMSCRIBE_KAFKA__BOOTSTRAP_SERVERS")
        if bootstrap:  # someone else's cluster: its kind from the settings (Apache Kafka unless told otherwise)
            self.kafka = self.settings.kafka.broker
        elif self.kafka == "apache":
            bootstrap = self._start_kafka_cluster()
        else:
            bootstrap = self._start_broker()
        kafka_env = {**kafka_environment(self.kafka, self.brokers, env),
                     "STREAMSCRIBE_KAFKA__BOOTSTRAP_SERVERS": bootstrap}
        env.update(kafka_env)
        # the supervisor's own clients (topics) read the same settings as its children
        os.environ.update(kafka_env)
        self.settings.kafka = Settings().kafka

        database_url = self.settings.database_url or os.environ.get("DATABASE_URL", "")
        if not database_url:
            database_url = self._start_postgres()
        env["STREAMSCRIBE_DATABASE_URL"] = database_url

        from repositories.migrate import apply_migrations

        applied = apply_migrations(database_url)
        log.info("database ready", migrations_applied=applied)
        from gateway.auth.bootstrap import bootstrap_admin

        if bootstrap_admin(database_url, self.settings.credentials_file):
            log.info("admin account created", credentials=str(self.settings.credentials_file))
        self.settings.jwt_key()  # one signing key for every gateway of this stack
        self.settings.storage_keys()  # and one storage master key, made before any process needs it
        topics = provision_topics(self.settings, timeout=60)  # created, configured and checked (Apache Kafka)

        health: dict[str, str] = {}
        for stage in names():
            for i in range(1, max(1, self.settings.embedded.workers.get(stage, 1)) + 1):
                name = stage if i == 1 else f"{stage}-{i}"  # also the worker's stable instance name
                port = free_port()
                health[name] = f"http://127.0.0.1:{port}/health"
                self.children.append(Child(
                    name, [sys.executable, "-m", "streamscribe.cli", "worker", stage, "--metrics-port", str(port)],
                    {**env, "STREAMSCRIBE_WORKER__INSTANCE": name}, self.logs / f"{name}.log",
                    extra={"metrics_port": port, "stage": stage},
                ))
        gw_env = {**env, "STREAMSCRIBE_GATEWAY__PORT": str(self.gateway_port),
                  "STREAMSCRIBE_WORKER_HEALTH_URLS": json.dumps(health)}
        self.children.append(Child("gateway", [sys.executable, "-m", "streamscribe.cli", "gateway"], gw_env,
                                   self.logs / "gateway.log"))
        self.children.append(Child("maintenance", [sys.executable, "-m", "streamscribe.cli", "maintenance"], env,
                                   self.logs / "maintenance.log"))
        for child in self.children:
            child.start()
        self.info = {
            "home": str(self.home), "supervisor_pid": os.getpid(), "kafka_bootstrap": bootstrap,
            # what a client of this stack needs to talk to its broker (never a secret)
            "kafka": {"broker": self.kafka, "env": {k: v for k, v in env.items() if k.startswith("STREAMSCRIBE_KAFKA__")
                                                   and k not in SECRET_KAFKA_SETTINGS}},
            "database_url": database_url, "gateway_url": f"http://127.0.0.1:{self.gateway_port}",
            "worker_health": health, "started_at": time.time(), "topics": topics.to_json(),
        }
        self._write_state()
        if self.retention:
            self.retention.start()
        if self.settings.embedded.liveness_timeout_s > 0:
            self.watchdog = Watchdog(self._health_targets, self.settings.embedded.liveness_timeout_s)
            self.watchdog.start()

    def _health_targets(self) -> dict[str, tuple[int, str]]:
        """The running workers and the gateway, with the URL that answers while they run."""
        out = {}
        for child in self.children:
            if child.proc is None or child.proc.poll() is not None:
                continue
            port = child.extra.get("metrics_port") or (self.gateway_port if child.name == "gateway" else None)
            if port:
                out[child.name] = (child.proc.pid, f"http://127.0.0.1:{port}/health")
        return out

    def _service(self, service: Service, *, running: subprocess.Popen[bytes] | None = None) -> None:
        """Supervise ``service``: start it now, or adopt the process ``running`` already started for it."""
        service.max_backoff = self.settings.embedded.max_restart_backoff_s
        self.infra[service.name] = service
        if running is None:
            service.start()
        else:
            service.proc, service.started_at = running, time.monotonic()

    def _start_kafka_cluster(self) -> str:
        """An Apache Kafka KRaft cluster under ``<home>/kafka`` (every node broker and controller); each node is
        then an infrastructure service: a node that dies is started again on its ports and data and counts as
        back once it is a broker of the cluster again. Its address."""
        spec = ClusterSpec(brokers=self.brokers, replication_factor=min(3, self.brokers),
                           min_insync_replicas=min(2, self.brokers), partitions=self.settings.kafka.partitions,
                           jvm_options=tuple(self.settings.embedded.kafka_jvm_options))
        cluster = self.cluster = KafkaCluster(self.home / "kafka", spec, logs=self.logs)
        timeout = self.settings.embedded.kafka_start_timeout_s
        cluster.start(timeout)  # all nodes at once: a node is no broker until a quorum of controllers is up
        for node_id, node in cluster.nodes.items():
            assert node.proc is not None
            launch, ready = partial(cluster.launch, node_id), partial(cluster.rejoined, node_id)
            self._service(Service(f"kafka-{node_id}", launch, ready, ready_timeout=timeout,
                                  extra={"node_id": node_id, "port": node.port,
                                         "controller_port": node.controller_port}),
                          running=node.proc)
        return cluster.bootstrap_servers

    def _start_broker(self) -> str:
        """Object storage for the broker's log (unless it runs in memory), then the broker; its address."""
        port = free_port(19092)
        storage, broker_env = broker.MEMORY, {}
        if self.settings.embedded.broker_storage == "s3":
            access, secret = self.settings.embedded_s3_credentials()
            weed = self.seaweed = Seaweed(self.home / "seaweed", access, secret,
                                          self.settings.embedded.objectstore_memory_limit_mb)
            self._service(Service("objectstore", lambda: weed.start(self.logs / "objectstore.log"), weed.wait_ready,
                                  extra={"endpoint": weed.endpoint, "ports": weed.ports}))
            storage, broker_env = broker.s3_url(seaweed.BUCKET), weed.broker_env()
        self._service(Service(
            "broker", lambda: broker.start(port, self.logs / "broker.log", storage, broker_env),
            lambda timeout: wait_for_port(port, timeout), needs=("objectstore",),
            extra={"port": port, "storage": storage}))
        self.retention = retention.Sweeper(self.settings, self.seaweed) if self.seaweed else None
        return f"127.0.0.1:{port}"

    def _start_postgres(self) -> str:
        pg_port = free_port(15432)
        pgdata = self.home / "pgdata"
        postgres.prepare(pgdata)

        launched: list[int] = []

        def launch() -> subprocess.Popen[bytes]:
            if launched:  # a restart: the old postmaster's whole group is gone (Service.kill), its lock is stale
                (pgdata / "postmaster.pid").unlink(missing_ok=True)
            proc = postgres.start(pgdata, pg_port, self.logs / "postgres.log")
            launched.append(proc.pid)
            return proc

        def ready(timeout: float) -> bool:
            try:
                postgres.wait_ready_and_create_db(pg_port, timeout)
            except Exception as exc:  # whatever the driver raises while the server is not there
                log.warning("postgres not ready", error=str(exc))
                return False
            return True

        self._service(Service("postgres", launch, ready, extra={"port": pg_port}))
        return postgres.url(pg_port)

    def _write_state(self) -> None:
        if self.cluster is not None and "kafka" in self.info:  # each broker: node id, pid, ports, alive, restarts
            self.info["kafka"]["nodes"] = [
                {**self.cluster.describe_node(n), "restarts": self.infra[f"kafka-{n}"].restarts}
                for n in self.cluster.nodes]
        data = {**self.info, "infra": {k: s.state() for k, s in self.infra.items()},
                "children": {c.name: {"pid": c.pid, "restarts": c.restarts, "started_at": c.started_wall, **c.extra}
                             for c in self.children}}
        tmp = stack_file(self.home).with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2))
        os.replace(tmp, stack_file(self.home))

    # -- supervise -----------------------------------------------------------------------------------
    def supervise(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        while not self.stopping:
            changed = False
            for child in self.children:
                proc = child.proc
                now = time.monotonic()
                if proc is None or proc.poll() is None:
                    if now - child.started_at > 60:
                        child.backoff = 0.5  # it has been stable: the next crash restarts quickly again
                    continue
                if child.next_start == 0.0:
                    log.warning("process exited; restarting", child=child.name, code=proc.returncode,
                                backoff=child.backoff)
                    spool.remove_dead(self.settings.spool_root, {proc.pid})  # what it was spooling goes now
                    child.next_start = now + child.backoff
                    child.backoff = min(child.backoff * 2, 10.0)
                elif now >= child.next_start:
                    child.restarts += 1
                    child.next_start = 0.0
                    child.start()
                    changed = True
            if tend(self.infra, time.monotonic()):
                changed = True
            if changed:
                self._write_state()
            time.sleep(SUPERVISE_S)
        self.stop()

    def _on_signal(self, *_: object) -> None:
        self.stopping = True

    def stop(self) -> None:
        self.stopping = True
        if self.watchdog:  # a worker shutting down may stop answering: that is not a hang
            self.watchdog.stop()
        order = [c for c in self.children if c.name == "gateway"] + [c for c in self.children if c.name != "gateway"]
        for child in order:
            if child.proc and child.proc.poll() is None:
                child.proc.terminate()
        deadline = time.monotonic() + 15
        for child in order:
            if child.proc:
                try:
                    child.proc.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    child.proc.kill()
                    child.proc.wait()
        if self.retention:
            self.retention.stop()
        if "postgres" in self.infra:  # fast shutdown: roll back open transactions, checkpoint, exit
            self.infra["postgres"].stop(signal.SIGINT, 30)
        nodes = [s for name, s in self.infra.items() if name.startswith("kafka-")]
        for node in nodes:  # all at once (a node alone cannot finish a controlled shutdown without a quorum)
            if node.running():
                assert node.proc is not None
                node.proc.terminate()
        for node in nodes:
            node.stop(signal.SIGTERM, 30)
        for name in ("broker", "objectstore"):
            if name in self.infra:
                self.infra[name].stop(signal.SIGTERM, 15)
        spool.remove_dead(self.settings.spool_root)
        stack_file(self.home).unlink(missing_ok=True)
        log.info("stack stopped")


def run_foreground(settings: Settings, gateway_port: int, kafka: KafkaKind = "tansu", brokers: int = 3) -> None:
    sup = Supervisor(settings, gateway_port, kafka, brokers)
    try:
        sup.start()
    except BaseException:
        sup.stop()
        raise
    sup.supervise()
