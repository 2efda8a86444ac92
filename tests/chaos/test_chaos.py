"""Chaos on the real embedded stack: while a batch of four real recordings is being transcribed, every worker is
killed with ``kill -9``, or a worker freezes (SIGSTOP), or the broker, PostgreSQL or object storage is killed, or
the database freezes (its processes stopped with SIGSTOP, then continued), or the stack is stopped and started
again. Each time every job must end completed with
exactly the segments of a clean run of the same recording (same ids, speakers and texts, no duplicate row); where
the broker lost its history, the reconciler runs the jobs again from their stored recordings, and a job whose
recording was deleted meanwhile fails with the reason.

One kill of one stage per job, compared segment by segment, is tests/integration/test_crash_recovery.py; a single
job through infrastructure restarts is tests/integration/test_stack_recovery.py. Here the faults hit a batch in
flight, all at once, and the reconciler is running (it must leave jobs the pipeline resumes by itself alone:
they end at revision 1).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import psutil

from connectors.storage.factory import store_from_settings
from foundation.processes import pid_alive
from streamscribe.stack.state import read_stack
from tests.chaos.conftest import assert_batch_intact, finish, running, submit, wait_until
from tests.integration.conftest import Stack
from tests.integration.segments import Shape, assert_intact, rows, sampled_windows

WORKERS = ("ingest", "vad", "asr", "diarization", "post", "materializer", "webhooks", "gateway", "maintenance")


def _infra_pid(stack: Stack, name: str) -> int:
    return int(stack.info["infra"][name]["pid"])


def _wait_infra_back(stack: Stack, name: str, before: dict[str, Any], timeout: float = 120) -> None:
    """Started again by the supervisor, ``stack.json`` counting the restart, on the same ports."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = read_stack(stack.home)
        now = info["infra"][name] if info else {}
        if (now.get("pid") not in (None, before["pid"]) and now.get("restarts") == before["restarts"] + 1
                and pid_alive(now["pid"])):
            for key in ("port", "endpoint", "ports"):
                assert now.get(key) == before.get(key), f"{name} came back on another {key}"
            return
        time.sleep(0.2)
    raise AssertionError(f"{name} was not restarted within {timeout} s")


async def _batch_in_flight(stack: Stack, recordings: list[Path]) -> dict[Path, str]:
    jobs = await submit(stack, recordings)
    await wait_until(lambda: running(stack, jobs), 300, "the batch to be in recognition")
    return jobs


async def test_kill9_of_every_worker_at_once(chaos_stack: Stack, recordings: list[Path],
                                             references: dict[Path, list[Shape]]) -> None:
    jobs = await _batch_in_flight(chaos_stack, recordings)
    killed = {name: chaos_stack.kill9(name) for name in WORKERS}
    for name, pid in killed.items():
        chaos_stack.wait_restarted(name, pid, timeout=120)
    await assert_batch_intact(chaos_stack, jobs, references)


async def test_a_frozen_worker_is_killed_and_restarted(chaos_stack: Stack, recordings: list[Path],
                                                      references: dict[Path, list[Shape]]) -> None:
    """ASR stopped with SIGSTOP mid-batch: alive but answering nothing, it would hold its partitions and the
    batch forever. The supervisor's liveness check kills it once it has been silent for the timeout (20 s on
    this stack) and restarts it; the batch completes, and the reconciler left it alone (its events were unread)."""
    jobs = await _batch_in_flight(chaos_stack, recordings)
    pid = chaos_stack.pid("asr")
    os.kill(pid, signal.SIGSTOP)
    chaos_stack.wait_restarted("asr", pid, timeout=180)
    assert not pid_alive(pid)
    await assert_batch_intact(chaos_stack, jobs, references)


