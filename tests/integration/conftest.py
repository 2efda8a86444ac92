"""A real stack for the integration tests: a real broker, PostgreSQL 18, real workers and model.

``STREAMSCRIBE_TEST_BROKER`` picks the broker of the whole session, in one place (``BROKER``):
- ``tansu`` (the default): the embedded stack, ``streamscribe up`` (Tansu on SeaweedFS, at-least-once);
- ``apache``: ``streamscribe up --kafka apache``, a 3-node Apache Kafka KRaft cluster from the Maven jars
  (replication factor 3, ``min.insync.replicas`` 2, exactly-once).
One stack is started per test session with ``streamscribe up --detach`` (exactly what users run) in a
temporary home, and stopped with ``streamscribe down`` at the end. A test that only makes sense on one broker
carries ``@pytest.mark.broker("apache")`` (or ``"tansu"``) and is deselected on the other, named in the summary
(``tests/conftest.py``); ``@pytest.mark.embedded`` marks the tests that prove the embedded default, which
``make test`` runs on Tansu (the whole suite runs on Apache Kafka).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from foundation.processes import pid_alive
from foundation.settings import Settings
from streamscribe.client import Client
from streamscribe.stack.ports import free_port
from streamscribe.stack.state import read_stack, stack_client_environment
from tests.conftest import BROKER
from tests.integration.apache_kafka import apache_kafka  # noqa: F401 - an Apache Kafka cluster of a module's own

CLI = [sys.executable, "-m", "streamscribe.cli"]


def _uses(item: pytest.Item, fixture: str) -> bool:
    return fixture in getattr(item, "fixturenames", ())  # every fixture the test needs, directly or not


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The order of the session: first the tests on the session's stack (``stack``); then those that kill its
    infrastructure (``stack_to_kill``), so that none runs on what their kills may leave; then the tests that do
    without it, once it is stopped (``pytest_runtest_teardown``): an idle stack takes a third of a core on Apache
    Kafka (its three JVMs), and the stacks and clusters of their own need the CPU. Last, in their order, the tests
    that need an Apache Kafka cluster of their own (``apache_kafka``, session-scoped): the cluster starts once, for
    the first of them."""
    groups: tuple[list[pytest.Item], ...] = ([], [], [], [])
    for item in items:
        rank = (3 if _uses(item, "apache_kafka") else 1 if _uses(item, "stack_to_kill") else
                0 if _uses(item, "stack") else 2)
        groups[rank].append(item)
    items[:] = [item for group in groups for item in group]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Once no test left needs the session's stack, it is stopped (after this test's own teardown), not at the
    end of the session."""
    yield
    if nextitem is not None and "stack" in _RUNNING:
        left = item.session.items[item.session.items.index(item) + 1:]
        if not any(_uses(later, "stack") for later in left):
            _stop_session_stack()


@dataclass
class Stack:
    home: Path
    url: str
    broker: str = BROKER  # which broker the stack runs ("tansu" or "apache")
    # the environment the stack was started with beyond the test process's own: ``cli`` passes it too, so a
    # stack brought down and up again by a test keeps its settings
    env: dict[str, str] = field(default_factory=dict)

    @property
    def kafka_args(self) -> list[str]:
        """The ``up`` options that start this stack's broker again (``up --detach`` after a ``down``)."""
        return ["--kafka", self.broker]

    @property
    def info(self) -> dict[str, Any]:
        info = read_stack(self.home)
        assert info is not None, "the stack is not running"
        return info

    def settings(self) -> Settings:
        """The settings a client of this stack uses: its broker's address and client settings, its database."""
        info = self.info
        env = {"STREAMSCRIBE_HOME": str(self.home), **stack_client_environment(info),
               "STREAMSCRIBE_DATABASE_URL": info["database_url"]}
        old = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            return Settings()
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    @property
    def admin_key(self) -> str:
        return str(json.loads((self.home / "secrets" / "credentials.json").read_text())["api_key"])

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_key}"}

    def pid(self, child: str) -> int:
        return int(self.info["children"][child]["pid"])

    def restarts(self, child: str) -> int:
        return int(self.info["children"][child]["restarts"])

    def kill9(self, child: str) -> int:
        pid = self.pid(child)
        os.kill(pid, signal.SIGKILL)
        return pid

    def wait_restarted(self, child: str, old_pid: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = read_stack(self.home)
            if info and info["children"][child]["pid"] != old_pid:
                return
            time.sleep(0.1)
        raise AssertionError(f"{child} was not restarted within {timeout} s")

    def cli(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "STREAMSCRIBE_HOME": str(self.home), **self.env})

    async def db(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.info["database_url"])

    async def transcribe(self, path: Path, timeout: float = 600, **fields: str) -> tuple[dict[str, Any], Any]:
        async with Client(self.url) as client:
            job = await client.submit(path, **fields)
            final = await client.wait(job["job_id"], timeout=timeout)
            transcript = await client.transcript(job["job_id"]) if final["status"] == "completed" else None
            return final, transcript


