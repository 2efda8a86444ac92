"""Periodic housekeeping of a deployment: the reconciler (jobs in flight that nothing moves on any more are run
again, closed or failed: ``streamscribe.recovery``) and the retention sweep (organizations' jobs and files older
than their retention period are erased everywhere)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
from confluent_kafka import KafkaException

from connectors.storage.factory import store_from_settings
from foundation.logs import get_logger
from foundation.settings import Settings
from gateway.erasure import apply_retention
from repositories.audit import AuditLog
from repositories.db import create_pool
from repositories.erasure import ErasureStore
from repositories.jobs import JobStore
from streams.stages.registry import stages
from streamscribe.recovery import backlog
from streamscribe.recovery.reconciler import EventWriter, Outcome, Reconciler
from streamscribe.recovery.rules import Policy
from streamscribe.stack.inflight import take_handoff
from streamscribe.stack.state import read_stack

log = get_logger(__name__)

# Stages whose backlog never holds a job back: webhook deliveries happen after a run, they do not move it on.
OFF_THE_JOB_PATH = frozenset({"webhooks"})
TRANSIENT = (OSError, asyncpg.PostgresError, KafkaException)


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


def stage_inputs() -> dict[str, tuple[str, ...]]:
    """The consumer group of every stage a job waits for, with the topics it reads."""
    return {spec.group: spec.inputs for spec in stages() if spec.name not in OFF_THE_JOB_PATH}


def gateway_started(settings: Settings) -> Callable[[], float | None]:
    """When the gateway of the embedded stack in ``settings.home`` last started (None: not known, e.g. in
    production, where several gateways run and no supervisor writes ``stack.json``)."""

    def started() -> float | None:
        stack = read_stack(settings.home) or {}
        value = (stack.get("children", {}).get("gateway") or {}).get("started_at")
        return float(value) if value else None

    return started


@contextlib.asynccontextmanager
async def open_reconciler(settings: Settings) -> AsyncIterator[Reconciler]:
    pool = await create_pool(settings.database_url, max_size=2)
    store = store_from_settings(settings)
    events = EventWriter(settings)
    groups = stage_inputs()
    try:
        yield Reconciler(JobStore(pool), store, events, Policy.from_settings(settings.recovery),
                         lambda: backlog.probe(settings.kafka, groups), gateway_started(settings))
    finally:
        events.close()
        await store.close()
        await pool.close()


async def reconcile_once(settings: Settings, *, dry_run: bool = False) -> list[dict[str, Any]]:
    """One pass of the reconciler (the jobs ``down`` handed over are taken with it); what it did, or with
    ``dry_run`` what it would do."""
    async with open_reconciler(settings) as reconciler:
        if dry_run:
            return [{"job_id": job.job_id, "revision": job.revision, "action": action.kind, "reason": action.reason}
                    for job, action in await reconciler.judge()]
        outcomes = await reconciler.run_pass(_handed_off(settings))
    return [o.to_json() for o in outcomes]


def _handed_off(settings: Settings) -> frozenset[str]:
    jobs = take_handoff(settings.home)
    if jobs:
        log.info("jobs handed over by the last stop", jobs=[j["job_id"] for j in jobs])
    return frozenset(j["job_id"] for j in jobs)


async def _every(interval_s: float, stop: asyncio.Event, what: str, work: Callable[[], Awaitable[object]]) -> None:
    """``work`` now and then every ``interval_s`` until ``stop``; a failure (a dependency restarting) is logged
    and the next round tries again."""
    while not stop.is_set():
        try:
            await work()
        except TRANSIENT as exc:
            log.warning(f"{what} failed; trying again next round", error=str(exc))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval_s)


async def _reconcile_forever(settings: Settings, stop: asyncio.Event) -> None:
    handed_off = _handed_off(settings)

    async def one_pass() -> list[Outcome]:
        nonlocal handed_off
        async with open_reconciler(settings) as reconciler:
            outcomes = await reconciler.run_pass(handed_off)
        handed_off = frozenset()  # judged once, at the first pass after the stop that listed them
        return outcomes

    await _every(settings.recovery.interval_s, stop, "reconciler pass", one_pass)


def run_forever(settings: Settings, interval_s: float) -> None:
    """The reconciler at start and every ``recovery.interval_s``; the retention sweep every ``interval_s``."""
    stop = asyncio.Event()

    async def loop() -> None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await asyncio.gather(_reconcile_forever(settings, stop),
                             _every(interval_s, stop, "retention sweep", lambda: run_once(settings)))

    asyncio.run(loop())
