"""Jobs in flight when the embedded stack stops: listed, drained, or handed to the next start.

``streamscribe down`` asks the gateway for the jobs that are ``queued`` or ``running`` (as the stack's
bootstrap admin, every organization). With ``--drain`` it waits for them to finish; whatever is still in
flight when it stops is written to ``<home>/inflight.json`` (merged with what an earlier stop left there and
nobody has taken yet), which the reconciler takes at the next ``up``: those jobs resume from the broker's log by
themselves; the ones nothing is left for on Kafka are run again at its first pass (``streamscribe.recovery``).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from streamscribe.client import Client

INFLIGHT_FILE = "inflight.json"
IN_FLIGHT = ("running", "queued")


def inflight_file(home: Path) -> Path:
    return home / INFLIGHT_FILE


async def in_flight(url: str, timeout: float = 15) -> list[dict[str, Any]]:
    """Jobs queued or running, oldest first: ``job_id``, ``status``, ``source``, ``revision``, ``created_at``."""
    async with Client(url) as client:
        jobs = []
        for status in IN_FLIGHT:
            jobs += await asyncio.wait_for(client.jobs(status), timeout)
    keep = ("job_id", "status", "source", "revision", "org_id", "created_at")
    return sorted(({k: j.get(k) for k in keep} for j in jobs), key=lambda j: str(j["created_at"]))


async def drain(url: str, timeout: float, on_wait: Callable[[list[dict[str, Any]]], None] | None = None,
                interval: float = 2.0) -> list[dict[str, Any]]:
    """Wait until nothing is in flight or ``timeout`` passes; returns what is still in flight."""
    deadline = time.monotonic() + timeout
    while True:
        jobs = await in_flight(url)
        if not jobs or time.monotonic() >= deadline:
            return jobs
        if on_wait:
            on_wait(jobs)
        await asyncio.sleep(min(interval, max(0.0, deadline - time.monotonic())))


def read_handoff(home: Path) -> list[dict[str, Any]]:
    try:
        jobs: list[dict[str, Any]] = json.loads(inflight_file(home).read_text())["jobs"]
    except (OSError, ValueError, KeyError):
        return []
    return jobs


def write_handoff(home: Path, jobs: list[dict[str, Any]]) -> Path | None:
    """Record the jobs a stop interrupted for the next start (merged with earlier ones; nothing to record and
    nothing recorded: no file)."""
    path = inflight_file(home)
    merged = {j["job_id"]: j for j in read_handoff(home)}
    merged.update({j["job_id"]: j for j in jobs})
    if not merged:
        path.unlink(missing_ok=True)
        return None
    body = {"stopped_at": datetime.now(UTC).isoformat(), "jobs": list(merged.values())}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(body, indent=1))
    os.replace(tmp, path)
    return path


def take_handoff(home: Path) -> list[dict[str, Any]]:
    """The jobs the last stop handed over, removing the hand-off (the reconciler takes them once)."""
    jobs = read_handoff(home)
    inflight_file(home).unlink(missing_ok=True)
    return jobs