def start_stack(home: Path, extra_env: dict[str, str] | None = None, broker: str = BROKER) -> Stack:
    """``streamscribe up --detach --kafka BROKER`` in ``home`` on a free port (what users run); fails the test
    with the logs."""
    port = free_port()
    # readiness wait of `up`: a 3-node Apache Kafka cluster's JVMs take minutes to format and elect on a busy 2-core
    # machine; STREAMSCRIBE_TEST_UP_TIMEOUT says otherwise
    ready = float(os.environ.get("STREAMSCRIBE_TEST_UP_TIMEOUT", "900"))
    up = subprocess.run([*CLI, "up", "--detach", "--home", str(home), "--port", str(port), "--kafka", broker,
                         "--timeout", str(ready)], capture_output=True, text=True, timeout=ready + 100,
                        env={**{k: v for k, v in os.environ.items() if k != "STREAMSCRIBE_API_KEY"},
                             "STREAMSCRIBE_HOME": str(home), **(extra_env or {})})
    if up.returncode != 0:
        logs = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
                         for p in sorted((home / "logs").glob("*.log")))
        pytest.fail(f"streamscribe up failed:\n{up.stdout}\n{up.stderr}\n{logs}")
    return Stack(home, f"http://127.0.0.1:{port}", broker, dict(extra_env or {}))


@contextlib.contextmanager
def stack_as_admin(home: Path, extra_env: dict[str, str] | None = None, broker: str = BROKER) -> Iterator[Stack]:
    """A stack of a test module's own, whose bootstrap admin's key the test process uses while it runs
    (``STREAMSCRIBE_API_KEY``, restored after); stopped at the end."""
    stack = start_stack(home, extra_env, broker)
    old_key = os.environ.get("STREAMSCRIBE_API_KEY")
    os.environ["STREAMSCRIBE_API_KEY"] = stack.admin_key
    try:
        yield stack
    finally:
        stop_stack(stack)
        if old_key is None:
            os.environ.pop("STREAMSCRIBE_API_KEY", None)
        else:
            os.environ["STREAMSCRIBE_API_KEY"] = old_key


def on_the_broker_of(stack: Stack, topic_prefix: str) -> dict[str, str]:
    """The environment that starts another stack on ``stack``'s broker (``start_stack``, ``stack_as_admin``), under
    a topic prefix of its own: its topics, consumer groups and transactional ids are its own, and so are its
    PostgreSQL, storage, workers and gateway. No second broker or cluster to start, stop and keep running beside
    the session's."""
    return {**stack.info["kafka"]["env"], "STREAMSCRIBE_KAFKA__TOPIC_PREFIX": topic_prefix}


def stop_stack(stack: Stack) -> None:
    """``streamscribe down``, and check that it left nothing running."""
    info = read_stack(stack.home)
    subprocess.run([*CLI, "down", "--home", str(stack.home)], capture_output=True, text=True, timeout=120,
                   env={**os.environ, "STREAMSCRIBE_HOME": str(stack.home)})
    if info:
        assert not pid_alive(info["supervisor_pid"]), "streamscribe down left the supervisor running"


_RUNNING: dict[str, Stack] = {}  # the session's stack, while it runs


def _stop_session_stack() -> None:
    stack = _RUNNING.pop("stack", None)
    if stack is not None:
        stop_stack(stack)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = start_stack(tmp_path_factory.mktemp("stack"), {
        # webhooks: receivers in the tests listen on loopback, and retries should come in seconds
        "STREAMSCRIBE_WEBHOOKS__ALLOW_PRIVATE_TARGETS": "true",
        "STREAMSCRIBE_WEBHOOKS__RETRY_DELAYS_S": "[1.0, 3.0]", "STREAMSCRIBE_WEBHOOKS__JITTER": "0.1",
        "STREAMSCRIBE_WEBHOOKS__POLL_INTERVAL_S": "0.2"})
    # tests act as the bootstrap admin, like the CLI does; test_access.py covers every other role
    os.environ["STREAMSCRIBE_API_KEY"] = stack.admin_key
    _RUNNING["stack"] = stack
    try:
        yield stack
    finally:
        _stop_session_stack()  # unless stopped already, once no test left needed it


@pytest.fixture(scope="session")
def stack_to_kill(stack: Stack) -> Stack:
    """The session's stack, for a test that kills its infrastructure (``kill -9`` of the broker, the object storage
    or PostgreSQL): such tests run after every other test of the session's stack (``pytest_collection_modifyitems``
    above), so that a stack of their own, and its start and stop, are not needed for them."""
    return stack


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=1)[:3000]
