"""Accounts and credentials over the identity repository: principals for API keys, password logins, new
users and keys with their secrets hashed, and refresh-token rotation. ``repositories.identity`` stores rows;
this module is where secrets are minted, hashed and checked."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.auth.credentials import (
    KEY_PREFIX,
    REFRESH_PREFIX,
    hash_password,
    mint,
    secret_matches,
    split,
    verify_password,
)
from gateway.auth.principal import Principal
from repositories.identity import IdentityStore


async def principal_for_key(identity: IdentityStore, token: str) -> Principal | None:
    """The caller an API key (``ssk_<id>_<secret>``) acts for, or None for an unknown, revoked or wrong one."""
    parts = split(token, KEY_PREFIX)
    if parts is None:
        return None
    key = await identity.use_key(parts[0])
    if key is None or not secret_matches(parts[1], key.secret_hash):
        return None
    return Principal(org_id=key.org_id, role=key.role, user_id=key.user_id, key_id=key.key_id,
                     key_scopes=key.scopes)


def principal_for_user(user: dict[str, Any]) -> Principal:
    return Principal(org_id=user["org_id"], role=user["role"], user_id=user["id"])


async def login(identity: IdentityStore, email: str, password: str) -> dict[str, Any] | None:
    """The user, if the email belongs to an enabled account and the password is its password."""
    found = await identity.login_candidate(email)
    if found is None or not verify_password(password, found[1]):
        return None
    return found[0]


async def create_user(identity: IdentityStore, org_id: str, email: str, password: str,
                      role: str) -> dict[str, Any]:
    return await identity.create_user(org_id, email, hash_password(password), role)


async def create_key(identity: IdentityStore, *, org_id: str, name: str, role: str, scopes: list[str],
                     user_id: str | None) -> tuple[str, dict[str, Any]]:
    """(the key as the caller sees it once, the key's record)."""
    minted = mint(KEY_PREFIX)
    key = await identity.create_key(minted.token_id, minted.secret_hash, org_id=org_id, name=name, role=role,
                                    scopes=scopes, user_id=user_id)
    return minted.token, key


async def issue_refresh(identity: IdentityStore, user_id: str, ttl: int, family: str | None = None) -> str:
    """A new refresh token of a session family (a new family when None)."""
    minted = mint(REFRESH_PREFIX)
    await identity.issue_refresh(minted.token_id, minted.secret_hash, user_id=user_id,
                                 family=family or minted.token_id,
                                 expires_at=datetime.now(UTC) + timedelta(seconds=ttl))
    return minted.token


async def use_refresh(identity: IdentityStore, token: str) -> tuple[str, str] | None:
    """(user_id, family) of a valid, unused refresh token, which is spent by this call; a spent token used
    again ends its whole family."""
    parts = split(token, REFRESH_PREFIX)
    if parts is None:
        return None
    return await identity.spend_refresh(parts[0], functools.partial(secret_matches, parts[1]), datetime.now(UTC))


async def revoke_refresh(identity: IdentityStore, token: str) -> None:
    parts = split(token, REFRESH_PREFIX)
    if parts is not None:
        await identity.revoke_refresh_family(parts[0])
