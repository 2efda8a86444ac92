"""docker-compose.kafka.yml: valid for Debian's docker-compose (`config -q`, no engine needed), every stage and the
gateway a service with replicas, and every STREAMSCRIBE_* variable in it a real setting of foundation/settings.py."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.stages.registry import names
from tests.deploy.settings_names import setting_env_names

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.kafka.yml"
SECRETS = {"POSTGRES_PASSWORD": "pg-pass", "S3_ACCESS_KEY": "s3-key", "S3_SECRET_KEY": "s3-secret",
           "STORAGE_MASTER_KEYS": "k1:AAAA", "JWT_SECRET": "jwt"}


def compose(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """docker-compose with only ``env`` for interpolation (not the caller's environment, not a .env file)."""
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.fail("docker-compose is missing: apt-get install docker-compose (.ci/run installs it)")
    env_file = tmp_path / "compose.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in (env or {}).items()))
    return subprocess.run([binary, "-f", str(COMPOSE), "--env-file", str(env_file), *args], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path, env={"PATH": os.environ["PATH"]})


@pytest.fixture(scope="module")
def resolved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = compose(tmp_path_factory.mktemp("compose"), "config", env=SECRETS)
    assert out.returncode == 0, out.stderr
    config: dict[str, Any] = yaml.safe_load(out.stdout)
    return config


def test_config_is_valid(tmp_path: Path) -> None:
    out = compose(tmp_path, "config", "-q", env=SECRETS)
    assert out.returncode == 0 and out.stderr.strip() == "", out.stderr


def test_a_missing_secret_is_a_clear_error(tmp_path: Path) -> None:
    out = compose(tmp_path, "config", "-q", env={k: v for k, v in SECRETS.items() if k != "POSTGRES_PASSWORD"})
    assert out.returncode != 0
    assert "set POSTGRES_PASSWORD in .env" in out.stderr


def test_every_stage_and_the_gateway_are_services_with_replicas(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    for stage in names():
        assert services[stage]["command"] == ["worker", stage, "--metrics-port", "9100"], stage
        assert services[stage]["deploy"]["replicas"] >= 1, stage
        assert services[stage]["environment"]["HEALTHCHECK_URL"] == "http://127.0.0.1:9100/health"
        assert set(services[stage]["depends_on"]) == {"migrate", "topics"}
    assert services["gateway"]["command"] == ["gateway"] and services["gateway"]["deploy"]["replicas"] == 2
    assert services["migrate"]["command"] == ["migrate"]
    assert services["topics"]["entrypoint"] == ["python", "-m", "streamscribe.provision"]
    assert {"postgres", "registry", "s3", "kafka-1", "kafka-2", "kafka-3"} <= set(services)


def test_three_kraft_brokers_replicate_three_ways(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    for n in (1, 2, 3):
        broker = services[f"kafka-{n}"]
        env = broker["environment"]
        assert broker["image"].startswith("apache/kafka:4.")
        assert env["KAFKA_NODE_ID"] == str(n) and env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3" and env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
        assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "2"
    assert services["gateway"]["environment"]["STREAMSCRIBE_KAFKA__REPLICATION_FACTOR"] == "3"
    registry = services["gateway"]["environment"]["STREAMSCRIBE_SCHEMA_REGISTRY__URL"]
    assert registry == "http://registry:8080/apis/ccompat/v7"


def test_every_streamscribe_variable_is_a_setting(resolved: dict[str, Any]) -> None:
    real = setting_env_names()
    in_file = set(re.findall(r"\bSTREAMSCRIBE_[A-Z0-9_]+", COMPOSE.read_text()))
    resolved_names = {name for service in resolved["services"].values()
                      for name in (service.get("environment") or {}) if name.startswith("STREAMSCRIBE_")}
    assert resolved_names, "no STREAMSCRIBE_ settings found in the resolved services"
    assert in_file - real == set(), f"not settings: {sorted(in_file - real)}"
    assert resolved_names - real == set(), f"not settings: {sorted(resolved_names - real)}"
