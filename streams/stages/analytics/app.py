"""The analytics stage as a faust-streaming app: its declaration (``SPEC``), topics, tables and two agents.

    transcripts + speaker.turns ──> agent ``calls`` (table ``streams``) ──> analytics.calls
                                                                       └──> analytics.calls.by-org
    analytics.calls.by-org ──> agent ``aggregates`` (tables ``jobs``, ``hourly``, ``daily``) ──> analytics.windows

Events are the platform's Avro contracts (``streams.kafka.serde``): faust moves bytes, this module decodes and
encodes them. An event that does not decode, or whose handling raises, goes to ``<topic>.dlq`` with the error
(acknowledged before the event counts as handled) and the stream moves on. A failure to publish (the broker
gone) makes the worker exit at once without committing anything more, as after a ``kill -9``; it is restarted
and reprocesses from its last committed offset, which the agents are built to do without losing or counting
anything twice (``calls``, ``aggregates``).
"""

from __future__ import annotations

import asyncio
import os
import socket
import traceback
from datetime import timedelta
from typing import Any

import asyncpg
import faust
from aiokafka.errors import KafkaError
from faust.exceptions import ProducerSendError
from faust.windows import TumblingWindow

from foundation.events import AnalyticsCall, AnalyticsWindow, DeadLetter, Event
from foundation.logs import get_logger
from foundation.settings import Settings
from processors.analytics.call import Rules
from processors.analytics.phrases import Phrase
from repositories.analytics import AnalyticsStore
from repositories.projection import TRANSIENT_DB_ERRORS
from streams.kafka.clients import faust_app
from streams.kafka.schema_registry import make_registry
from streams.kafka.serde import AvroSerde, SerdeError
from streams.kafka.topics import (
    ANALYTICS_CALLS,
    ANALYTICS_CALLS_BY_ORG,
    ANALYTICS_WINDOWS,
    SPEAKER_TURNS,
    TRANSCRIPTS,
    dlq_name,
)
from streams.runtime.faust_stage import FaustStageSpec
from streams.runtime.metrics import DEAD_LETTERS, EVENTS
from streams.stages.analytics.aggregates import Aggregates, Windows
from streams.stages.analytics.calls import Calls

log = get_logger(__name__)

EXIT_TRANSIENT = 75  # EX_TEMPFAIL: the supervisor restarts the worker
FAILURES_TO_EXIT_ON = (KafkaError, ProducerSendError, OSError)


