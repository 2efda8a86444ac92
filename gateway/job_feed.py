"""Job progress pushed to browsers as it happens: ``GET /v1/events`` (server-sent events), fed by a consumer
of the ``jobs.events`` topic, not by polling.

One consumer per gateway process reads ``jobs.events`` from the end of the log (a group of its own, nothing
committed) and hands each event to the event loop, where it goes to every open stream whose caller may see
the job (its organization; the platform admin sees all) and, with ``?job_id=``, only for that job. Each stream
gets

- ``event: stage``: a stage's report as it arrives (``job_id``, ``revision``, ``stage``, ``state``,
  ``progress``, ``message``, ``error``, ``at``);
- ``event: job``: the job as ``GET /v1/jobs/{id}`` shows it, read from PostgreSQL shortly after its events
  (coalesced), and again until the job is finished when a stage reports the end (the materializer writes
  the final status a moment after the last stage reports);
- ``event: ready`` first, ``: keep-alive`` comments every 15 s, and the stream ends after the access token's
  lifetime (the client reconnects with a fresh token), or with ``event: overflow`` for a client that cannot
  keep up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from confluent_kafka import TopicPartition

from foundation.logs import get_logger
from foundation.settings import Settings
from gateway.auth.middleware import caller
from gateway.auth.permissions import add_route, needs
from gateway.auth.principal import Principal
from gateway.refs import JOBS, SETTINGS
from streams.kafka.clients import assign_at_end, reader_consumer
from streams.kafka.schema_registry import make_registry
from streams.kafka.serde import AvroSerde
from streams.kafka.topics import JOBS_EVENTS

log = get_logger(__name__)

TERMINAL = ("completed", "failed", "cancelled")
KEEPALIVE_S = 15.0
QUEUE_SIZE = 1000
ORG_CACHE = 10_000


@dataclass(eq=False)
class Subscriber:
    principal: Principal
    job_id: str | None
    queue: asyncio.Queue[tuple[str, dict[str, Any]]] = field(
        default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    overflowed: bool = False

    def wants(self, job_id: str, org_id: str) -> bool:
        return (self.job_id is None or self.job_id == job_id) and self.principal.sees(org_id)

    def offer(self, kind: str, data: dict[str, Any]) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait((kind, data))
        except asyncio.QueueFull:
            self.overflowed = True
            self.queue.get_nowait()  # make room for the notice; the client reloads what it shows
            self.queue.put_nowait(("overflow", {"detail": "too many events queued; reload"}))


def stage_message(ev: dict[str, Any]) -> dict[str, Any]:
    """A ``jobs.events`` event as the browser gets it (stage names as ``GET /v1/jobs/{id}`` shows them)."""
    at: Any = ev.get("at")
    return {"job_id": ev["job_id"], "revision": ev.get("revision", 1),
            "stage": str(ev["stage"]).removeprefix("streamscribe-"), "state": str(ev["state"]).lower(),
            "progress": ev.get("progress"), "message": ev.get("message"), "error": ev.get("error"),
            "at": at.isoformat() if hasattr(at, "isoformat") else at}


def ends_job(ev: dict[str, Any]) -> bool:
    """A report after which the job's final status is about to be written."""
    stage = str(ev["stage"]).removeprefix("streamscribe-")
    return ev["state"] == "FAILED" or (ev["state"] == "COMPLETED" and stage == "post")


