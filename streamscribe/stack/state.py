"""A running embedded stack as the other commands see it: its state file ``<home>/stack.json`` (written by the
supervisor, ``streamscribe.stack.supervisor``), whether its processes are alive, the client settings of its
broker, and the processes a supervisor killed with ``kill -9`` left behind.

Kept apart from the supervisor so that ``down``, ``status``, ``tail`` and the other commands (and the workers
that read the state file) do not load every stage the supervisor runs just to read a file.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from pathlib import Path
from typing import Any

import psutil

STACK_FILE = "stack.json"
ORPHAN_NAMES = ("weed", "tansu", "postgres", "kafka.Kafka", "streamscribe.cli")


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


def stack_client_environment(stack: dict[str, Any]) -> dict[str, str]:
    """The Kafka settings of a running stack (from its ``stack.json``), as environment variables, for the
    commands and tests that talk to its broker."""
    kafka = stack.get("kafka") or {}
    env = dict(kafka.get("env") or {})
    env.setdefault("STREAMSCRIBE_KAFKA__BOOTSTRAP_SERVERS", str(stack.get("kafka_bootstrap", "")))
    return env


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
