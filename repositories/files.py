"""Files: recordings stored once in object storage, with what a probe found in them (the ``files`` table)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import asyncpg

from repositories.rows import iso


@dataclass(frozen=True)
class NewFile:
    """The columns of a new ``files`` row."""

    file_id: str
    org_id: str
    user_id: str | None
    object_key: str
    filename: str | None
    content_type: str | None
    size_bytes: int
    duration: float | None = None
    codec: str | None = None
    container: str | None = None
    sample_rate: int | None = None
    channels: int | None = None
    probe_error: str | None = None


async def insert_file(conn: asyncpg.Connection, row: NewFile) -> None:
    """Insert a ``files`` row on ``conn`` (so a job can record its upload in its own transaction)."""
    values = asdict(row)
    cols = list(values)
    await conn.execute(
        f"INSERT INTO files ({', '.join(cols)}) VALUES ({', '.join(f'${i}' for i in range(1, len(cols) + 1))})",
        *values.values())


def file_json(r: asyncpg.Record | dict[str, Any]) -> dict[str, Any]:
    """A file as the API shows it (never its object key)."""
    return {"file_id": r["file_id"], "org_id": r["org_id"], "user_id": r["user_id"], "filename": r["filename"],
            "content_type": r["content_type"], "size_bytes": r["size_bytes"], "duration": r["duration"],
            "codec": r["codec"], "container": r["container"], "sample_rate": r["sample_rate"],
            "channels": r["channels"], "probe_error": r["probe_error"], "created_at": iso(r["created_at"]),
            "links": {"self": f"/v1/files/{r['file_id']}", "content": f"/v1/files/{r['file_id']}/content"}}


class FileStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create(self, row: NewFile) -> None:
        async with self._pool.acquire() as conn:
            await insert_file(conn, row)

    async def file(self, file_id: str) -> dict[str, Any] | None:
        """A file as the API shows it."""
        row = await self._pool.fetchrow("SELECT * FROM files WHERE file_id = $1", file_id)
        return file_json(row) if row else None

    async def record(self, file_id: str) -> dict[str, Any] | None:
        """A file's row, with what the API does not show (its object key)."""
        row = await self._pool.fetchrow("SELECT * FROM files WHERE file_id = $1", file_id)
        return dict(row) if row else None

    async def page(self, org_id: str | None, after: tuple[datetime, str] | None,
                   limit: int) -> list[dict[str, Any]]:
        """Files newest first, after a (created_at, file_id) cursor, as the API shows them; ``org_id`` None:
        every organization."""
        rows = await self._pool.fetch(
            "SELECT * FROM files WHERE ($1::text IS NULL OR org_id = $1) "
            "AND ($2::timestamptz IS NULL OR (created_at, file_id) < ($2, $3)) "
            "ORDER BY created_at DESC, file_id DESC LIMIT $4",
            org_id, after[0] if after else None, after[1] if after else None, limit)
        return [file_json(r) for r in rows]

    async def delete(self, file_id: str) -> tuple[str, list[str]] | None:
        """Delete a file's row; the jobs made from it keep their transcripts but no longer have stored audio
        (their ``file_id`` and ``object_key`` are cleared). Returns (object_key, detached job ids), or None if
        there was no such file. The caller deletes the object."""
        async with self._pool.acquire() as conn, conn.transaction():
            key = await conn.fetchval("DELETE FROM files WHERE file_id = $1 RETURNING object_key", file_id)
            if key is None:
                return None
            jobs = await conn.fetch(
                "UPDATE jobs SET file_id = NULL, object_key = NULL, updated_at = now() WHERE file_id = $1 "
                "RETURNING job_id", file_id)
            return str(key), [r["job_id"] for r in jobs]
