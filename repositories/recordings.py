"""Where a job's recording is stored: what the audio player and excerpt cutting read (the job's object key,
which the job's JSON does not show)."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True)
class Recording:
    job_id: str
    org_id: str
    object_key: str | None
    filename: str | None
    content_type: str | None
    source: str


class RecordingStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def recording(self, job_id: str) -> Recording | None:
        row = await self.pool.fetchrow(
            "SELECT job_id, org_id, object_key, filename, content_type, source FROM jobs WHERE job_id = $1", job_id)
        if row is None:
            return None
        return Recording(job_id=row["job_id"], org_id=row["org_id"], object_key=row["object_key"],
                         filename=row["filename"], content_type=row["content_type"], source=row["source"])
