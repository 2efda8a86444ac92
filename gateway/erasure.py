"""Erasure everywhere the platform keeps data: recordings in object storage, jobs with their transcripts,
revisions, speakers and turns (cascading rows), the full-text index (it lives in those rows), voice profiles
and files. Used by the erasure endpoints (GDPR requests), and by the retention sweep.

What this cannot reach is the event history in Kafka: result topics keep events until their retention
expires (docs/privacy.md). The audit log keeps who erased what, never the content.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg

from connectors.storage.base import ObjectStore


@dataclass
class Erased:
    jobs: int = 0
    objects: int = 0
    profiles: int = 0
    files: int = 0
    users: int = 0
    job_ids: list[str] = field(default_factory=list)

    def add(self, other: Erased) -> None:
        self.jobs += other.jobs
        self.objects += other.objects
        self.profiles += other.profiles
        self.files += other.files
        self.users += other.users
        self.job_ids += other.job_ids

    def to_json(self) -> dict[str, int]:
        return {"jobs": self.jobs, "objects": self.objects, "profiles": self.profiles, "files": self.files,
                "users": self.users}


async def _delete_objects(store: ObjectStore, prefixes: list[str]) -> int:
    count = 0
    for prefix in prefixes:
        count += await store.delete_prefix(prefix)
    return count


async def erase_jobs(pool: asyncpg.Pool, store: ObjectStore, job_ids: list[str]) -> Erased:
    """Jobs with their transcripts, live archives and uploaded recordings. A recording uploaded with a job goes
    with it unless a surviving job was made from it (``file_id``); a file uploaded on its own (``/v1/files``)
    is its own resource and stays (it goes with its own deletion, retention, or user/org erasure)."""
    out = Erased()
    if not job_ids:
        return out
    rows = await pool.fetch("DELETE FROM jobs WHERE job_id = ANY($1::text[]) RETURNING job_id, file_id", job_ids)
    out.jobs = len(rows)
    out.job_ids = [r["job_id"] for r in rows]
    candidates = [r["file_id"] for r in rows if r["file_id"]]
    shared = {r["object_key"] for r in await pool.fetch(
        "SELECT DISTINCT f.object_key FROM files f JOIN jobs j ON j.file_id = f.file_id "
        "WHERE f.file_id = ANY($1::text[])", candidates)}
    for job_id in job_ids:
        prefixes = [f"live/{job_id}/"]
        if not any(key.startswith(f"uploads/{job_id}/") for key in shared):
            prefixes.append(f"uploads/{job_id}/")
        out.objects += await _delete_objects(store, prefixes)
    owned = [r["file_id"] for r in await pool.fetch(
        "SELECT file_id FROM files WHERE file_id = ANY($1::text[]) AND object_key LIKE 'uploads/%' "
        "AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.file_id = files.file_id)", candidates)]
    rows = await pool.fetch("DELETE FROM files WHERE file_id = ANY($1::text[]) RETURNING object_key", owned)
    for r in rows:  # most went with the prefixes above; one uploaded with a job erased earlier goes now
        if not any(r["object_key"].startswith(f"uploads/{job_id}/") for job_id in job_ids):
            await store.delete(r["object_key"])
            out.objects += 1
    out.files += len(rows)
    return out


async def erase_files(pool: asyncpg.Pool, store: ObjectStore, file_ids: list[str]) -> Erased:
    out = Erased()
    rows = await pool.fetch("DELETE FROM files WHERE file_id = ANY($1::text[]) RETURNING object_key", file_ids)
    # jobs made from these files keep their transcripts but no longer have stored audio
    await pool.execute("UPDATE jobs SET file_id = NULL, object_key = NULL WHERE file_id = ANY($1::text[])", file_ids)
    for r in rows:
        await store.delete(r["object_key"])
        out.objects += 1
    out.files = len(rows)
    return out


async def erase_profiles(pool: asyncpg.Pool, store: ObjectStore, where: str, arg: str) -> Erased:
    out = Erased()
    rows = await pool.fetch(f"DELETE FROM speaker_profiles WHERE {where} = $1 RETURNING profile_id", arg)
    for r in rows:
        out.objects += await _delete_objects(store, [f"speakers/{r['profile_id']}/"])
    out.profiles = len(rows)
    return out


async def erase_user(pool: asyncpg.Pool, store: ObjectStore, user_id: str) -> Erased:
    """Everything a user brought: their jobs and recordings, voice profiles and files, then the account
    (its API keys and sessions go with it)."""
    out = await erase_jobs(pool, store, [r["job_id"] for r in await pool.fetch(
        "SELECT job_id FROM jobs WHERE user_id = $1", user_id)])
    out.add(await erase_profiles(pool, store, "user_id", user_id))
    out.add(await erase_files(pool, store, [r["file_id"] for r in await pool.fetch(
        "SELECT file_id FROM files WHERE user_id = $1", user_id)]))
    out.users = len(await pool.fetch("DELETE FROM users WHERE user_id = $1 RETURNING user_id", user_id))
    return out


async def erase_org(pool: asyncpg.Pool, store: ObjectStore, org_id: str, delete_org: bool) -> Erased:
    """All of an organization's data; with ``delete_org`` its users, keys and the organization itself."""
    out = await erase_jobs(pool, store, [r["job_id"] for r in await pool.fetch(
        "SELECT job_id FROM jobs WHERE org_id = $1", org_id)])
    out.add(await erase_profiles(pool, store, "org_id", org_id))
    out.add(await erase_files(pool, store, [r["file_id"] for r in await pool.fetch(
        "SELECT file_id FROM files WHERE org_id = $1", org_id)]))
    if delete_org and org_id != "default":
        out.users = len(await pool.fetch("SELECT user_id FROM users WHERE org_id = $1", org_id))
        await pool.execute("DELETE FROM organizations WHERE org_id = $1", org_id)  # users, keys cascade
    return out


async def apply_retention(pool: asyncpg.Pool, store: ObjectStore, now: datetime | None = None) -> dict[str, Erased]:
    """Delete the jobs (audio and transcripts) and files of every organization that are older than its
    retention period."""
    now = now or datetime.now(UTC)
    results: dict[str, Erased] = {}
    for org in await pool.fetch("SELECT org_id, retention_days FROM organizations WHERE retention_days IS NOT NULL"):
        cutoff = now - timedelta(days=org["retention_days"])
        out = await erase_jobs(pool, store, [r["job_id"] for r in await pool.fetch(
            "SELECT job_id FROM jobs WHERE org_id = $1 AND created_at < $2", org["org_id"], cutoff)])
        out.add(await erase_files(pool, store, [r["file_id"] for r in await pool.fetch(
            "SELECT file_id FROM files WHERE org_id = $1 AND created_at < $2", org["org_id"], cutoff)]))
        if out.jobs or out.files:
            await pool.execute(
                "INSERT INTO audit_log (org_id, actor, action, resource, details) VALUES ($1, 'system', "
                "'retention.erase', $2, $3::jsonb)", org["org_id"], f"org:{org['org_id']}",
                json.dumps({**out.to_json(), "older_than_days": org["retention_days"]}))
        results[org["org_id"]] = out
    return results
