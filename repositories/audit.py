"""The audit log: who did what to which resource, never the content (``audit_log``)."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from repositories.rows import iso


class AuditLog:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def record(self, actor: str, action: str, resource: str | None = None,
                     details: dict[str, Any] | None = None, *, org_id: str | None = None,
                     ip: str | None = None) -> None:
        """One entry; ``actor`` is ``user:<id>``, ``key:<id>``, ``system`` or ``anonymous``."""
        await self._pool.execute(
            "INSERT INTO audit_log (org_id, actor, action, resource, details, ip) "
            "VALUES ($1, $2, $3, $4, $5::jsonb, $6)",
            org_id, actor, action, resource, json.dumps(details or {}), ip)

    async def entries(self, org_id: str | None, limit: int = 100) -> list[dict[str, Any]]:
        """The newest entries first; ``org_id`` None: every organization."""
        rows = await self._pool.fetch(
            "SELECT * FROM audit_log WHERE ($1::text IS NULL OR org_id = $1) ORDER BY id DESC LIMIT $2", org_id, limit)
        return [{"id": r["id"], "at": iso(r["at"]), "org_id": r["org_id"], "actor": r["actor"], "action": r["action"],
                 "resource": r["resource"], "details": json.loads(r["details"]), "ip": r["ip"]} for r in rows]
