"""Connections to PostgreSQL: the asyncpg pool every async user of the repositories shares, the readiness
ping, and the errors repositories raise instead of the driver's."""

from __future__ import annotations

import asyncpg


class AlreadyExists(Exception):
    """A row with this unique value (an email, an id) exists."""


class MissingReference(LookupError):
    """A row names another that does not exist (an organization, a file)."""


async def create_pool(database_url: str, *, min_size: int = 1, max_size: int = 8) -> asyncpg.Pool:
    return await asyncpg.create_pool(database_url, min_size=min_size, max_size=max_size)


class Database:
    """The pool as a dependency of readiness checks: it answers, or it does not."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def ping(self) -> None:
        await self._pool.fetchval("SELECT 1")
