"""Periodic housekeeping of a deployment: the retention sweep (organizations' jobs and files older than their
retention period are erased everywhere)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Any

import asyncpg

from connectors.storage.factory import store_from_settings
from foundation.logs import get_logger
from foundation.settings import Settings
from gateway.erasure import apply_retention
from repositories.audit import AuditLog
from repositories.db import create_pool
from repositories.erasure import ErasureStore

log = get_logger(__name__)


async def run_once(settings: Settings) -> dict[str, Any]:
    pool = await create_pool(settings.database_url, max_size=2)
    store = store_from_settings(settings)
    try:
        results = await apply_retention(ErasureStore(pool), AuditLog(pool), store)
    finally:
        await store.close()
        await pool.close()
    summary = {org: r.to_json() for org, r in results.items()}
    log.info("retention sweep", organizations=summary)
    return summary


def run_forever(settings: Settings, interval_s: float) -> None:
    stop = asyncio.Event()

    async def loop() -> None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        while not stop.is_set():
            try:
                await run_once(settings)
            except (OSError, asyncpg.PostgresError) as exc:  # the database may be restarting: try next round
                log.warning("retention sweep failed", error=str(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval_s)

    asyncio.run(loop())
