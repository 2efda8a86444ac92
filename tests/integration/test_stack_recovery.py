"""The embedded stack survives its own infrastructure, stops and starts without losing work, and leaves no
plaintext audio behind.

A stack of its own (infrastructure is killed here, and it is stopped and started), started with ``streamscribe up
--detach``; the idle kills hit the session's stack, after every other test that uses it (``stack_to_kill``,
tests/integration/conftest.py), so that ``make test``'s embedded run starts no second stack for them:
- ``kill -9`` of the object storage, the broker or PostgreSQL, idle or in the middle of a job: the supervisor
  starts it again on the same ports, ``stack.json`` counts the restart, the stack reports healthy, and jobs
  (in flight or new) complete with the text of a run without a crash;
- ``kill -9`` of ingest during a job and of the gateway during an upload, then ``down``/``up``: no file is
  left under ``<home>/tmp`` and every directory there is private (0700);
- ``down`` names the jobs in flight and lists them in ``<home>/inflight.json``; after ``up`` the broker's log
  (topics, offsets, history) is still there, so those jobs finish; ``restart --drain`` waits for a job first.

A job in flight through an infrastructure kill, and ``down``/``up`` with jobs in flight, run here on Apache Kafka
only: on Tansu the chaos suite (tests/chaos/test_chaos.py, ``make test-chaos``) makes the same checks on a batch.
``make test``'s embedded run (Tansu) takes the idle kills of Tansu, its object storage and PostgreSQL; what is
left of stray files and ``restart --drain`` do not depend on the broker and run on Apache Kafka.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from foundation.processes import pid_alive
from streamscribe.client import Client
from streamscribe.stack.state import read_stack
from tests.conftest import BROKER
from tests.integration.conftest import Stack, stack_as_admin

pytestmark = pytest.mark.integration

# the infrastructure processes of the session's broker: Tansu and the object storage holding its log, or one of
# the Apache Kafka nodes; PostgreSQL either way
KILLABLE = {"tansu": ["broker", "postgres", "objectstore"], "apache": ["kafka-2", "postgres"]}


@pytest.fixture(scope="module")
def own_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with stack_as_admin(tmp_path_factory.mktemp("recovery")) as stack:
        yield stack


@pytest.fixture(scope="module")
def recording(speech: Path) -> Path:
    return speech / "read" / "jfk.flac"


@pytest.fixture(scope="module")
def long_call(speech: Path) -> Path:
    """A 30 s meeting, its speakers told apart acoustically: a job that takes many seconds of recognition and
    diarization, so it is still in flight when a stop is asked for a second after its upload (the tests check
    that it was: ``down`` names it, ``--drain`` says it waits)."""
    return speech / "meetings" / "ami_dev00.flac"


def _texts(transcript: dict[str, Any]) -> list[str]:
    return [s["text"] for s in transcript["segments"]]


@pytest.fixture(scope="module")
async def clean_run(own_stack: Stack, recording: Path) -> list[str]:
    return await _clean_run(own_stack, recording)


@pytest.fixture(scope="module")
async def session_clean_run(stack_to_kill: Stack, recording: Path) -> list[str]:
    return await _clean_run(stack_to_kill, recording)


async def _clean_run(stack: Stack, recording: Path) -> list[str]:
    job, transcript = await stack.transcribe(recording)
    assert job["status"] == "completed", job
    assert "ask not what your country can do for you" in " ".join(_texts(transcript)).lower()
    return _texts(transcript)


def _infra(stack: Stack, name: str) -> dict[str, Any]:
    return dict(stack.info["infra"][name])


async def _healthy(stack: Stack, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            async with Client(stack.url) as client:
                last = await client.health(detailed=True)
            if last.get("status") == "ok":
                return
        except Exception as exc:  # the gateway may be answering errors while a dependency restarts
            last = {"error": str(exc)}
        await asyncio.sleep(0.5)
    raise AssertionError(f"the stack is not healthy again: {last}")


def _kill_infra(stack: Stack, name: str) -> dict[str, Any]:
    before = _infra(stack, name)
    os.kill(before["pid"], signal.SIGKILL)
    return before


def _wait_restarted(stack: Stack, name: str, before: dict[str, Any], timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = _infra(stack, name)
        if now["pid"] != before["pid"] and now["restarts"] == before["restarts"] + 1 and pid_alive(now["pid"]):
            for key in ("port", "endpoint", "ports"):
                assert now.get(key) == before.get(key), f"{name} came back on another {key}"
            return now
        time.sleep(0.2)
    raise AssertionError(f"{name} was not restarted: {_infra(stack, name)}")


async def _job_until(client: Client, job_id: str, done: Any, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            job = await client.job(job_id)
            if done(job):
                return job
        except Exception:  # the gateway answers errors while PostgreSQL restarts
            pass
        assert time.monotonic() < deadline, f"job {job_id} did not get there in {timeout} s"
        await asyncio.sleep(0.2)


@pytest.mark.embedded
@pytest.mark.parametrize("service", KILLABLE[BROKER])
async def test_infrastructure_killed_while_idle_is_restarted(stack_to_kill: Stack, session_clean_run: list[str],
                                                             recording: Path, service: str) -> None:
    before = _kill_infra(stack_to_kill, service)
    _wait_restarted(stack_to_kill, service, before)
    await _healthy(stack_to_kill)
    job, transcript = await stack_to_kill.transcribe(recording)
    assert job["status"] == "completed", job
    assert _texts(transcript) == session_clean_run


@pytest.mark.broker("apache")
@pytest.mark.parametrize("service", ["kafka-2", "postgres"])
async def test_infrastructure_killed_mid_job_the_job_completes(own_stack: Stack, clean_run: list[str],
                                                               recording: Path, service: str) -> None:
    """Observed behaviour: the broker's log and PostgreSQL come back as they were, the workers reconnect (or are
    restarted) and resume from their committed offsets, so the job in flight completes by itself, with the
    same text as a clean run.

    On Tansu the same kills (the broker, PostgreSQL, and the object storage too) hit a batch of jobs in flight in
    tests/chaos/test_chaos.py::test_kill9_of_each_infrastructure_process_mid_batch, which checks the restarts
    the same way and each job's segments against a clean run."""
    async with Client(own_stack.url) as client:
        job_id = (await client.submit(recording))["job_id"]
        await _job_until(client, job_id, lambda j: j["status"] == "running" or j["status"] in ("completed",
                                                                                               "failed"))
        before = _kill_infra(own_stack, service)
        _wait_restarted(own_stack, service, before)
        job = await _job_until(client, job_id, lambda j: j["status"] in ("completed", "failed"), timeout=300)
        assert job["status"] == "completed", job
        assert _texts(await client.transcript(job_id)) == clean_run


