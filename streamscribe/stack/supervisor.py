"""Run the embedded stack: broker, PostgreSQL, every pipeline stage as its own process, and the gateway.

The supervisor restarts a worker that dies (a crash or a ``kill -9``) with a short backoff, the way systemd
or Kubernetes would, and writes what it runs to ``<home>/stack.json`` for ``down`` and ``status``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from connectors.storage import spool
from foundation.logs import get_logger
from foundation.settings import Settings
from streamscribe.stack import broker, postgres, retention, seaweed
from streamscribe.stack.liveness import Watchdog
from streamscribe.stack.ports import free_port, wait_for_port
from streamscribe.stack.seaweed import Seaweed
from streamscribe.stack.services import Service, tend

log = get_logger(__name__)

STACK_FILE = "stack.json"


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


def stack_file(home: Path) -> Path:
    return home / STACK_FILE


def read_stack(home: Path) -> dict[str, Any] | None:
    path = stack_file(home)
    if not path.exists():
        return None
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    return data


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


ORPHAN_NAMES = ("weed", "tansu", "postgres", "streamscribe.cli")


def reap_orphans(stack: dict[str, Any]) -> list[int]:
    """Kill what a supervisor that died without stopping (``kill -9``) left running: its object storage, broker,
    PostgreSQL and workers would hold the data directories and ports a new stack needs. Only processes whose
    command line is one of ours are touched (a pid may have been reused)."""
    pids = [int(p["pid"]) for p in [*stack.get("infra", {}).values(), *stack.get("children", {}).values()]
            if isinstance(p, dict) and p.get("pid")]
    killed = []
    for pid in pids:
        try:
            cmdline = " ".join(psutil.Process(pid).cmdline())
        except psutil.Error:
            continue
        if any(name in cmdline for name in ORPHAN_NAMES):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            killed.append(pid)
    return killed


class Supervisor:
    def __init__(self, settings: Settings, gateway_port: int) -> None:
        self.settings = settings
        self.home = settings.home.resolve()
        self.gateway_port = gateway_port
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
        from streams.kafka.admin import ensure_topics
        from streams.kafka.clients import KafkaAuthenticationError
        from streams.stages.registry import names, state_groups

        self.logs.mkdir(parents=True, exist_ok=True)
        self.settings.storage_root.mkdir(parents=True, exist_ok=True)
        cleared = spool.clear_root(self.settings.spool_root)  # what a crash left: no plaintext survives an up
        if cleared:
            log.warning("removed transient files left by a previous run", count=cleared)
        env = {**os.environ, "STREAMSCRIBE_HOME": str(self.home), "STREAMSCRIBE_PROFILE": "embedded"}

        bootstrap = os.environ.get("STREAMSCRIBE_KAFKA__BOOTSTRAP_SERVERS")
        if not bootstrap:
            bootstrap = self._start_broker()
        env["STREAMSCRIBE_KAFKA__BOOTSTRAP_SERVERS"] = bootstrap
        self.settings.kafka.bootstrap_servers = bootstrap

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
        for attempt in range(20):
            try:
                ensure_topics(self.settings.kafka, state_groups())
                break
            except KafkaAuthenticationError:
                raise  # waiting does not make the credentials right
            except Exception as exc:
                if attempt == 19:
                    raise
                log.warning("topics not created yet", error=str(exc))
                time.sleep(0.5)

        health: dict[str, str] = {}
        for name in names():
            port = free_port()
            health[name] = f"http://127.0.0.1:{port}/health"
            self.children.append(Child(
                name, [sys.executable, "-m", "streamscribe.cli", "worker", name, "--metrics-port", str(port)],
                env, self.logs / f"{name}.log", extra={"metrics_port": port},
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
            "database_url": database_url, "gateway_url": f"http://127.0.0.1:{self.gateway_port}",
            "worker_health": health, "started_at": time.time(),
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

    def _service(self, service: Service) -> None:
        service.max_backoff = self.settings.embedded.max_restart_backoff_s
        self.infra[service.name] = service
        service.start()

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
            time.sleep(0.2)
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
        for name in ("broker", "objectstore"):
            if name in self.infra:
                self.infra[name].stop(signal.SIGTERM, 15)
        spool.remove_dead(self.settings.spool_root)
        stack_file(self.home).unlink(missing_ok=True)
        log.info("stack stopped")


def run_foreground(settings: Settings, gateway_port: int) -> None:
    sup = Supervisor(settings, gateway_port)
    try:
        sup.start()
    except BaseException:
        sup.stop()
        raise
    sup.supervise()
