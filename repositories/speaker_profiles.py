"""Enrolled voice profiles as the gateway manages them (the ``speaker_profiles`` table; the diarization
workers fill in each profile's embedding through the materializer)."""

from __future__ import annotations

from typing import Any

import asyncpg

from repositories.rows import changed_one, iso


def profile_json(r: asyncpg.Record) -> dict[str, Any]:
    return {"id": r["profile_id"], "org_id": r["org_id"], "name": r["name"], "status": r["status"],
            "samples": r["samples"],
            "voiced_seconds": r["voiced_seconds"], "backend": r["backend"], "error": r["error"],
            "created_at": iso(r["created_at"]), "updated_at": iso(r["updated_at"])}


class SpeakerProfiles:
    """Every query takes the organization it is confined to; None: any organization (the platform admin)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create(self, profile_id: str, org_id: str, name: str, object_keys: list[str]) -> None:
        await self._pool.execute(
            "INSERT INTO speaker_profiles (profile_id, org_id, name, samples, object_keys) VALUES ($1, $2, $3, $4, $5)",
            profile_id, org_id, name, len(object_keys), object_keys,
        )

    async def profiles(self, org_id: str | None) -> list[dict[str, Any]]:
        rows = await self._pool.fetch(
            "SELECT * FROM speaker_profiles WHERE ($1::text IS NULL OR org_id = $1) ORDER BY created_at", org_id)
        return [profile_json(r) for r in rows]

    async def get(self, org_id: str | None, profile_id: str) -> dict[str, Any] | None:
        row = await self._pool.fetchrow(
            "SELECT * FROM speaker_profiles WHERE ($1::text IS NULL OR org_id = $1) AND profile_id = $2",
            org_id, profile_id)
        return profile_json(row) if row else None

    async def rename(self, org_id: str | None, profile_id: str, name: str) -> bool:
        status = await self._pool.execute(
            "UPDATE speaker_profiles SET name = $3, updated_at = now() "
            "WHERE ($1::text IS NULL OR org_id = $1) AND profile_id = $2",
            org_id, profile_id, name,
        )
        return changed_one(status)

    async def delete(self, org_id: str | None, profile_id: str) -> list[str] | None:
        """Delete a profile; its samples' object keys (the caller deletes the objects), or None if there was
        no such profile."""
        keys = await self._pool.fetchval(
            "DELETE FROM speaker_profiles WHERE ($1::text IS NULL OR org_id = $1) AND profile_id = $2 "
            "RETURNING object_keys",
            org_id, profile_id,
        )
        return list(keys) if keys is not None else None