async def test_kill9_of_each_infrastructure_process_mid_batch(chaos_stack: Stack, recordings: list[Path],
                                                             references: dict[Path, list[Shape]]) -> None:
    """The broker, then PostgreSQL, then object storage, each killed once it is back from the previous kill, all
    under one batch (one batch for the three keeps the suite short; each kill hits jobs in flight).

    Every job completes with the clean run's segments. Most resume by themselves (revision 1); a ``kill -9`` of
    Tansu can lose events it acknowledged (seen: a stream's end-of-stream event on ``audio.speech``; an upload's
    chunk on ``audio.chunks``, which VAD then gives up rather than complete the job without its words), and then
    nothing is left on Kafka for that job: the reconciler must run it again (revision 2), and the first run must
    say it was stuck.

    The supervisor starts each again on its ports and counts the restart in ``stack.json``. On Apache Kafka, a
    node or PostgreSQL killed in the middle of a job is tests/integration/test_stack_recovery.py::
    test_infrastructure_killed_mid_job_the_job_completes (this is its Tansu run)."""
    jobs = await _batch_in_flight(chaos_stack, recordings)
    for service in ("broker", "postgres", "objectstore"):
        before = dict(chaos_stack.info["infra"][service])
        os.kill(before["pid"], signal.SIGKILL)
        _wait_infra_back(chaos_stack, service, before)
    done = await assert_batch_intact(chaos_stack, jobs, references, revision=None)
    for path, got in done.items():
        if got["revision"] == 1:
            continue
        revisions = await _revisions(chaos_stack, got["job_id"])
        assert [r["status"] for r in revisions] == ["failed", "completed"], (path.name, revisions)
        assert revisions[0]["error"].startswith("stuck: ") and revisions[1]["attempt"] == 2, (path.name, revisions)


async def test_frozen_database(chaos_stack: Stack, recordings: list[Path],
                               references: dict[Path, list[Shape]]) -> None:
    """The postmaster and every backend stopped (SIGSTOP) for 20 s: connections hang rather than fail."""
    jobs = await _batch_in_flight(chaos_stack, recordings)
    postmaster = psutil.Process(_infra_pid(chaos_stack, "postgres"))
    frozen = [postmaster, *postmaster.children(recursive=True)]
    for proc in frozen:
        proc.send_signal(signal.SIGSTOP)
    try:
        await asyncio.sleep(20)
        assert all(p.status() == psutil.STATUS_STOPPED for p in frozen if p.is_running())
    finally:
        for proc in frozen:
            if proc.is_running():
                proc.send_signal(signal.SIGCONT)
    await assert_batch_intact(chaos_stack, jobs, references)


def _down(stack: Stack) -> str:
    down = stack.cli("down", "--home", str(stack.home))
    assert down.returncode == 0, down.stdout + down.stderr
    return down.stderr


def _up(stack: Stack) -> str:
    up = stack.cli("up", "--detach", "--home", str(stack.home), "--port", stack.url.rsplit(":", 1)[1],
                   *stack.kafka_args)
    assert up.returncode == 0, up.stdout + up.stderr
    return up.stderr


async def test_down_and_up_with_jobs_in_flight(chaos_stack: Stack, recordings: list[Path],
                                               references: dict[Path, list[Shape]]) -> None:
    """``down`` names the jobs in flight and lists them in ``<home>/inflight.json`` for the reconciler; ``up``
    says so. The broker's log (topics, offsets, history) is kept: the pipeline resumes every job (no run again
    needed), and the events from before the stop are still in the log.

    On Apache Kafka the same stop and start is tests/integration/test_stack_recovery.py::
    test_down_names_jobs_in_flight_and_up_finishes_them (this is its Tansu run)."""
    home = chaos_stack.home
    (home / "inflight.json").unlink(missing_ok=True)
    jobs = await _batch_in_flight(chaos_stack, recordings)
    up = ""
    try:
        stopped = _down(chaos_stack)
        assert read_stack(home) is None
        assert (home / "inflight.json").exists(), stopped
        in_flight = {j["job_id"] for j in json.loads((home / "inflight.json").read_text())["jobs"]}
    finally:  # whatever happens, the next tests find the stack up
        up = _up(chaos_stack)
    assert in_flight and in_flight <= set(jobs.values()), (in_flight, jobs)
    for job_id in in_flight:
        assert job_id in stopped, stopped
    assert "inflight.json" in stopped and "reconciler" in stopped, stopped
    assert "were in flight" in up, up
    await assert_batch_intact(chaos_stack, jobs, references)
    history = chaos_stack.cli("tail", "jobs.events", "--from-beginning", "--timeout", "5", "--home", str(home))
    seen = {json.loads(line)["value"].get("job_id") for line in history.stdout.splitlines() if line.startswith("{")}
    assert set(jobs.values()) <= seen, "the events from before down are still in the broker's log"