class PhraseCache:
    """Each organization's phrase lists from PostgreSQL, reused for ``ttl`` seconds. While the database is
    unreachable the agent waits for it (retrying with backoff): a call is never analyzed without its lists."""

    def __init__(self, database_url: str, ttl: float) -> None:
        self.database_url = database_url
        self.ttl = ttl
        self._store: AnalyticsStore | None = None
        self._cache: dict[str, tuple[float, list[Phrase]]] = {}

    async def __call__(self, org_id: str) -> list[Phrase]:
        loop = asyncio.get_running_loop()
        cached = self._cache.get(org_id)
        if cached is not None and loop.time() - cached[0] < self.ttl:
            return cached[1]
        delay = 0.5
        while True:
            try:
                if self._store is None:
                    self._store = AnalyticsStore(await asyncpg.create_pool(self.database_url, min_size=1,
                                                                           max_size=2))
                rows = await self._store.phrase_rows(org_id)
                break
            except TRANSIENT_DB_ERRORS as exc:
                log.warning("phrase lists unavailable; retrying", org_id=org_id, error=str(exc), retry_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        phrases = [Phrase(r.phrase_id, r.phrase, "required" if r.kind == "required" else "watched", r.speaker,
                          r.threshold) for r in rows]
        self._cache[org_id] = (loop.time(), phrases)
        return phrases


class AnalyticsApp:
    """The faust app of the analytics stage, built from settings (``build``)."""

    def __init__(self, settings: Settings) -> None:
        kafka = settings.kafka
        self.prefix = kafka.topic_prefix
        self.group = SPEC.group
        datadir = settings.home / "faust" / SPEC.group
        datadir.mkdir(parents=True, exist_ok=True)
        self.app = faust_app(kafka, SPEC.group, f"{SPEC.group}-{socket.gethostname()}", datadir,
                             max_poll_records=SPEC.batch)
        self.serde = AvroSerde(make_registry(settings.schema_registry.url, settings.schema_registry_file),
                               kafka.topic_prefix)
        self.topics = {t: self._bytes(t) for t in (
            ANALYTICS_CALLS, ANALYTICS_CALLS_BY_ORG, ANALYTICS_WINDOWS, *(dlq_name(i) for i in SPEC.inputs))}
        transcripts = self._bytes(TRANSCRIPTS, SPEAKER_TURNS)
        a = settings.analytics
        self.calls = Calls(self._table("streams"), PhraseCache(settings.database_url, a.phrase_cache_s),
                           Rules(turn_pause_s=a.turn_pause_s, silence_threshold_s=a.silence_threshold_s),
                           self._publish_call)
        hourly = self._table("hourly", TumblingWindow(3600, expires=timedelta(days=a.hourly_retention_days)))
        daily = self._table("daily", TumblingWindow(86400, expires=timedelta(days=a.daily_retention_days)))
        self.aggregates = Aggregates(self._table("jobs"), [Windows("HOUR", hourly), Windows("DAY", daily)],
                                     self._publish_window)
        self.app.agent(transcripts, name=f"{SPEC.group}.calls")(self._calls_agent)
        self.app.agent(self.topics[ANALYTICS_CALLS_BY_ORG], name=f"{SPEC.group}.aggregates")(self._aggregates_agent)

    def _bytes(self, *topics: str) -> faust.TopicT:
        """Topics carrying the platform's Avro events, moved by faust as bytes."""
        return self.app.topic(*(self.prefix + t for t in topics), key_type=bytes, value_type=bytes,
                              key_serializer="raw", value_serializer="raw")

    def _table(self, name: str, window: TumblingWindow | None = None) -> Any:
        """A table of JSON values (windowed: faust's wrapper of it), with its changelog topic from the
        catalogue (set after windowing, which would otherwise give it faust's default name)."""
        table = self.app.Table(name, default=None)
        wrapper = table.using_window(window) if window is not None else None
        table.changelog_topic = self.app.topic(self.prefix + SPEC.table_topic(name), key_serializer="json",
                                               value_serializer="json")
        return wrapper if wrapper is not None else table

    # -- agents ------------------------------------------------------------------------------------------
    async def _calls_agent(self, stream: faust.StreamT) -> None:
        async for event in stream.events():
            await self._handle(event, self._on_call_input)

    async def _aggregates_agent(self, stream: faust.StreamT) -> None:
        async for event in stream.events():
            await self._handle(event, self._on_by_org)

    async def _on_call_input(self, topic: str, value: dict[str, Any], _offset: int) -> None:
        await self.calls.handle(topic, value)

    async def _on_by_org(self, _topic: str, value: dict[str, Any], offset: int) -> None:
        await self.aggregates.handle(value, offset)

    async def _handle(self, event: faust.EventT, handler: Any) -> None:
        message = event.message
        topic = message.topic.removeprefix(self.prefix)
        try:
            value = self.serde.deserialize(message.topic, event.value)
        except SerdeError as exc:
            await self._dead_letter(event, topic, exc)
            return
        EVENTS.labels(self.group, topic).inc()
        try:
            await handler(topic, value, message.offset)
        except FAILURES_TO_EXIT_ON as exc:
            self._exit_without_commit(exc)
        except Exception as exc:
            log.error("event could not be handled", topic=topic, offset=message.offset,
                      error=traceback.format_exc(limit=5))
            await self._dead_letter(event, topic, exc)

    # -- publishing ------------------------------------------------------------------------------------
    async def _send(self, topic: str, key: bytes | None, value: bytes) -> None:
        """Send now (not at the next commit) and wait for the broker's acknowledgement."""
        sent = await self.topics[topic].send(key=key, value=value, force=True)
        await sent

    async def _publish(self, topic: str, key: str, event: Event) -> None:
        await self._send(topic, key.encode(), self.serde.serialize(self.prefix + topic, event))

    async def _publish_call(self, topic: str, key: str, event: AnalyticsCall) -> None:
        await self._publish(topic, key, event)

    async def _publish_window(self, event: AnalyticsWindow) -> None:
        await self._publish(ANALYTICS_WINDOWS, event.partition_key or event.org_id, event)

    async def _dead_letter(self, event: faust.EventT, topic: str, exc: BaseException) -> None:
        message = event.message
        log.error("dead-lettering event", stage=self.group, topic=topic, partition=message.partition,
                  offset=message.offset, error=f"{type(exc).__name__}: {exc}")
        DEAD_LETTERS.labels(self.group, topic).inc()
        letter = DeadLetter(topic=topic, partition=message.partition, offset=message.offset, key=event.key,
                            value=event.value, stage=self.group, error_type=type(exc).__name__,
                            error=str(exc)[:4000])
        try:
            await self._send(dlq_name(topic), event.key, self.serde.serialize(self.prefix + dlq_name(topic), letter))
        except FAILURES_TO_EXIT_ON as failure:
            self._exit_without_commit(failure)

    def _exit_without_commit(self, exc: BaseException) -> None:
        log.error("could not publish; the worker exits without committing and is restarted", stage=self.group,
                  error=f"{type(exc).__name__}: {exc}")
        os._exit(EXIT_TRANSIENT)


def build(settings: Settings) -> AnalyticsApp:
    return AnalyticsApp(settings)


SPEC = FaustStageSpec(
    name="analytics",
    doc="conversation analytics per call (talk time, turns, interruptions, silences, phrase hits, sentiment) and "
        "live hourly and daily aggregates per organization and named speaker",
    inputs=(TRANSCRIPTS, SPEAKER_TURNS, ANALYTICS_CALLS_BY_ORG),
    outputs=(ANALYTICS_CALLS, ANALYTICS_CALLS_BY_ORG, ANALYTICS_WINDOWS),
    tables=("streams", "jobs", "hourly", "daily"),
    build=build,
    batch=500)
