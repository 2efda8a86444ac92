"""Gateway observability: Prometheus metrics (requests, latency, jobs by state), health, detailed health and
readiness, request ids and request-scoped log context.

Readiness and detailed health answer within ``CHECK_TIMEOUT_S`` whatever a dependency does: each check runs as
a task of its own and the answer waits for it at most that long, so a frozen database or broker makes the
answer "down: no answer within 3 s", never a slow answer. A check that has not finished is not started again
(a later request waits on the same task), so a dependency that hangs holds one connection, not one per call.

Every response carries ``X-Request-ID``: the caller's own when it is short and plain (at most 64 of
``A-Z a-z 0-9 . _ : -``), else a fresh one; it is in every log line of the request too.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import aiohttp
import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

from foundation.version import __version__
from gateway.auth.permissions import PUBLIC, add_route
from gateway.refs import DATABASE, HTTP, JOBS, SETTINGS
from repositories.jobs import STATUSES
from streams.kafka.clients import admin_client

REQUESTS = Counter("streamscribe_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram("streamscribe_http_request_seconds", "HTTP request latency", ["method", "route"],
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
JOBS_BY_STATUS = Gauge("streamscribe_jobs", "Jobs by state (refreshed every 15 s)", ["status"])
JOB_REFRESH_S = 15.0
CHECK_TIMEOUT_S = 3.0
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Component = dict[str, Any]

REQUEST_ID = web.RequestKey("request_id", str)
PLAIN_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def request_id(request: web.Request) -> str:
    """The request's id: the caller's ``X-Request-ID`` when it is short and plain, else a fresh one."""
    if REQUEST_ID not in request:
        given = request.headers.get("X-Request-ID", "")
        request[REQUEST_ID] = given if PLAIN_ID.fullmatch(given) else uuid.uuid4().hex[:16]
    return request[REQUEST_ID]


async def tag_response(request: web.Request, response: web.StreamResponse) -> None:
    """Every response, errors and the router's own 404/405 included, names its request."""
    response.headers["X-Request-ID"] = request_id(request)


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def measure(request: web.Request, handler: Handler) -> web.StreamResponse:
    structlog.contextvars.bind_contextvars(request_id=request_id(request), path=request.path)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        route = _route(request)
        REQUESTS.labels(request.method, route, str(status)).inc()
        LATENCY.labels(request.method, route).observe(time.perf_counter() - started)
        structlog.contextvars.clear_contextvars()


async def metrics(_request: web.Request) -> web.Response:
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def refresh_job_gauge(app: web.Application) -> None:
    while True:
        try:
            counts = await app[JOBS].count_by_status()
            for status in STATUSES:
                JOBS_BY_STATUS.labels(status).set(counts.get(status, 0))
        except Exception:  # the database may be restarting; the next round tries again
            structlog.get_logger(__name__).warning("job gauge refresh failed")
        await asyncio.sleep(JOB_REFRESH_S)


class Checks:
    """Dependency checks bounded in time: ``run`` answers within ``timeout`` whatever the check does, and a
    check still running from an earlier call is waited on, not started again."""

    def __init__(self) -> None:
        self._running: dict[str, asyncio.Task[Component]] = {}

    async def run(self, name: str, check: Callable[[], Coroutine[Any, Any, Component]], timeout: float) -> Component:
        task = self._running.get(name)
        if task is None or task.done():
            task = asyncio.create_task(check(), name=f"check:{name}")
            task.add_done_callback(_retrieve)
            self._running[name] = task
        done, _ = await asyncio.wait({task}, timeout=timeout)
        if not done:  # left running: it ends when the dependency answers, and the next call waits on it
            return {"status": "down", "error": f"no answer within {timeout:g} s"}
        try:
            return task.result()
        except Exception as exc:
            return {"status": "down", "error": str(exc) or type(exc).__name__}


def _retrieve(task: asyncio.Task[Component]) -> None:
    """An abandoned check's outcome is read, so that asyncio does not report it as never retrieved."""
    if not task.cancelled():
        task.exception()


CHECKS = web.AppKey("health_checks", Checks)


async def _components(request: web.Request, workers: bool) -> dict[str, Any]:
    settings = request.app[SETTINGS]

    async def check_db() -> Component:
        started = time.monotonic()
        await request.app[DATABASE].ping()
        return {"status": "ok", "ms": round((time.monotonic() - started) * 1000, 1)}

    async def check_kafka() -> Component:
        started = time.monotonic()
        admin = admin_client(settings.kafka, "gateway-health")
        md = await asyncio.to_thread(admin.list_topics, timeout=CHECK_TIMEOUT_S)
        return {"status": "ok", "brokers": len(md.brokers), "topics": len(md.topics),
                "ms": round((time.monotonic() - started) * 1000, 1)}

    def check_worker(url: str) -> Callable[[], Coroutine[Any, Any, Component]]:
        async def check() -> Component:
            async with request.app[HTTP].get(url, timeout=aiohttp.ClientTimeout(total=CHECK_TIMEOUT_S)) as resp:
                body = await resp.json(content_type=None)
                return {**body, "status": "ok" if resp.status == 200 else "starting"}
        return check

    checks: dict[str, Callable[[], Coroutine[Any, Any, Component]]] = {"database": check_db, "kafka": check_kafka}
    if workers:
        checks |= {f"worker:{n}": check_worker(u) for n, u in settings.worker_health_urls.items()}
    results = await asyncio.gather(*(request.app[CHECKS].run(name, check, CHECK_TIMEOUT_S)
                                     for name, check in checks.items()))
    return dict(sorted(zip(checks, results, strict=True)))


async def health(_request: web.Request) -> web.Response:
    """Liveness: the gateway process answers."""
    return web.json_response({"status": "ok", "version": __version__})


async def ready(request: web.Request) -> web.Response:
    """Readiness: the gateway can serve (its database and Kafka answer)."""
    components = await _components(request, workers=False)
    ok = all(c["status"] == "ok" for c in components.values())
    return web.json_response({"status": "ready" if ok else "not ready", "timeout_s": CHECK_TIMEOUT_S,
                              "components": components}, status=200 if ok else 503)


async def detailed(request: web.Request) -> web.Response:
    """Every dependency and every pipeline worker this gateway knows of."""
    components = await _components(request, workers=True)
    ok = all(c["status"] == "ok" for c in components.values())
    return web.json_response({"status": "ok" if ok else "degraded", "version": __version__,
                              "timeout_s": CHECK_TIMEOUT_S, "components": components}, status=200 if ok else 503)


def add_routes(app: web.Application) -> None:
    app[CHECKS] = Checks()
    add_route(app, "GET", "/health", health, PUBLIC)
    add_route(app, "GET", "/health/detailed", detailed, PUBLIC)
    add_route(app, "GET", "/ready", ready, PUBLIC)
    add_route(app, "GET", "/metrics", metrics, PUBLIC)
