"""Webhooks stage: jobs.events, transcripts and analytics.calls -> the webhook delivery log, and a delivery loop
that sends it.

For each pipeline event of interest (``connectors.webhooks.events``: a run completed or failed, a stage started
or finished, a required phrase missing from a call) the stage finds the job's organization (the ``jobs`` row; a
stream produced straight to Kafka may have none yet, and belongs to ``default``) and records a pending delivery
for every active subscription of that organization that wants the event's type. Event ids are deterministic and
the log is unique on (subscription, event id), so a batch Kafka delivers again records nothing new. A batch is
recorded in one transaction before its offsets are committed; a lost database connection is transient (the
worker exits without committing and is restarted).

Sending is not done here: ``connectors.webhooks.dispatch.Dispatcher`` runs in a thread of this worker with
its own event loop, and the stage only wakes it after recording, so slow receivers never hold up the
consumer.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Sequence

import asyncpg
from prometheus_client import Counter

from connectors.storage.crypto import Keyring
from connectors.storage.factory import parse_keyring
from connectors.webhooks.dispatch import DispatchConfig, Dispatcher
from connectors.webhooks.events import WebhookEvent, from_analytics_call, from_job_event, from_transcript_event
from foundation.logs import get_logger
from foundation.settings import Settings, WebhookSettings
from foundation.version import __version__
from repositories.projection import TRANSIENT_DB_ERRORS
from repositories.webhooks import WebhookStore
from streams.kafka.topics import ANALYTICS_CALLS, JOBS_EVENTS, TRANSCRIPTS
from streams.runtime.stage import BaseStage, Context, Record, StageSpec

DEFAULT_ORG = "default"
RECORDED = Counter("streamscribe_webhook_events_total", "Webhook events recorded for delivery (before the "
                   "subscription filter)", ["type"])
SKIPPED = Counter("streamscribe_webhook_events_skipped_total", "Pipeline events no webhook could be recorded for")
log = get_logger(__name__)


class _Lru(OrderedDict[str, str]):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def remember(self, key: str, value: str) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


def webhook_events(record: Record) -> list[WebhookEvent]:
    if record.topic == TRANSCRIPTS:
        return from_transcript_event(record.value)
    if record.topic == JOBS_EVENTS:
        return from_job_event(record.value)
    if record.topic == ANALYTICS_CALLS:
        return from_analytics_call(record.value)
    return []


class WebhookStage(BaseStage):
    transient_errors: tuple[type[BaseException], ...] = TRANSIENT_DB_ERRORS

    def __init__(self, database_url: str, settings: WebhookSettings, keyring: Keyring, *,
                 deliver: bool = True) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.pool: asyncpg.Pool = self.loop.run_until_complete(
            asyncpg.create_pool(database_url, min_size=1, max_size=2))
        self.orgs = _Lru(10_000)  # job id -> org id (a job never changes organization)
        # Event ids recorded by this worker: a stage's many progress reports map to one job.running event id,
        # so only the first of them costs a database round trip.
        self.recorded = _Lru(50_000)
        self.dispatcher: Dispatcher | None = None
        if deliver:
            self.dispatcher = Dispatcher(database_url, DispatchConfig(
                retry_delays_s=tuple(settings.retry_delays_s), jitter=settings.jitter, timeout_s=settings.timeout_s,
                poll_interval_s=settings.poll_interval_s, concurrency=settings.concurrency,
                allow_private_targets=settings.allow_private_targets,
                log_retention_days=settings.log_retention_days,
                user_agent=f"streamscribe-webhooks/{__version__}"), keyring)
            self.dispatcher.start()

    @classmethod
    def from_settings(cls, settings: Settings) -> WebhookStage:
        return cls(settings.database_url, settings.webhooks, parse_keyring(*settings.storage_keys()))

    def handle_batch(self, records: Sequence[Record], ctx: Context) -> bool:
        """Never raises for one bad event: the runtime would dead-letter the record and fail its job, and a
        notification problem must not fail a transcription. Transient database errors still stop the worker
        (nothing committed, the batch is retried after the restart)."""
        events: dict[str, WebhookEvent] = {}
        for record in records:
            try:
                found = webhook_events(record)
            except Exception as exc:
                log.error("event not understood; no webhook for it", topic=record.topic, offset=record.offset,
                          error=f"{type(exc).__name__}: {exc}")
                SKIPPED.inc()
                continue
            for ev in found:
                if ev.id not in self.recorded and ev.id not in events:
                    events[ev.id] = ev
        if not events:
            return True
        try:
            self.loop.run_until_complete(self._record(list(events.values())))
        except self.transient_errors:
            raise
        except Exception as exc:
            log.warning("recording the batch failed; recording its events one by one",
                        error=f"{type(exc).__name__}: {exc}")
            for ev in list(events.values()):
                try:
                    self.loop.run_until_complete(self._record([ev]))
                except self.transient_errors:
                    raise
                except Exception as exc:
                    log.error("webhook event not recorded", event_id=ev.id, event_type=ev.type, job_id=ev.job_id,
                              error=f"{type(exc).__name__}: {exc}")
                    SKIPPED.inc()
                    del events[ev.id]
        for ev in events.values():
            self.recorded.remember(ev.id, "")
            RECORDED.labels(ev.type).inc()
        if self.dispatcher is not None:
            self.dispatcher.wake()
        return True

    def handle(self, record: Record, ctx: Context) -> None:
        self.handle_batch([record], ctx)

    async def _record(self, events: list[WebhookEvent]) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            items: list[tuple[WebhookEvent, str]] = []
            for ev in events:
                org = self.orgs.get(ev.job_id)
                if org is None:
                    found = await WebhookStore.job_org(conn, ev.job_id)
                    if found is not None:
                        self.orgs.remember(ev.job_id, found)
                    org = found or DEFAULT_ORG
                items.append((ev, org))
            await WebhookStore.record(conn, items)

    def close(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.stop()
        self.loop.run_until_complete(self.pool.close())
        self.loop.close()


SPEC = StageSpec(name="webhooks", doc="records webhook deliveries for pipeline events and sends them",
                 inputs=(TRANSCRIPTS, JOBS_EVENTS, ANALYTICS_CALLS), outputs=(), build=WebhookStage.from_settings,
                 batch=500)
