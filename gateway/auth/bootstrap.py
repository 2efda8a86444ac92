"""First start of an embedded stack: an admin account and an admin API key, so the CLI works at once.

The key is written to ``<home>/secrets/credentials.json`` (mode 0600), where the CLI finds it; the password is
there too, for logging in to get JWTs. Nothing is created when an admin exists already.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import uuid
from pathlib import Path

from gateway.auth.credentials import KEY_PREFIX, hash_password, mint
from repositories.db import create_pool
from repositories.identity import IdentityStore, NewAdmin

ADMIN_EMAIL = "admin@streamscribe.local"


async def create_first_admin(database_url: str, email: str = ADMIN_EMAIL,
                             password: str | None = None) -> tuple[str, str] | None:
    """(API key, password) of the first administrator, created now with ``email`` and ``password`` (a random
    one when None), or None when an administrator exists already (``streamscribe admin create`` on a production
    deployment; the embedded stack's own bootstrap below)."""
    pool = await create_pool(database_url, max_size=1)
    try:
        identity = IdentityStore(pool)
        if await identity.admin_exists():
            return None
        password = password or secrets.token_urlsafe(18)
        key = mint(KEY_PREFIX)
        admin = NewAdmin(user_id=uuid.uuid4().hex[:16], email=email, password_hash=hash_password(password),
                         key_id=key.token_id, key_secret_hash=key.secret_hash)
        return (key.token, password) if await identity.bootstrap_admin(admin) else None
    finally:
        await pool.close()


def bootstrap_admin(database_url: str, credentials: Path) -> bool:
    """Returns True when it created the admin now. Blocking (runs its own event loop)."""
    created = asyncio.run(create_first_admin(database_url))
    if created is None:
        return False
    token, password = created
    credentials.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = credentials.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"api_key": token, "email": ADMIN_EMAIL, "password": password}, fh, indent=1)
    os.replace(tmp, credentials)
    return True
