"""The pipeline on SASL_SSL listeners: an Apache Kafka cluster of this module's own (tests/integration/apache_kafka.py)
whose CA, broker certificate and SCRAM-SHA-512 user are made when the module starts; a stack started against it
(``STREAMSCRIBE_KAFKA__SECURITY_PROTOCOL=SASL_SSL``, the CA to trust, the user and its password) runs a job end to
end. With a wrong password, ``streamscribe up`` and a worker stop at start with the reason, not a hang.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.kafka.clients import admin_client
from streamscribe.client import Client
from streamscribe.stack.ports import free_port
from tests.integration.apache_kafka import ApacheKafka
from tests.integration.conftest import CLI, Stack, stack_as_admin

pytestmark = [pytest.mark.integration, pytest.mark.broker("apache")]


@pytest.fixture(scope="module")
def sasl_stack(apache_kafka: ApacheKafka, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    env = {**apache_kafka.sasl_env(), "STREAMSCRIBE_KAFKA__TOPIC_PREFIX": f"sasl{uuid.uuid4().hex[:6]}.",
           "STREAMSCRIBE_KAFKA__REPLICATION_FACTOR": "3"}
    with stack_as_admin(tmp_path_factory.mktemp("sasl"), env, broker="apache") as stack:
        yield stack


async def test_a_job_runs_end_to_end_over_sasl_ssl(sasl_stack: Stack, apache_kafka: ApacheKafka,
                                                   speech: Path) -> None:
    info = sasl_stack.info
    assert info["kafka_bootstrap"] == apache_kafka.cluster.sasl_bootstrap_servers  # the SASL_SSL listeners only
    assert info["kafka"]["env"]["STREAMSCRIBE_KAFKA__SECURITY_PROTOCOL"] == "SASL_SSL"
    assert "STREAMSCRIBE_KAFKA__SASL_PASSWORD" not in info["kafka"]["env"]  # never written to stack.json
    job, transcript = await sasl_stack.transcribe(speech / "read" / "jfk.flac")
    assert job["status"] == "completed", job
    text = " ".join(s["text"] for s in transcript["segments"]).lower()
    assert "ask not what your country can do for you" in text
    # the stack's topics, on the secured cluster, seen by a client with the same credentials
    prefix = info["kafka"]["env"]["STREAMSCRIBE_KAFKA__TOPIC_PREFIX"]
    topics = admin_client(apache_kafka.sasl_ssl()).list_topics(timeout=10).topics
    assert f"{prefix}transcripts" in topics and f"{prefix}streamscribe-post.state" in topics
    async with Client(sasl_stack.url) as client:
        health = await client.health(detailed=True)
    assert health["status"] == "ok", health


def test_a_wrong_password_stops_up_at_start_with_the_reason(apache_kafka: ApacheKafka, tmp_path: Path) -> None:
    env = {**{k: v for k, v in os.environ.items() if k != "STREAMSCRIBE_API_KEY"},
           **apache_kafka.sasl_env(password="not-the-password"), "STREAMSCRIBE_HOME": str(tmp_path)}
    up = subprocess.run([*CLI, "up", "--detach", "--home", str(tmp_path), "--port", str(free_port()),
                         "--timeout", "400"], env=env, capture_output=True, text=True, timeout=500)
    assert up.returncode != 0
    assert "the stack failed to start" in up.stderr, up.stderr[-2000:]  # it stopped; it did not wait 400 s
    assert "refused the connection as 'streamscribe' (SCRAM-SHA-512)" in up.stderr, up.stderr[-2000:]
    assert "not-the-password" not in up.stderr + up.stdout


def test_a_worker_with_a_wrong_password_exits_with_the_reason(apache_kafka: ApacheKafka, tmp_path: Path) -> None:
    env = {**os.environ, **apache_kafka.sasl_env(password="not-the-password"), "STREAMSCRIBE_HOME": str(tmp_path),
           "STREAMSCRIBE_LOG_FORMAT": "console"}
    done = subprocess.run([sys.executable, "-m", "streamscribe.cli", "worker", "post"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    bootstrap = apache_kafka.cluster.sasl_bootstrap_servers
    assert f"Error: Kafka at {bootstrap} refused the connection as 'streamscribe'" in done.stderr, done.stderr[-2000:]
    assert "not-the-password" not in done.stderr + done.stdout