class JobFeed:
    """The ``jobs.events`` consumer (a thread) and the fan-out to subscribers (on the event loop)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topic = settings.kafka.topic_prefix + JOBS_EVENTS
        self.serde = AvroSerde(make_registry(settings.schema_registry.url, settings.schema_registry_file),
                               settings.kafka.topic_prefix)
        self.subscribers: set[Subscriber] = set()
        self._orgs: OrderedDict[str, str] = OrderedDict()
        self._snapshots: dict[str, dict[str, bool]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="job-feed")
        self._app: web.Application | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle -----------------------------------------------------------------------------------
    def start(self, app: web.Application) -> None:
        self._app, self._loop = app, asyncio.get_running_loop()
        self._thread.start()

    def wait_ready(self, timeout: float = 15) -> bool:
        return self._ready.wait(timeout)

    async def close(self) -> None:
        self._stop.set()
        for sub in list(self.subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                sub.queue.put_nowait(("close", {}))
        for task in list(self._tasks):
            task.cancel()
        await asyncio.to_thread(self._thread.join, 5)

    # -- subscribers ---------------------------------------------------------------------------------
    def subscribe(self, principal: Principal, job_id: str | None) -> Subscriber:
        sub = Subscriber(principal, job_id)
        self.subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)

    # -- the consumer thread -------------------------------------------------------------------------
    def _run(self) -> None:
        kafka = self.settings.kafka
        consumer = reader_consumer(kafka, f"{kafka.topic_prefix}gateway-jobs-{uuid.uuid4().hex}", "gateway-jobs")
        try:
            md = consumer.list_topics(self.topic, timeout=10)
            assign_at_end(consumer, [TopicPartition(self.topic, p) for p in md.topics[self.topic].partitions])
            self._ready.set()
            while not self._stop.is_set():
                msg = consumer.poll(0.2)
                if msg is None or msg.error() or not self.subscribers:
                    continue
                try:
                    value = self.serde.deserialize(self.topic, msg.value())
                except Exception as exc:  # a viewer skips what it cannot read; the stages dead-letter it
                    log.warning("undecodable job event skipped", error=str(exc))
                    continue
                if self._loop is not None and value.get("job_id"):
                    self._loop.call_soon_threadsafe(self._spawn, self._dispatch(value))
        except Exception:
            log.exception("job feed stopped")
        finally:
            consumer.close()

    # -- fan-out on the event loop -------------------------------------------------------------------
    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _org_of(self, job_id: str) -> str | None:
        org = self._orgs.get(job_id)
        if org is None and self._app is not None:
            job = await self._app[JOBS].job(job_id)
            if job is None:
                return None
            org = self._orgs[job_id] = job["org_id"]
            if len(self._orgs) > ORG_CACHE:
                self._orgs.popitem(last=False)
        return org

    def _send(self, job_id: str, org_id: str, kind: str, data: dict[str, Any]) -> int:
        targets = [s for s in self.subscribers if s.wants(job_id, org_id)]
        for sub in targets:
            sub.offer(kind, data)
        return len(targets)

    async def _dispatch(self, ev: dict[str, Any]) -> None:
        job_id = ev["job_id"]
        try:
            org = await self._org_of(job_id)
        except Exception as exc:  # the database is away for a moment: this report is skipped, not the feed
            log.warning("job feed could not look up a job", job_id=job_id, error=str(exc))
            return
        if org is None or not self._send(job_id, org, "stage", stage_message(ev)):
            return
        pending = self._snapshots.get(job_id)
        if pending is not None:
            pending["dirty"] = True
            pending["until_finished"] = pending["until_finished"] or ends_job(ev)
            return
        self._snapshots[job_id] = {"dirty": False, "until_finished": ends_job(ev)}
        self._spawn(self._snapshot(job_id))

    async def _snapshot(self, job_id: str) -> None:
        """Send the job as stored, after a short pause that coalesces a burst of reports; repeat while new
        reports came meanwhile, or (after the last stage's report) until the stored status is final."""
        assert self._app is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        delay = 0.25
        pending = self._snapshots[job_id]
        try:
            while True:
                await asyncio.sleep(delay)
                pending["dirty"] = False
                job = await self._app[JOBS].job(job_id)
                if job is None:
                    return
                self._send(job_id, job["org_id"], "job", job)
                finished = job["status"] in TERMINAL
                if pending["dirty"]:
                    delay = 0.25
                elif pending["until_finished"] and not finished and loop.time() < deadline:
                    delay = min(2.0, delay * 2)
                else:
                    return
        except Exception as exc:
            log.warning("job feed could not read a job", job_id=job_id, error=str(exc))
        finally:
            self._snapshots.pop(job_id, None)


FEED = web.AppKey("job_feed", JobFeed)


async def events(request: web.Request) -> web.StreamResponse:
    """GET /v1/events[?job_id=]: server-sent events of job progress (see the module's docstring)."""
    principal = caller(request)
    job_id = request.query.get("job_id") or None
    feed = request.app[FEED]
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8",
                                           "Cache-Control": "no-store", "X-Accel-Buffering": "no"})
    sub = feed.subscribe(principal, job_id)
    loop = asyncio.get_running_loop()
    until = loop.time() + request.app[SETTINGS].auth.access_ttl_s
    try:
        await response.prepare(request)
        await response.write(b"retry: 2000\nevent: ready\ndata: {}\n\n")
        while loop.time() < until:
            try:
                kind, data = await asyncio.wait_for(sub.queue.get(), min(KEEPALIVE_S, until - loop.time()))
            except TimeoutError:
                await response.write(b": keep-alive\n\n")
                continue
            if kind == "close":
                break
            await response.write(f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode())
            if kind == "overflow":
                break
    except (ConnectionResetError, ConnectionError):
        pass  # the browser went away
    finally:
        feed.unsubscribe(sub)
    return response


async def _start(app: web.Application) -> None:
    app[FEED] = JobFeed(app[SETTINGS])
    app[FEED].start(app)
    await asyncio.to_thread(app[FEED].wait_ready)


async def _stop(app: web.Application) -> None:
    if FEED in app:
        await app[FEED].close()


def add_routes(app: web.Application) -> None:
    app.on_startup.append(_start)
    app.on_shutdown.append(_stop)
    add_route(app, "GET", "/v1/events", events, needs("jobs:read"))
