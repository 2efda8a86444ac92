"""The chaos suite's stack and tools: one embedded stack for the session (started with ``streamscribe up
--detach``, the reconciler told to act within seconds), clean reference runs of a few real recordings, a
webhook receiver, and helpers to submit a batch of jobs and check what each left in PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web

from streamscribe.client import Client
from streamscribe.stack.ports import free_port
from tests.integration.conftest import Stack, stack_as_admin
from tests.integration.segments import Shape, assert_intact, rows, sampled_windows, shape

# The reconciler of this stack: a job nothing is left for on Kafka is stuck after 15 s (default 180 s), a pass
# every 2 s, two runs of a request at most.
# A worker that does not answer its health checks for 20 s is restarted (default 60 s).
RECOVERY_ENV = {"STREAMSCRIBE_RECOVERY__STALL_AFTER_S": "15", "STREAMSCRIBE_RECOVERY__INTERVAL_S": "2",
                "STREAMSCRIBE_RECOVERY__MAX_ATTEMPTS": "2", "STREAMSCRIBE_EMBEDDED__LIVENESS_TIMEOUT_S": "20"}
WEBHOOK_ENV = {"STREAMSCRIBE_WEBHOOKS__ALLOW_PRIVATE_TARGETS": "true",
               "STREAMSCRIBE_WEBHOOKS__RETRY_DELAYS_S": "[1.0, 2.0]", "STREAMSCRIBE_WEBHOOKS__JITTER": "0.1",
               "STREAMSCRIBE_WEBHOOKS__POLL_INTERVAL_S": "0.2"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/chaos/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.integration)
            item.add_marker(pytest.mark.chaos)


@pytest.fixture(scope="session")
def chaos_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with stack_as_admin(tmp_path_factory.mktemp("chaos"), {**RECOVERY_ENV, **WEBHOOK_ENV}) as stack:
        yield stack


@pytest.fixture(scope="session")
def recordings(speech: Path) -> list[Path]:
    """Four real recordings, 10-30 s each: two meetings (acoustic speakers), a read passage, a 1961 speech (no
    speakers)."""
    return [speech / "meetings" / "ami_dev00.flac", speech / "meetings" / "ami_dev01.flac",
            speech / "read" / "LJ001-0001.wav", speech / "read" / "jfk.flac"]


@pytest.fixture(scope="session")
async def references(chaos_stack: Stack, recordings: list[Path]) -> dict[Path, list[Shape]]:
    """What a run without faults leaves in PostgreSQL for each recording (run together, as a batch)."""
    done = await finish(chaos_stack, await submit(chaos_stack, recordings))
    out = {}
    for path, job in done.items():
        assert job["status"] == "completed" and job["revision"] == 1, job
        out[path] = shape(await rows(chaos_stack, job["job_id"]))
        assert out[path], f"{path.name}: no segments"
    return out


# Speakers for the meetings (acoustic diarization); none for the single readers, to keep a batch short.
DIARIZE = {"LJ001-0001.wav": "off", "jfk.flac": "off"}


async def submit(stack: Stack, paths: list[Path]) -> dict[Path, str]:
    async with Client(stack.url) as client:
        return {p: (await client.submit(p, diarize=DIARIZE.get(p.name)))["job_id"] for p in paths}


async def job(stack: Stack, job_id: str) -> dict[str, Any] | None:
    """The job as the API shows it, or None while the gateway (or its database) cannot answer."""
    try:
        async with Client(stack.url) as client:
            return await asyncio.wait_for(client.job(job_id), 10)
    except Exception:
        return None


async def wait_until(check: Callable[[], Awaitable[Any]], timeout: float, what: str, interval: float = 0.3) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = await check()
        if result:
            return result
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


async def finish(stack: Stack, jobs: dict[Path, str], timeout: float = 600) -> dict[Path, dict[str, Any]]:
    """Wait until every job has ended (completed or failed); the jobs as the API shows them."""
    ended: dict[Path, dict[str, Any]] = {}

    async def all_ended() -> bool:
        for path, job_id in jobs.items():
            if path not in ended:
                got = await job(stack, job_id)
                if got and got["status"] in ("completed", "failed", "cancelled"):
                    ended[path] = got
        return len(ended) == len(jobs)

    await wait_until(all_ended, timeout, f"{len(jobs) - len(ended)} of {len(jobs)} jobs to end", interval=1.0)
    return ended


async def running(stack: Stack, jobs: dict[Path, str]) -> bool:
    """Some job of the batch is being worked on and none has ended yet (a fault now hits work in flight). The
    jobs are read at once, so a poll is short even on a loaded machine."""
    seen = await asyncio.gather(*(job(stack, j) for j in jobs.values()))
    return any(s and s["status"] == "running" for s in seen) and not any(
        s and s["status"] in ("completed", "failed", "cancelled") for s in seen)


async def assert_batch_intact(stack: Stack, jobs: dict[Path, str], references: dict[Path, list[Shape]],
                              *, revision: int | None = 1) -> dict[Path, dict[str, Any]]:
    """Every job completed, at ``revision`` (1: the pipeline recovered by itself, the reconciler did not need to
    run anything again), with exactly the segments of the clean run: same ids, speakers and texts, no duplicate."""
    done = await finish(stack, jobs)
    for path, got in done.items():
        assert got["status"] == "completed", (path.name, got)
        if revision is not None:
            assert got["revision"] == revision, (path.name, got)
        assert_intact(await rows(stack, got["job_id"]), references[path], sampled_windows(stack))
    return done


@dataclass
class Receiver:
    """A webhook receiver on loopback that keeps every payload it is sent."""

    port: int
    payloads: list[dict[str, Any]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def handle(self, request: web.Request) -> web.Response:
        self.payloads.append(json.loads(await request.read()))
        return web.Response(status=204)

    def types(self, job_id: str) -> list[str]:
        return [p["type"] for p in self.payloads if p["data"].get("job_id") == job_id]

    def of(self, job_id: str, event_type: str) -> list[dict[str, Any]]:
        return [p["data"] for p in self.payloads if p["data"].get("job_id") == job_id and p["type"] == event_type]


@pytest_asyncio.fixture(scope="session")
async def receiver(chaos_stack: Stack) -> AsyncIterator[Receiver]:
    """Subscribed (as the admin, organization ``default``) to every job event type."""
    rec = Receiver(free_port())
    app = web.Application()
    app.router.add_post("/hook", rec.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", rec.port).start()
    async with Client(chaos_stack.url) as client, client.session.post(
            f"{client.base}/v1/webhooks", json={"url": rec.url, "events": [
                "job.completed", "job.failed", "job.running", "job.requeued", "transcript.completed"]}) as resp:
        assert resp.status == 201, await resp.text()
    try:
        yield rec
    finally:
        await runner.cleanup()
