"""Identity data in PostgreSQL: organisations, users, API keys and refresh tokens.

Secrets never reach this module in the clear: callers (``gateway.auth``) hash passwords and mint tokens, and
check a presented secret against the hash a lookup returns.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from repositories.db import AlreadyExists, MissingReference
from repositories.rows import iso


@dataclass(frozen=True)
class StoredKey:
    """An API key as stored: who it acts for, and the hash its secret must match."""

    key_id: str
    org_id: str
    role: str
    user_id: str | None
    scopes: frozenset[str]
    secret_hash: str


@dataclass(frozen=True)
class NewAdmin:
    """The first platform administrator and its API key (``bootstrap_admin``)."""

    user_id: str
    email: str
    password_hash: str
    key_id: str
    key_secret_hash: str


def org_json(r: asyncpg.Record) -> dict[str, Any]:
    return {"id": r["org_id"], "name": r["name"], "retention_days": r["retention_days"],
            "created_at": iso(r["created_at"])}


def user_json(r: asyncpg.Record) -> dict[str, Any]:
    return {"id": r["user_id"], "org_id": r["org_id"], "email": r["email"], "role": r["role"],
            "disabled": r["disabled"], "created_at": iso(r["created_at"])}


def key_json(r: asyncpg.Record) -> dict[str, Any]:
    return {"id": r["key_id"], "org_id": r["org_id"], "user_id": r["user_id"], "name": r["name"],
            "role": r["role"], "scopes": list(r["scopes"] or []), "created_at": iso(r["created_at"]),
            "last_used_at": iso(r["last_used_at"]), "revoked": r["revoked_at"] is not None}


class IdentityStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    # -- organisations -------------------------------------------------------------------------------
    async def create_org(self, name: str, retention_days: int | None = None,
                         org_id: str | None = None) -> dict[str, Any]:
        org_id = org_id or uuid.uuid4().hex[:12]
        row = await self._pool.fetchrow(
            "INSERT INTO organizations (org_id, name, retention_days) VALUES ($1, $2, $3) RETURNING *",
            org_id, name, retention_days)
        return org_json(row)

    async def orgs(self) -> list[dict[str, Any]]:
        return [org_json(r) for r in await self._pool.fetch("SELECT * FROM organizations ORDER BY created_at")]

    async def org(self, org_id: str) -> dict[str, Any] | None:
        row = await self._pool.fetchrow("SELECT * FROM organizations WHERE org_id = $1", org_id)
        return org_json(row) if row else None

    async def set_retention(self, org_id: str, days: int | None) -> None:
        await self._pool.execute("UPDATE organizations SET retention_days = $2 WHERE org_id = $1", org_id, days)

    # -- users ---------------------------------------------------------------------------------------
    async def create_user(self, org_id: str, email: str, password_hash: str, role: str) -> dict[str, Any]:
        """A new user (the email is kept lower-case); ``AlreadyExists`` for a taken email,
        ``MissingReference`` for an unknown organization."""
        try:
            row = await self._pool.fetchrow(
                "INSERT INTO users (user_id, org_id, email, password_hash, role) VALUES ($1, $2, $3, $4, $5) "
                "RETURNING *", uuid.uuid4().hex[:16], org_id, email.lower(), password_hash, role)
        except asyncpg.UniqueViolationError:
            raise AlreadyExists(email) from None
        except asyncpg.ForeignKeyViolationError:
            raise MissingReference(org_id) from None
        return user_json(row)

    async def users(self, org_id: str | None) -> list[dict[str, Any]]:
        rows = await self._pool.fetch(
            "SELECT * FROM users WHERE ($1::text IS NULL OR org_id = $1) ORDER BY created_at", org_id)
        return [user_json(r) for r in rows]

    async def user(self, user_id: str) -> dict[str, Any] | None:
        row = await self._pool.fetchrow("SELECT * FROM users WHERE user_id = $1", user_id)
        return user_json(row) if row else None

    async def login_candidate(self, email: str) -> tuple[dict[str, Any], str] | None:
        """The enabled user with this email and its password hash (the caller verifies the password)."""
        row = await self._pool.fetchrow("SELECT * FROM users WHERE email = $1 AND NOT disabled", email.lower())
        return (user_json(row), str(row["password_hash"])) if row else None

    async def is_last_admin(self, user_id: str) -> bool:
        """Whether ``user_id`` is the only enabled platform administrator (who must not be deleted or erased:
        nobody could manage the platform afterwards)."""
        admins = await self._pool.fetch("SELECT user_id FROM users WHERE role = 'admin' AND NOT disabled")
        return [r["user_id"] for r in admins] == [user_id]

    async def delete_user(self, user_id: str) -> None:
        await self._pool.execute("DELETE FROM users WHERE user_id = $1", user_id)

    async def admin_exists(self) -> bool:
        return bool(await self._pool.fetchval("SELECT 1 FROM users WHERE role = 'admin' LIMIT 1"))

    async def bootstrap_admin(self, admin: NewAdmin) -> bool:
        """The first start of a deployment: an admin user in the default organization with an admin API key,
        in one transaction. False (and nothing written) when an admin exists already."""
        async with self._pool.acquire() as conn, conn.transaction():
            if await conn.fetchval("SELECT 1 FROM users WHERE role = 'admin' LIMIT 1"):
                return False
            await conn.execute("INSERT INTO users (user_id, org_id, email, password_hash, role) VALUES ($1, 'default', "
                               "$2, $3, 'admin')", admin.user_id, admin.email, admin.password_hash)
            await conn.execute("INSERT INTO api_keys (key_id, org_id, user_id, name, secret_hash, role) VALUES ($1, "
                               "'default', $2, 'bootstrap admin key', $3, 'admin')",
                               admin.key_id, admin.user_id, admin.key_secret_hash)
            await conn.execute("INSERT INTO audit_log (org_id, actor, action, resource) VALUES ('default', 'system', "
                               "'bootstrap.admin', $1)", f"user:{admin.user_id}")
            return True

    # -- API keys ------------------------------------------------------------------------------------
    async def create_key(self, key_id: str, secret_hash: str, *, org_id: str, name: str, role: str,
                         scopes: list[str], user_id: str | None) -> dict[str, Any]:
        """A new API key; ``MissingReference`` for an unknown organization."""
        try:
            row = await self._pool.fetchrow(
                "INSERT INTO api_keys (key_id, org_id, user_id, name, secret_hash, role, scopes) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *",
                key_id, org_id, user_id, name, secret_hash, role, scopes)
        except asyncpg.ForeignKeyViolationError:
            raise MissingReference(org_id) from None
        return key_json(row)

    async def keys(self, org_id: str | None) -> list[dict[str, Any]]:
        rows = await self._pool.fetch(
            "SELECT * FROM api_keys WHERE ($1::text IS NULL OR org_id = $1) ORDER BY created_at", org_id)
        return [key_json(r) for r in rows]

    async def key(self, key_id: str) -> dict[str, Any] | None:
        row = await self._pool.fetchrow("SELECT * FROM api_keys WHERE key_id = $1", key_id)
        return key_json(row) if row else None

    async def revoke_key(self, key_id: str) -> None:
        await self._pool.execute("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()) WHERE key_id = $1",
                                 key_id)

    async def use_key(self, key_id: str) -> StoredKey | None:
        """An unrevoked key, marked as used now (the caller then checks the presented secret)."""
        row = await self._pool.fetchrow(
            "UPDATE api_keys SET last_used_at = now() WHERE key_id = $1 AND revoked_at IS NULL RETURNING *", key_id)
        if row is None:
            return None
        return StoredKey(key_id=row["key_id"], org_id=row["org_id"], role=row["role"], user_id=row["user_id"],
                         scopes=frozenset(row["scopes"] or []), secret_hash=row["secret_hash"])

    # -- refresh tokens (rotated on every use; reuse of a spent one revokes its whole family) ----------
    async def issue_refresh(self, token_id: str, secret_hash: str, *, user_id: str, family: str,
                            expires_at: datetime) -> None:
        await self._pool.execute(
            "INSERT INTO refresh_tokens (token_id, user_id, secret_hash, family, expires_at) "
            "VALUES ($1, $2, $3, $4, $5)", token_id, user_id, secret_hash, family, expires_at)

    async def spend_refresh(self, token_id: str, matches: Callable[[str], bool],
                            now: datetime) -> tuple[str, str] | None:
        """(user_id, family) of a valid, unused refresh token whose stored hash ``matches`` the presented
        secret; the token is spent by this call. A spent token presented again revokes its whole family."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow("SELECT * FROM refresh_tokens WHERE token_id = $1 FOR UPDATE", token_id)
            if row is None or not matches(row["secret_hash"]):
                return None
            if row["used_at"] is not None or row["revoked_at"] is not None:
                # a spent token presented again: someone copied it; end the whole session family
                await conn.execute("UPDATE refresh_tokens SET revoked_at = now() WHERE family = $1", row["family"])
                return None
            if row["expires_at"] < now:
                return None
            await conn.execute("UPDATE refresh_tokens SET used_at = now() WHERE token_id = $1", row["token_id"])
            return row["user_id"], row["family"]

    async def revoke_refresh_family(self, token_id: str) -> None:
        """End the session a refresh token belongs to (every token of its family)."""
        await self._pool.execute(
            "UPDATE refresh_tokens SET revoked_at = now() WHERE family = "
            "(SELECT family FROM refresh_tokens WHERE token_id = $1)", token_id)
