"""A rerun that PostgreSQL aborts to break a deadlock is run again (repositories.jobs.JobStore.rerun); the database
itself is not needed for the retry rule, so the one transaction is replaced here."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from repositories.jobs import RERUN_ATTEMPTS, JobStore


class Flaky(JobStore):
    def __init__(self, failures: int) -> None:
        self.failures, self.calls = failures, 0

    async def _rerun_once(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        self.calls += 1
        if self.calls <= self.failures:
            raise asyncpg.exceptions.DeadlockDetectedError("deadlock detected")
        return {"job_id": "j", "revision": 2}


async def test_a_rerun_aborted_by_a_deadlock_runs_again() -> None:
    store = Flaky(failures=RERUN_ATTEMPTS - 1)
    assert await store.rerun("j", 1, "tiny.en", {}, "retried", next_attempt=False) == {"job_id": "j", "revision": 2}
    assert store.calls == RERUN_ATTEMPTS


async def test_a_rerun_that_keeps_deadlocking_fails_with_the_database_error() -> None:
    store = Flaky(failures=RERUN_ATTEMPTS)
    with pytest.raises(asyncpg.exceptions.DeadlockDetectedError):
        await store.rerun("j", 1, "tiny.en", {}, "retried", next_attempt=False)
    assert store.calls == RERUN_ATTEMPTS
