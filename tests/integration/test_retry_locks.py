"""A retry of a job in flight, while the materializer writes the same job's progress, answers as asked instead of
failing with a database deadlock (a chaos run saw ``POST /v1/jobs/{id}/retry`` answer 500).

The materializer's transaction is played here on its own connection, in the order of
``repositories.projection._job_event`` for a batch holding two events of the job: a revision's status (its row
locked), then a stage row (a foreign-key check on the job's row), then the job's row. The retry (``JobStore.rerun``)
locks the job's row, then the revision's. Started between the two, that made a deadlock that PostgreSQL broke by
aborting the retry; now the retry does not block the foreign-key check, and runs again if it is aborted."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration


async def test_a_retry_beside_the_materializer_is_not_a_deadlock(stack: Stack, speech: Path) -> None:
    job, _ = await stack.transcribe(speech / "read" / "LJ001-0003.wav", diarize="off")
    assert job["status"] == "completed", job
    job_id, revision = job["job_id"], job["revision"]
    db = await stack.db()
    materializer = await stack.db()
    try:
        # the job back in flight, as it is while the pipeline works on it
        await db.execute("UPDATE jobs SET status = 'running', completed_at = NULL WHERE job_id = $1", job_id)
        await db.execute("UPDATE revisions SET status = 'running' WHERE job_id = $1 AND revision = $2",
                         job_id, revision)
        tx = materializer.transaction()
        await tx.start()
        await materializer.execute("UPDATE revisions SET status = 'running' WHERE job_id = $1 AND revision = $2",
                                   job_id, revision)

        async def retry() -> tuple[int, Any]:
            async with aiohttp.ClientSession(headers=stack.auth) as http, \
                    http.post(f"{stack.url}/v1/jobs/{job_id}/retry") as resp:
                return resp.status, await resp.json()

        asked = asyncio.create_task(retry())
        await asyncio.sleep(0.5)  # the retry holds the job's row and waits for the revision's
        assert not asked.done(), "the retry did not wait for the revision the materializer holds"
        await materializer.execute(
            "INSERT INTO job_stages (job_id, revision, stage, state, updated_at) VALUES ($1, $2, 'post', 'running', "
            "now()) ON CONFLICT (job_id, revision, stage) DO UPDATE SET updated_at = now()", job_id, revision)
        # the job's row next: with the retry holding it, PostgreSQL finds the deadlock within its deadlock_timeout
        # (1 s) and aborts one side; the materializer's batch would be retried (repositories.projection), and so is
        # the retry's transaction now
        with contextlib.suppress(asyncpg.exceptions.DeadlockDetectedError):  # this side aborted: the retry goes on
            await asyncio.wait_for(materializer.execute(
                "UPDATE jobs SET updated_at = now() WHERE job_id = $1", job_id), timeout=30)
        await tx.rollback()
        status, body = await asyncio.wait_for(asked, timeout=30)
        assert status == 202, body
        assert body["revision"] == revision + 1 and body["created"], body
        assert await db.fetchval("SELECT status FROM revisions WHERE job_id = $1 AND revision = $2",
                                 job_id, revision) == "failed"
    finally:
        await materializer.close()
        await db.close()
