"""Schema migrations with yoyo (plain SQL files in ``migrations/``, applied once each, in order)."""

from __future__ import annotations

from pathlib import Path

from yoyo import get_backend, read_migrations

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def yoyo_url(database_url: str) -> str:
    """asyncpg-style postgresql:// URL -> the psycopg 3 URL yoyo expects."""
    for prefix in ("postgresql://", "postgres://"):
        if database_url.startswith(prefix):
            return "postgresql+psycopg://" + database_url[len(prefix):]
    return database_url


def apply_migrations(database_url: str) -> list[str]:
    """Apply pending migrations; returns the ids applied now (empty when up to date)."""
    backend = get_backend(yoyo_url(database_url))
    migrations = read_migrations(str(MIGRATIONS))
    with backend.lock():
        pending = backend.to_apply(migrations)
        backend.apply_migrations(pending)
    return [m.id for m in pending]
