"""Identity data in PostgreSQL: organisations, users, API keys, refresh tokens and the audit log."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from gateway.auth.credentials import hash_password, mint, secret_matches, split, verify_password
from gateway.auth.principal import Principal

KEY_PREFIX = "ssk"
REFRESH_PREFIX = "ssr"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


class IdentityStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    # -- organisations -------------------------------------------------------------------------------
    async def create_org(self, name: str, retention_days: int | None = None,
                         org_id: str | None = None) -> dict[str, Any]:
        org_id = org_id or uuid.uuid4().hex[:12]
        row = await self.pool.fetchrow(
            "INSERT INTO organizations (org_id, name, retention_days) VALUES ($1, $2, $3) RETURNING *",
            org_id, name, retention_days)
        return self._org(row)

    async def orgs(self) -> list[dict[str, Any]]:
        return [self._org(r) for r in await self.pool.fetch("SELECT * FROM organizations ORDER BY created_at")]

    async def org(self, org_id: str) -> dict[str, Any] | None:
        row = await self.pool.fetchrow("SELECT * FROM organizations WHERE org_id = $1", org_id)
        return self._org(row) if row else None

    async def set_retention(self, org_id: str, days: int | None) -> None:
        await self.pool.execute("UPDATE organizations SET retention_days = $2 WHERE org_id = $1", org_id, days)

    @staticmethod
    def _org(r: asyncpg.Record) -> dict[str, Any]:
        return {"id": r["org_id"], "name": r["name"], "retention_days": r["retention_days"],
                "created_at": _iso(r["created_at"])}

    # -- users ---------------------------------------------------------------------------------------
    async def create_user(self, org_id: str, email: str, password: str, role: str) -> dict[str, Any]:
        row = await self.pool.fetchrow(
            "INSERT INTO users (user_id, org_id, email, password_hash, role) VALUES ($1, $2, $3, $4, $5) RETURNING *",
            uuid.uuid4().hex[:16], org_id, email.lower(), hash_password(password), role)
        return self._user(row)

    async def users(self, org_id: str | None) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT * FROM users WHERE ($1::text IS NULL OR org_id = $1) ORDER BY created_at", org_id)
        return [self._user(r) for r in rows]

    async def user(self, user_id: str) -> dict[str, Any] | None:
        row = await self.pool.fetchrow("SELECT * FROM users WHERE user_id = $1", user_id)
        return self._user(row) if row else None

    async def is_last_admin(self, user_id: str) -> bool:
        """Whether ``user_id`` is the only enabled platform administrator (who must not be deleted or erased:
        nobody could manage the platform afterwards)."""
        admins = await self.pool.fetch("SELECT user_id FROM users WHERE role = 'admin' AND NOT disabled")
        return [r["user_id"] for r in admins] == [user_id]

    async def delete_user(self, user_id: str) -> None:
        await self.pool.execute("DELETE FROM users WHERE user_id = $1", user_id)

    async def login(self, email: str, password: str) -> dict[str, Any] | None:
        row = await self.pool.fetchrow("SELECT * FROM users WHERE email = $1 AND NOT disabled", email.lower())
        if row is None or not verify_password(password, row["password_hash"]):
            return None
        return self._user(row)

    @staticmethod
    def _user(r: asyncpg.Record) -> dict[str, Any]:
        return {"id": r["user_id"], "org_id": r["org_id"], "email": r["email"], "role": r["role"],
                "disabled": r["disabled"], "created_at": _iso(r["created_at"])}

    # -- API keys ------------------------------------------------------------------------------------
    async def create_key(self, org_id: str, name: str, role: str, scopes: list[str],
                         user_id: str | None) -> tuple[str, dict[str, Any]]:
        minted = mint(KEY_PREFIX)
        row = await self.pool.fetchrow(
            "INSERT INTO api_keys (key_id, org_id, user_id, name, secret_hash, role, scopes) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *",
            minted.token_id, org_id, user_id, name, minted.secret_hash, role, scopes)
        return minted.token, self._key(row)

    async def keys(self, org_id: str | None) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT * FROM api_keys WHERE ($1::text IS NULL OR org_id = $1) ORDER BY created_at", org_id)
        return [self._key(r) for r in rows]

    async def key(self, key_id: str) -> dict[str, Any] | None:
        row = await self.pool.fetchrow("SELECT * FROM api_keys WHERE key_id = $1", key_id)
        return self._key(row) if row else None

    async def revoke_key(self, key_id: str) -> None:
        await self.pool.execute("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()) WHERE key_id = $1",
                                key_id)

    async def principal_for_key(self, token: str) -> Principal | None:
        parts = split(token, KEY_PREFIX)
        if parts is None:
            return None
        row = await self.pool.fetchrow(
            "UPDATE api_keys SET last_used_at = now() WHERE key_id = $1 AND revoked_at IS NULL RETURNING *", parts[0])
        if row is None or not secret_matches(parts[1], row["secret_hash"]):
            return None
        return Principal(org_id=row["org_id"], role=row["role"], user_id=row["user_id"], key_id=row["key_id"],
                         key_scopes=frozenset(row["scopes"] or []))

    @staticmethod
    def _key(r: asyncpg.Record) -> dict[str, Any]:
        return {"id": r["key_id"], "org_id": r["org_id"], "user_id": r["user_id"], "name": r["name"],
                "role": r["role"], "scopes": list(r["scopes"] or []), "created_at": _iso(r["created_at"]),
                "last_used_at": _iso(r["last_used_at"]), "revoked": r["revoked_at"] is not None}

    # -- refresh tokens (rotated on every use; reuse of a spent one revokes its whole family) ----------
    async def issue_refresh(self, user_id: str, ttl: int, family: str | None = None) -> str:
        minted = mint(REFRESH_PREFIX)
        await self.pool.execute(
            "INSERT INTO refresh_tokens (token_id, user_id, secret_hash, family, expires_at) "
            "VALUES ($1, $2, $3, $4, $5)",
            minted.token_id, user_id, minted.secret_hash, family or minted.token_id,
            datetime.now(UTC) + timedelta(seconds=ttl))
        return minted.token

    async def use_refresh(self, token: str) -> tuple[str, str] | None:
        """(user_id, family) of a valid, unused refresh token, which is spent by this call."""
        parts = split(token, REFRESH_PREFIX)
        if parts is None:
            return None
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow("SELECT * FROM refresh_tokens WHERE token_id = $1 FOR UPDATE", parts[0])
            if row is None or not secret_matches(parts[1], row["secret_hash"]):
                return None
            if row["used_at"] is not None or row["revoked_at"] is not None:
                # a spent token presented again: someone copied it; end the whole session family
                await conn.execute("UPDATE refresh_tokens SET revoked_at = now() WHERE family = $1", row["family"])
                return None
            if row["expires_at"] < datetime.now(UTC):
                return None
            await conn.execute("UPDATE refresh_tokens SET used_at = now() WHERE token_id = $1", row["token_id"])
            return row["user_id"], row["family"]

    async def revoke_refresh(self, token: str) -> None:
        parts = split(token, REFRESH_PREFIX)
        if parts is not None:
            await self.pool.execute(
                "UPDATE refresh_tokens SET revoked_at = now() WHERE family = "
                "(SELECT family FROM refresh_tokens WHERE token_id = $1)", parts[0])

    # -- audit log -----------------------------------------------------------------------------------
    async def audit(self, principal: Principal | None, action: str, resource: str | None = None,
                    details: dict[str, Any] | None = None, ip: str | None = None, org_id: str | None = None) -> None:
        await self.pool.execute(
            "INSERT INTO audit_log (org_id, actor, action, resource, details, ip) "
            "VALUES ($1, $2, $3, $4, $5::jsonb, $6)",
            org_id or (principal.org_id if principal else None), principal.actor if principal else "anonymous",
            action, resource, json.dumps(details or {}), ip)

    async def audit_entries(self, org_id: str | None, limit: int = 100) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT * FROM audit_log WHERE ($1::text IS NULL OR org_id = $1) ORDER BY id DESC LIMIT $2", org_id, limit)
        return [{"id": r["id"], "at": _iso(r["at"]), "org_id": r["org_id"], "actor": r["actor"], "action": r["action"],
                 "resource": r["resource"], "details": json.loads(r["details"]), "ip": r["ip"]} for r in rows]
