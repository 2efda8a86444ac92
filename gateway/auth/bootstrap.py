"""First start of an embedded stack: an admin account and an admin API key, so the CLI works at once.

The key is written to ``<home>/secrets/credentials.json`` (mode 0600), where the CLI finds it; the password is
there too, for logging in to get JWTs. Nothing is created when an admin exists already.
"""

from __future__ import annotations

import json
import os
import secrets
import uuid
from pathlib import Path

import psycopg

from gateway.auth.credentials import hash_password, mint
from repositories.identity import KEY_PREFIX

ADMIN_EMAIL = "admin@streamscribe.local"


def bootstrap_admin(database_url: str, credentials: Path) -> bool:
    """Returns True when it created the admin now."""
    with psycopg.connect(database_url) as conn:
        if conn.execute("SELECT 1 FROM users WHERE role = 'admin' LIMIT 1").fetchone():
            return False
        password = secrets.token_urlsafe(18)
        user_id = uuid.uuid4().hex[:16]
        conn.execute("INSERT INTO users (user_id, org_id, email, password_hash, role) VALUES (%s, 'default', %s, %s, "
                     "'admin')", (user_id, ADMIN_EMAIL, hash_password(password)))
        key = mint(KEY_PREFIX)
        conn.execute("INSERT INTO api_keys (key_id, org_id, user_id, name, secret_hash, role) VALUES (%s, 'default', "
                     "%s, 'bootstrap admin key', %s, 'admin')", (key.token_id, user_id, key.secret_hash))
        conn.execute("INSERT INTO audit_log (org_id, actor, action, resource) VALUES ('default', 'system', "
                     "'bootstrap.admin', %s)", (f"user:{user_id}",))
    credentials.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = credentials.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"api_key": key.token, "email": ADMIN_EMAIL, "password": password}, fh, indent=1)
    os.replace(tmp, credentials)
    return True
