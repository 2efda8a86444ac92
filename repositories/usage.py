"""Usage per organization: jobs and the audio seconds they carried, by source and state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg


@dataclass(frozen=True)
class UsageRow:
    org_id: str
    source: str
    status: str
    jobs: int
    seconds: float


class UsageReport:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def rows(self, org_id: str | None, since: datetime | None, until: datetime | None) -> list[UsageRow]:
        """Job counts and summed audio duration per (organization, source, status) of the jobs created in
        [since, until); ``org_id`` None: every organization."""
        rows = await self._pool.fetch(
            """
            SELECT j.org_id, j.source, j.status, count(*) AS jobs, COALESCE(sum(j.duration), 0) AS seconds
            FROM jobs j
            WHERE ($1::text IS NULL OR j.org_id = $1) AND ($2::timestamptz IS NULL OR j.created_at >= $2)
              AND ($3::timestamptz IS NULL OR j.created_at < $3)
            GROUP BY j.org_id, j.source, j.status ORDER BY j.org_id, j.source, j.status
            """, org_id, since, until)
        return [UsageRow(r["org_id"], r["source"], r["status"], int(r["jobs"]), float(r["seconds"])) for r in rows]