def _spool_files(home: Path) -> list[Path]:
    return [p for p in (home / "tmp").rglob("*") if not p.is_dir()]


def _private(home: Path) -> None:
    for path in [home / "tmp", *(p for p in (home / "tmp").rglob("*") if p.is_dir())]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path


async def _start_upload(stack: Stack, size: int) -> tuple[asyncio.StreamWriter, int]:
    """Send a multipart upload's headers and the first half of the file, then stall (a slow client)."""
    boundary = "streamscribe-test-boundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.wav\"\r\n"
            "Content-Type: audio/wav\r\n\r\n").encode()
    total = len(head) + size + len(f"\r\n--{boundary}--\r\n")
    port = int(stack.url.rsplit(":", 1)[1])
    _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write((f"POST /v1/files HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {stack.admin_key}\r\n"
                  f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {total}\r\n\r\n"
                  ).encode() + head + b"RIFF" + os.urandom(size // 2))
    await writer.drain()
    return writer, size


async def test_no_plaintext_is_left_after_kills_and_a_restart(own_stack: Stack, recording: Path) -> None:
    home = own_stack.home
    # the gateway, killed while a client is uploading: its spool goes with it
    writer, _ = await _start_upload(own_stack, 8 << 20)
    deadline = time.monotonic() + 30
    while not (spooled := [p for p in _spool_files(home) if p.name.startswith("upload-") and p.stat().st_size]):
        assert time.monotonic() < deadline, "the upload was never spooled"
        await asyncio.sleep(0.1)
    assert spooled[0].parent.name.startswith("gateway.")
    _private(home)
    old = own_stack.kill9("gateway")
    writer.close()
    own_stack.wait_restarted("gateway", old)
    deadline = time.monotonic() + 10
    while spooled[0].exists():
        assert time.monotonic() < deadline, "the dead gateway's spool was not removed"
        await asyncio.sleep(0.1)
    await _healthy(own_stack)
    # ingest, killed while it decodes: it reads the stored recording through a decrypting view, so it has no
    # plaintext file to leave
    async with Client(own_stack.url) as client:
        job_id = (await client.submit(recording))["job_id"]
        await _job_until(client, job_id, lambda j: j["stages"].get("ingest") is not None or j["status"] != "queued")
        old = own_stack.kill9("ingest")
        assert _spool_files(home) == []
        own_stack.wait_restarted("ingest", old)
        job = await _job_until(client, job_id, lambda j: j["status"] in ("completed", "failed"), timeout=300)
        assert job["status"] == "completed", job
    # what a crash of everything would leave is gone at the next up: checked across the down and up of
    # test_down_names_jobs_in_flight_and_up_finishes_them (``_crash_leftovers``), the next test, which stops and
    # starts this stack anyway (one stop and start of a 3-node cluster fewer)


def _crash_leftovers(home: Path) -> None:
    """What a crash of everything would leave in the spool: a dead gateway's upload and a stray fetch."""
    dead = home / "tmp" / "gateway.somehost.999999"
    dead.mkdir(mode=0o700)
    (dead / "upload-left.wav").write_bytes(b"RIFF")
    (home / "tmp" / "fetch-legacy.wav").write_bytes(b"RIFF")
    assert len(_spool_files(home)) >= 2


@pytest.mark.broker("apache")
async def test_down_names_jobs_in_flight_and_up_finishes_them(own_stack: Stack, clean_run: list[str],
                                                              recording: Path, long_call: Path) -> None:
    """On Tansu the same stop and start, with every check of this test, is tests/chaos/test_chaos.py::
    test_down_and_up_with_jobs_in_flight (a batch in flight, its segments compared with a clean run).

    The same stop and start also shows that no plaintext is left (test_no_plaintext_is_left_after_kills_and_a_
    restart): what a crash of everything would leave in the spool is gone once ``up`` has started the stack, and
    every directory there is private."""
    home = own_stack.home
    port = own_stack.url.rsplit(":", 1)[1]
    (home / "inflight.json").unlink(missing_ok=True)
    _crash_leftovers(home)
    async with Client(own_stack.url) as client:
        jobs = [(await client.submit(recording))["job_id"] for _ in range(3)]
        # a meeting: still in flight however fast the short ones finish before down lists them
        call = (await client.submit(long_call))["job_id"]
    down = own_stack.cli("down", "--home", str(home))
    assert down.returncode == 0, down.stderr
    assert (home / "inflight.json").exists(), down.stdout + down.stderr
    handed = json.loads((home / "inflight.json").read_text())["jobs"]
    in_flight = {j["job_id"] for j in handed}
    assert call in in_flight and in_flight <= {*jobs, call}, handed
    for job_id in in_flight:
        assert job_id in down.stderr
    assert "inflight.json" in down.stderr and "reconciler" in down.stderr
    assert read_stack(home) is None

    up = own_stack.cli("up", "--detach", "--home", str(home), "--port", port, *own_stack.kafka_args)
    assert up.returncode == 0, up.stderr
    assert _spool_files(home) == []
    _private(home)
    assert "were in flight" in up.stderr
    async with Client(own_stack.url) as client:
        for job_id in jobs:
            job = await _job_until(client, job_id, lambda j: j["status"] in ("completed", "failed"), timeout=300)
            assert job["status"] == "completed", job
            assert _texts(await client.transcript(job_id)) == clean_run
        finished = await _job_until(client, call, lambda j: j["status"] in ("completed", "failed"), timeout=600)
        assert finished["status"] == "completed", finished
    history = own_stack.cli("tail", "jobs.events", "--from-beginning", "--timeout", "5", "--home", str(home))
    seen = {json.loads(line)["value"].get("job_id") for line in history.stdout.splitlines() if line.startswith("{")}
    assert {*jobs, call} <= seen, "the events from before down are still in the broker's log"


async def test_restart_with_drain_waits_for_the_job(own_stack: Stack, long_call: Path) -> None:
    home = own_stack.home
    async with Client(own_stack.url) as client:
        job_id = (await client.submit(long_call))["job_id"]
    restart = own_stack.cli("restart", "--drain", "--drain-timeout", "300", "--home", str(home))
    assert restart.returncode == 0, restart.stdout + restart.stderr
    assert "draining" in restart.stderr and "streamscribe is up" in restart.stdout
    async with Client(own_stack.url) as client:
        assert (await client.job(job_id))["status"] == "completed"
    handed = json.loads((home / "inflight.json").read_text())["jobs"] if (home / "inflight.json").exists() else []
    assert job_id not in {j["job_id"] for j in handed}
