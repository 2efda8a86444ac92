"""A worker pointed at a cluster that refuses its credentials stops at once with a clear error (it does not hang).

The broker is the embedded one (Tansu) started with ``--authentication``: it requires SASL/SCRAM, and answers
the SCRAM exchange of a user it does not know with an authentication failure, as Apache Kafka does for a wrong
password. No stack is needed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from foundation.settings import KafkaSettings
from streams.kafka.clients import KafkaAuthenticationError, check_connection
from streamscribe.stack import broker
from streamscribe.stack.ports import free_port, wait_for_port

# Tansu's SASL listener; on Apache Kafka, test_kafka_sasl.py checks the same against SASL_SSL with SCRAM
pytestmark = [pytest.mark.integration, pytest.mark.embedded, pytest.mark.broker("tansu")]


@pytest.fixture(scope="module")
def secured_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port(29192)
    log = tmp_path_factory.mktemp("sasl-broker") / "broker.log"
    proc = broker.start(port, log, authentication=True)
    try:
        if not wait_for_port(port, 30):
            pytest.fail(f"the broker did not listen:\n{log.read_text()[-2000:]}")
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def _sasl(bootstrap: str) -> KafkaSettings:
    return KafkaSettings(bootstrap_servers=bootstrap, broker="tansu", security_protocol="SASL_PLAINTEXT",
                         sasl_mechanism="SCRAM-SHA-512", sasl_username="streamscribe", sasl_password="wrong")


def test_refused_credentials_are_a_clear_error_at_once(secured_broker: str) -> None:
    started = time.monotonic()
    with pytest.raises(KafkaAuthenticationError) as err:
        check_connection(_sasl(secured_broker), timeout=60)
    assert time.monotonic() - started < 30, "the refusal took as long as an unreachable cluster"
    message = str(err.value)
    assert secured_broker in message and "'streamscribe' (SCRAM-SHA-512)" in message
    assert "authentication" in message.lower() and "wrong" not in message  # the password is never shown


def test_a_worker_with_refused_credentials_exits_with_the_reason(secured_broker: str, tmp_path: Path) -> None:
    env = {**os.environ, "STREAMSCRIBE_HOME": str(tmp_path), "STREAMSCRIBE_LOG_FORMAT": "console",
           "STREAMSCRIBE_KAFKA__BOOTSTRAP_SERVERS": secured_broker, "STREAMSCRIBE_KAFKA__BROKER": "tansu",
           "STREAMSCRIBE_KAFKA__SECURITY_PROTOCOL": "SASL_PLAINTEXT",
           "STREAMSCRIBE_KAFKA__SASL_MECHANISM": "SCRAM-SHA-512",
           "STREAMSCRIBE_KAFKA__SASL_USERNAME": "streamscribe",
           "STREAMSCRIBE_KAFKA__SASL_PASSWORD": "not-the-password"}
    done = subprocess.run([sys.executable, "-m", "streamscribe.cli", "worker", "post"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert f"Error: Kafka at {secured_broker} refused the connection as 'streamscribe'" in done.stderr, done.stderr
    assert "not-the-password" not in done.stderr + done.stdout
