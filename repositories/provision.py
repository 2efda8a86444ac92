"""Creating the platform's database in a fresh PostgreSQL cluster (the embedded stack's first start)."""

from __future__ import annotations

import psycopg


class ServerNotReady(Exception):
    """The PostgreSQL server does not accept connections (yet)."""


def create_database(admin_url: str, name: str, *, connect_timeout: int = 2) -> bool:
    """Create database ``name`` unless it exists, connected to the cluster as ``admin_url``; True when it was
    created now. Blocking."""
    try:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=connect_timeout) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                return False
            conn.execute(f'CREATE DATABASE "{name}"')
            return True
    except psycopg.OperationalError as exc:
        raise ServerNotReady(str(exc)) from exc