async def test_down_broker_history_lost_up_the_reconciler_runs_them_again(
        chaos_stack: Stack, recordings: list[Path], references: dict[Path, list[Shape]], receiver: Any) -> None:
    """The broker's log is wiped while the stack is down (a broker that lost its history): nothing on Kafka is
    left for the jobs in flight. The reconciler runs each again from its stored recording as revision 2, with the
    clean run's segments; a job whose recording was also deleted meanwhile fails with the reason."""
    jobs = await _batch_in_flight(chaos_stack, recordings)
    # read while the stack runs (stack.json and the database go with it): the recordings' store is the stack's
    # local directory, which a stopped stack leaves in place
    settings = chaos_stack.settings()
    keys = {path: await _object_key(chaos_stack, job) for path, job in jobs.items()}
    try:
        _down(chaos_stack)
        handed = {j["job_id"] for j in json.loads((chaos_stack.home / "inflight.json").read_text())["jobs"]}
        in_flight = [p for p, j in jobs.items() if j in handed]
        assert len(in_flight) >= 2, f"only {len(in_flight)} jobs were in flight at the stop: it would prove little"
        lost = in_flight[0]
        shutil.rmtree(chaos_stack.home / "seaweed" / "data")  # topics, offsets and state changelogs: all gone
        store = store_from_settings(settings)
        try:
            await store.delete(keys[lost])
        finally:
            await store.close()
    finally:  # whatever happens, the next tests find the stack up
        _up(chaos_stack)

    done = await finish(chaos_stack, jobs)
    failed = done.pop(lost)
    assert failed["status"] == "failed" and "stored recording is gone" in failed["error"], failed
    assert "in flight when the stack stopped" in failed["error"] and failed["error_stage"] == "streamscribe-reconciler"
    for path, got in done.items():
        assert got["status"] == "completed", (path.name, got.get("error"), got.get("error_stage"), got)
        assert_intact(await rows(chaos_stack, got["job_id"]), references[path], sampled_windows(chaos_stack))
        if path not in in_flight:  # it had finished before the stop
            assert got["revision"] == 1, (path.name, got)
            continue
        assert got["revision"] == 2, (path.name, got)
        revisions = await _revisions(chaos_stack, got["job_id"])
        assert [r["status"] for r in revisions] == ["failed", "completed"], revisions
        assert "in flight when the stack stopped" in revisions[0]["error"] and revisions[1]["attempt"] == 2
        # every outcome reaches the subscriber: the run queued again, then its completion
        await wait_until(lambda j=got["job_id"]: _has(receiver, j, "job.requeued", "job.completed"), 60,
                         f"webhooks of {path.name}")
        assert receiver.of(got["job_id"], "job.requeued")[0]["previous_revision"] == 1
    await wait_until(lambda: _has(receiver, jobs[lost], "job.failed"), 60, "the failure's webhook")
    assert "stored recording is gone" in receiver.of(jobs[lost], "job.failed")[0]["error"]


async def _has(receiver: Any, job_id: str, *types: str) -> bool:
    return set(types) <= set(receiver.types(job_id))


async def _object_key(stack: Stack, job_id: str) -> str:
    conn = await stack.db()
    try:
        return str(await conn.fetchval("SELECT object_key FROM jobs WHERE job_id = $1", job_id))
    finally:
        await conn.close()


async def _revisions(stack: Stack, job_id: str) -> list[dict[str, Any]]:
    conn = await stack.db()
    try:
        found = await conn.fetch("SELECT revision, status, error, attempt FROM revisions WHERE job_id = $1 "
                                 "ORDER BY revision", job_id)
    finally:
        await conn.close()
    return [dict(r) for r in found]
