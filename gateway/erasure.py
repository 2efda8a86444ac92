"""Erasure everywhere the platform keeps data: recordings in object storage, jobs with their transcripts,
revisions, speakers and turns (cascading rows), the full-text index (it lives in those rows), voice profiles
and files. Used by the erasure endpoints (GDPR requests), and by the retention sweep.

What this cannot reach is the event history in Kafka: result topics keep events until their retention
expires (docs/privacy.md). The audit log keeps who erased what, never the content.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from connectors.storage.base import ObjectStore
from repositories.audit import AuditLog
from repositories.erasure import ErasureStore


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


async def erase_jobs(rows: ErasureStore, store: ObjectStore, job_ids: list[str]) -> Erased:
    """Jobs with their transcripts, live archives and uploaded recordings. A recording uploaded with a job goes
    with it unless a surviving job was made from it (``file_id``); a file uploaded on its own (``/v1/files``)
    is its own resource and stays (it goes with its own deletion, retention, or user/org erasure)."""
    out = Erased()
    if not job_ids:
        return out
    deleted = await rows.delete_jobs(job_ids)
    out.jobs = len(deleted)
    out.job_ids = [job_id for job_id, _ in deleted]
    candidates = [file_id for _, file_id in deleted if file_id]
    shared = await rows.object_keys_still_used(candidates)
    for job_id in job_ids:
        prefixes = [f"live/{job_id}/"]
        if not any(key.startswith(f"uploads/{job_id}/") for key in shared):
            prefixes.append(f"uploads/{job_id}/")
        out.objects += await _delete_objects(store, prefixes)
    keys = await rows.delete_files(await rows.unused_job_uploads(candidates))
    for key in keys:  # most went with the prefixes above; one uploaded with a job erased earlier goes now
        if not any(key.startswith(f"uploads/{job_id}/") for job_id in job_ids):
            await store.delete(key)
            out.objects += 1
    out.files += len(keys)
    return out


async def erase_files(rows: ErasureStore, store: ObjectStore, file_ids: list[str]) -> Erased:
    out = Erased()
    keys = await rows.delete_files(file_ids)
    await rows.detach_files(file_ids)
    for key in keys:
        await store.delete(key)
        out.objects += 1
    out.files = len(keys)
    return out


async def _erase_profiles(store: ObjectStore, profile_ids: list[str]) -> Erased:
    """The stored samples of voice profiles whose rows are deleted."""
    out = Erased(profiles=len(profile_ids))
    for profile_id in profile_ids:
        out.objects += await _delete_objects(store, [f"speakers/{profile_id}/"])
    return out


async def erase_user(rows: ErasureStore, store: ObjectStore, user_id: str) -> Erased:
    """Everything a user brought: their jobs and recordings, voice profiles and files, then the account
    (its API keys and sessions go with it)."""
    out = await erase_jobs(rows, store, await rows.jobs_of_user(user_id))
    out.add(await _erase_profiles(store, await rows.delete_profiles_of_user(user_id)))
    out.add(await erase_files(rows, store, await rows.files_of_user(user_id)))
    out.users = await rows.delete_user(user_id)
    return out


async def erase_org(rows: ErasureStore, store: ObjectStore, org_id: str, delete_org: bool) -> Erased:
    """All of an organization's data; with ``delete_org`` its users, keys and the organization itself."""
    out = await erase_jobs(rows, store, await rows.jobs_of_org(org_id))
    out.add(await _erase_profiles(store, await rows.delete_profiles_of_org(org_id)))
    out.add(await erase_files(rows, store, await rows.files_of_org(org_id)))
    if delete_org and org_id != "default":
        out.users = await rows.delete_org(org_id)  # users, keys cascade
    return out


# How long the id of a deleted job is kept (repositories/migrations/0008_deleted_jobs.sql): longer than any topic
# keeps events (4 weeks, streams/kafka/topics.py), so that none of its results, even re-read by a consumer group
# moved back in time, can bring it back.
DELETED_JOBS_KEPT = timedelta(days=35)


async def apply_retention(rows: ErasureStore, audit: AuditLog, store: ObjectStore,
                          now: datetime | None = None) -> dict[str, Erased]:
    """Delete the jobs (audio and transcripts) and files of every organization that are older than its
    retention period; forget the ids of jobs deleted more than ``DELETED_JOBS_KEPT`` ago."""
    now = now or datetime.now(UTC)
    await rows.forget_deleted_jobs(now - DELETED_JOBS_KEPT)
    results: dict[str, Erased] = {}
    for org_id, days in await rows.retention_periods():
        cutoff = now - timedelta(days=days)
        out = await erase_jobs(rows, store, await rows.jobs_of_org(org_id, created_before=cutoff))
        out.add(await erase_files(rows, store, await rows.files_of_org(org_id, created_before=cutoff)))
        if out.jobs or out.files:
            await audit.record("system", "retention.erase", f"org:{org_id}",
                               {**out.to_json(), "older_than_days": days}, org_id=org_id)
        results[org_id] = out
    return results
