"""Accounts and credentials over the identity repository: principals for API keys, password logins, new
users and keys with their secrets hashed, and refresh-token rotation. ``repositories.identity`` stores rows;
this module is where secrets are minted, hashed and checked.

Password hashing (argon2, deliberately slow and memory-hard) never runs on the event loop: it runs on a small
executor of its own, as many threads as the machine this was sized for has cores (two), so the gateway keeps
answering while logins are checked, and other blocking work (probes, file reads) keeps its own threads. At most
``MAX_WAITING`` checks wait for it; beyond that a login is refused at once (``HashingBusy``). A login for an
email without an enabled account verifies the password against a dummy hash, the same work as for a real one,
so the time an answer takes does not tell whether an account exists.
"""

from __future__ import annotations

import asyncio
import functools
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

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

T = TypeVar("T")
HASHING = ThreadPoolExecutor(max_workers=2, thread_name_prefix="password-hashing")
MAX_WAITING = 32
_waiting = 0


class HashingBusy(Exception):
    """More password checks are waiting than the hashing threads can take soon."""


async def off_loop(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` on the password-hashing threads."""
    global _waiting
    if _waiting >= MAX_WAITING:
        raise HashingBusy(f"{_waiting} password checks are waiting")
    _waiting += 1
    try:
        return await asyncio.get_running_loop().run_in_executor(HASHING, fn, *args)
    finally:
        _waiting -= 1


@functools.cache
def dummy_hash() -> str:
    """A hash of a random password, made like every stored one: what unknown accounts are verified against."""
    return hash_password(secrets.token_urlsafe(16))


async def warm_up() -> None:
    """Make the dummy hash on the hashing threads before the first login needs it."""
    await off_loop(dummy_hash)


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
    """The user, if the email belongs to an enabled account and the password is its password. Without such an
    account the password is checked all the same, against ``dummy_hash()``."""
    found = await identity.login_candidate(email)
    stored = found[1] if found is not None else dummy_hash()  # made at start-up (warm_up), off the loop
    matches = await off_loop(verify_password, password, stored)
    return found[0] if found is not None and matches else None


async def create_user(identity: IdentityStore, org_id: str, email: str, password: str,
                      role: str) -> dict[str, Any]:
    return await identity.create_user(org_id, email, await off_loop(hash_password, password), role)


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
