"""The rows erasure and retention remove: jobs (their transcripts, revisions, speakers and turns cascade),
files, voice profiles, users and organizations. ``gateway.erasure`` decides what goes and deletes the objects
in storage; this module only finds and deletes rows."""

from __future__ import annotations

from datetime import datetime

import asyncpg


class ErasureStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    # -- what belongs to whom -----------------------------------------------------------------------
    async def jobs_of_user(self, user_id: str) -> list[str]:
        return [r["job_id"] for r in await self._pool.fetch("SELECT job_id FROM jobs WHERE user_id = $1", user_id)]

    async def jobs_of_org(self, org_id: str, created_before: datetime | None = None) -> list[str]:
        rows = await self._pool.fetch(
            "SELECT job_id FROM jobs WHERE org_id = $1 AND ($2::timestamptz IS NULL OR created_at < $2)",
            org_id, created_before)
        return [r["job_id"] for r in rows]

    async def files_of_user(self, user_id: str) -> list[str]:
        return [r["file_id"] for r in await self._pool.fetch("SELECT file_id FROM files WHERE user_id = $1", user_id)]

    async def files_of_org(self, org_id: str, created_before: datetime | None = None) -> list[str]:
        rows = await self._pool.fetch(
            "SELECT file_id FROM files WHERE org_id = $1 AND ($2::timestamptz IS NULL OR created_at < $2)",
            org_id, created_before)
        return [r["file_id"] for r in rows]

    async def retention_periods(self) -> list[tuple[str, int]]:
        """(org_id, retention_days) of every organization that has a retention period."""
        rows = await self._pool.fetch(
            "SELECT org_id, retention_days FROM organizations WHERE retention_days IS NOT NULL")
        return [(r["org_id"], int(r["retention_days"])) for r in rows]

    # -- jobs ---------------------------------------------------------------------------------------------
    async def delete_jobs(self, job_ids: list[str]) -> list[tuple[str, str | None]]:
        """Delete jobs (with everything that cascades from them); (job_id, file_id) of each deleted one. Each
        leaves its id in ``deleted_jobs``, so that results of it still in flight do not bring it back."""
        rows = await self._pool.fetch(
            "WITH gone AS (DELETE FROM jobs WHERE job_id = ANY($1::text[]) RETURNING job_id, file_id), "
            "marked AS (INSERT INTO deleted_jobs (job_id) SELECT job_id FROM gone ON CONFLICT DO NOTHING) "
            "SELECT job_id, file_id FROM gone", job_ids)
        return [(r["job_id"], r["file_id"]) for r in rows]

    async def forget_deleted_jobs(self, deleted_before: datetime) -> int:
        """Forget the ids of jobs deleted before ``deleted_before`` (``deleted_jobs``); how many."""
        return int(await self._pool.fetchval(
            "WITH gone AS (DELETE FROM deleted_jobs WHERE deleted_at < $1 RETURNING 1) SELECT count(*) FROM gone",
            deleted_before))

    async def object_keys_still_used(self, file_ids: list[str]) -> set[str]:
        """The object keys of those files that some job is still made from."""
        rows = await self._pool.fetch(
            "SELECT DISTINCT f.object_key FROM files f JOIN jobs j ON j.file_id = f.file_id "
            "WHERE f.file_id = ANY($1::text[])", file_ids)
        return {r["object_key"] for r in rows}

    async def unused_job_uploads(self, file_ids: list[str]) -> list[str]:
        """Those files that were uploaded with a job (``uploads/``) and that no job is made from any more."""
        rows = await self._pool.fetch(
            "SELECT file_id FROM files WHERE file_id = ANY($1::text[]) AND object_key LIKE 'uploads/%' "
            "AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.file_id = files.file_id)", file_ids)
        return [r["file_id"] for r in rows]

    # -- files, profiles, accounts ------------------------------------------------------------------------
    async def delete_files(self, file_ids: list[str]) -> list[str]:
        """Delete files' rows; the object key of each deleted one (the caller deletes the objects)."""
        rows = await self._pool.fetch(
            "DELETE FROM files WHERE file_id = ANY($1::text[]) RETURNING object_key", file_ids)
        return [r["object_key"] for r in rows]

    async def detach_files(self, file_ids: list[str]) -> None:
        """Jobs made from these files keep their transcripts but no longer have stored audio."""
        await self._pool.execute(
            "UPDATE jobs SET file_id = NULL, object_key = NULL WHERE file_id = ANY($1::text[])", file_ids)

    async def delete_profiles_of_user(self, user_id: str) -> list[str]:
        """Delete a user's voice profiles; their ids."""
        rows = await self._pool.fetch(
            "DELETE FROM speaker_profiles WHERE user_id = $1 RETURNING profile_id", user_id)
        return [r["profile_id"] for r in rows]

    async def delete_profiles_of_org(self, org_id: str) -> list[str]:
        rows = await self._pool.fetch(
            "DELETE FROM speaker_profiles WHERE org_id = $1 RETURNING profile_id", org_id)
        return [r["profile_id"] for r in rows]

    async def delete_user(self, user_id: str) -> int:
        """Delete an account (its API keys and sessions cascade); 1 if it existed, else 0."""
        return len(await self._pool.fetch("DELETE FROM users WHERE user_id = $1 RETURNING user_id", user_id))

    async def delete_org(self, org_id: str) -> int:
        """Delete an organization (its users and keys cascade); the number of users it had."""
        users = len(await self._pool.fetch("SELECT user_id FROM users WHERE org_id = $1", org_id))
        await self._pool.execute("DELETE FROM organizations WHERE org_id = $1", org_id)
        return users
