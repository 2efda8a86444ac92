"""The delivery loop: sends due deliveries from the log, signed, with retries on the backoff schedule.

It runs in a thread of its own (its own event loop, database pool and HTTP session) inside the webhooks
worker, so slow or dead receivers never hold up the Kafka consumer. Deliveries are claimed from PostgreSQL
with row locks other workers skip, and a lease (``repositories.webhooks.WebhookStore.claim``), so several
workers share the work and a worker that dies mid-attempt leaves its deliveries to be retried when the lease
ends: delivery is at least once, and receivers deduplicate on ``X-Streamscribe-Delivery`` (or the payload's
event ``id``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

import aiohttp
import asyncpg
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from prometheus_client import Counter

from connectors.storage.crypto import Keyring
from connectors.webhooks.backoff import retry_delay
from connectors.webhooks.sealing import SealError, unseal
from connectors.webhooks.signing import delivery_headers
from connectors.webhooks.targets import TargetError, blocked_address
from foundation.logs import get_logger
from repositories.db import create_pool
from repositories.webhooks import Due, WebhookStore

log = get_logger(__name__)
MAX_ERROR_BODY = 200
PRUNE_EVERY_S = 3600.0
ATTEMPTS = Counter("streamscribe_webhook_attempts_total", "Webhook delivery attempts", ["outcome"])


@dataclass(frozen=True)
class DispatchConfig:
    retry_delays_s: tuple[float, ...]
    jitter: float = 0.2
    timeout_s: float = 10.0
    poll_interval_s: float = 1.0
    concurrency: int = 8
    allow_private_targets: bool = False
    user_agent: str = "streamscribe-webhooks"
    log_retention_days: int = 30


class GuardedResolver(AbstractResolver):
    """Resolves like the default resolver, then drops every non-public address (see ``targets``): the
    connection can only go to an address that was checked, whatever the name resolves to at that moment."""

    def __init__(self, allow_private: bool) -> None:
        self.allow_private = allow_private
        self._inner = ThreadedResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if self.allow_private:
            return results
        allowed = [r for r in results if not blocked_address(r["host"])]
        if not allowed:
            raise OSError(f"{host} resolves only to non-public addresses; webhooks may not target them")
        return allowed

    async def close(self) -> None:
        await self._inner.close()


class Dispatcher:
    def __init__(self, database_url: str, config: DispatchConfig, keyring: Keyring) -> None:
        self.database_url = database_url
        self.config = config
        self.keyring = keyring
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._ready = threading.Event()

    # -- lifecycle (called from the worker's main thread) -------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="webhook-dispatch", daemon=True)
        self._thread.start()
        self._ready.wait(30)

    def wake(self) -> None:
        """New deliveries were recorded: look now rather than at the next poll."""
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            loop.call_soon_threadsafe(wake.set)

    def stop(self) -> None:
        self._stopping = True
        self.wake()
        if self._thread is not None:
            self._thread.join(self.config.timeout_s + 5)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except Exception as exc:  # the loop itself never raises; this is a last resort
            log.error("webhook delivery loop stopped", error=f"{type(exc).__name__}: {exc}")
        finally:
            self._ready.set()

    # -- the loop ---------------------------------------------------------------------------------------
    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._ready.set()
        pool: asyncpg.Pool | None = None
        while pool is None and not self._stopping:
            try:
                pool = await create_pool(self.database_url, max_size=3)
            except Exception as exc:
                log.warning("webhook delivery loop cannot reach the database yet", error=str(exc))
                await self._sleep(self.config.poll_interval_s * 5)
        if pool is None:
            return
        store = WebhookStore(pool)
        connector = aiohttp.TCPConnector(resolver=GuardedResolver(self.config.allow_private_targets),
                                         limit=self.config.concurrency, limit_per_host=4)
        session = aiohttp.ClientSession(connector=connector, trust_env=False,
                                        timeout=aiohttp.ClientTimeout(total=self.config.timeout_s))
        inflight: set[asyncio.Task[None]] = set()
        pruned_at = -PRUNE_EVERY_S
        try:
            while not self._stopping:
                if self.config.log_retention_days > 0 and time.monotonic() - pruned_at >= PRUNE_EVERY_S:
                    pruned_at = time.monotonic()
                    try:
                        removed = await store.prune(self.config.log_retention_days)
                        if removed:
                            log.info("old webhook deliveries removed", count=removed)
                    except Exception as exc:
                        log.warning("could not prune webhook deliveries", error=f"{type(exc).__name__}: {exc}")
                free = self.config.concurrency - len(inflight)
                claimed: list[Due] = []
                if free > 0:
                    try:
                        claimed = await store.claim(free, self.config.timeout_s + 30)
                    except Exception as exc:
                        log.warning("could not claim webhook deliveries", error=f"{type(exc).__name__}: {exc}")
                for due in claimed:
                    task = asyncio.create_task(self._attempt(store, session, due))
                    inflight.add(task)
                    task.add_done_callback(self._done(inflight))
                if free <= 0 or len(claimed) < free:
                    await self._sleep(self.config.poll_interval_s)
        finally:
            if inflight:
                await asyncio.wait(inflight, timeout=self.config.timeout_s + 2)
            await session.close()
            await pool.close()

    def _done(self, inflight: set[asyncio.Task[None]]) -> Callable[[asyncio.Task[None]], None]:
        def done(task: asyncio.Task[None]) -> None:
            inflight.discard(task)
            if not task.cancelled() and task.exception() is not None:
                exc = task.exception()
                log.error("webhook attempt crashed; retried when its lease ends", error=f"{type(exc).__name__}: {exc}")
            if self._wake is not None:
                self._wake.set()  # a slot is free

        return done

    async def _sleep(self, seconds: float) -> None:
        assert self._wake is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    async def _attempt(self, store: WebhookStore, session: aiohttp.ClientSession, due: Due) -> None:
        started = datetime.now(UTC)
        t0 = time.monotonic()
        status: int | None = None
        error: str | None = None
        try:
            secret = unseal(self.keyring, due.secret_sealed, due.subscription_id)
            host = (urlsplit(due.url).hostname or "").strip("[]")
            # IP literals do not go through the resolver, so they are checked here
            if not self.config.allow_private_targets and _is_ip(host) and blocked_address(host):
                raise TargetError(f"{host} is not a public address; webhooks may not target it")
            headers = delivery_headers(secret, due.body, event_type=due.event_type, delivery_id=due.delivery_id)
            headers["User-Agent"] = self.config.user_agent
            async with session.post(due.url, data=due.body, headers=headers, allow_redirects=False) as resp:
                status = resp.status
                if not 200 <= status < 300:
                    snippet = (await resp.content.read(MAX_ERROR_BODY)).decode("utf-8", "replace").strip()
                    error = f"HTTP {status}" + (f": {snippet}" if snippet else "")
        except TimeoutError:
            error = f"no response within {self.config.timeout_s:g} s"
        except aiohttp.ClientError as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        except (SealError, TargetError, OSError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        duration_ms = int((time.monotonic() - t0) * 1000)
        attempt = due.attempts + 1
        retry_in: float | None = None
        if error is None:
            outcome = "delivered"
        else:
            retry_in = retry_delay(attempt, self.config.retry_delays_s, jitter=self.config.jitter)
            outcome = "gave_up" if retry_in is None else "failed"
        ATTEMPTS.labels(outcome).inc()
        log.info("webhook attempt", delivery_id=due.delivery_id, event_type=due.event_type, attempt=attempt,
                 http_status=status, outcome=outcome, error=error, retry_in_s=retry_in, ms=duration_ms)
        try:
            await store.finish(due.delivery_id, started_at=started, duration_ms=duration_ms, http_status=status,
                               error=error, outcome=outcome, retry_in_s=retry_in)
        except Exception as exc:  # the lease runs out and the delivery is tried again
            log.warning("could not log a webhook attempt", delivery_id=due.delivery_id,
                        error=f"{type(exc).__name__}: {exc}")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True
