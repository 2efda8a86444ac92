"""Gateway observability: Prometheus metrics (requests, latency, jobs by state), health, detailed health and
readiness, and request-scoped log context."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

from foundation.version import __version__
from gateway.refs import DATABASE, HTTP, JOBS, SETTINGS
from repositories.jobs import STATUSES
from streams.kafka.clients import admin_client

REQUESTS = Counter("streamscribe_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram("streamscribe_http_request_seconds", "HTTP request latency", ["method", "route"],
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
JOBS_BY_STATUS = Gauge("streamscribe_jobs", "Jobs by state (refreshed every 15 s)", ["status"])
JOB_REFRESH_S = 15.0
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def measure(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = request.headers.get("X-Request-ID") or uuid.uuid4().hex[:16]
    structlog.contextvars.bind_contextvars(request_id=request_id, path=request.path)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        response.headers["X-Request-ID"] = request_id
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


async def _components(request: web.Request, workers: bool) -> dict[str, Any]:
    settings = request.app[SETTINGS]
    components: dict[str, Any] = {}

    async def check_db() -> None:
        started = time.monotonic()
        try:
            await asyncio.wait_for(request.app[DATABASE].ping(), 3)
            components["database"] = {"status": "ok", "ms": round((time.monotonic() - started) * 1000, 1)}
        except Exception as exc:
            components["database"] = {"status": "down", "error": str(exc) or type(exc).__name__}

    async def check_kafka() -> None:
        started = time.monotonic()
        try:
            admin = admin_client(settings.kafka, "gateway-health")
            md = await asyncio.to_thread(admin.list_topics, timeout=3)
            components["kafka"] = {"status": "ok", "brokers": len(md.brokers), "topics": len(md.topics),
                                   "ms": round((time.monotonic() - started) * 1000, 1)}
        except Exception as exc:
            components["kafka"] = {"status": "down", "error": str(exc) or type(exc).__name__}

    async def check_worker(name: str, url: str) -> None:
        try:
            async with request.app[HTTP].get(url, timeout=aiohttp.ClientTimeout(total=2)) as resp:
                body = await resp.json(content_type=None)
                components[f"worker:{name}"] = {**body, "status": "ok" if resp.status == 200 else "starting"}
        except Exception as exc:
            components[f"worker:{name}"] = {"status": "down", "error": str(exc) or type(exc).__name__}

    checks = [check_db(), check_kafka()]
    if workers:
        checks += [check_worker(n, u) for n, u in settings.worker_health_urls.items()]
    await asyncio.gather(*checks)
    return dict(sorted(components.items()))


async def health(_request: web.Request) -> web.Response:
    """Liveness: the gateway process answers."""
    return web.json_response({"status": "ok", "version": __version__})


async def ready(request: web.Request) -> web.Response:
    """Readiness: the gateway can serve (its database and Kafka answer)."""
    components = await _components(request, workers=False)
    ok = all(c["status"] == "ok" for c in components.values())
    return web.json_response({"status": "ready" if ok else "not ready", "components": components},
                             status=200 if ok else 503)


async def detailed(request: web.Request) -> web.Response:
    """Every dependency and every pipeline worker this gateway knows of."""
    components = await _components(request, workers=True)
    ok = all(c["status"] == "ok" for c in components.values())
    return web.json_response({"status": "ok" if ok else "degraded", "version": __version__,
                              "components": components}, status=200 if ok else 503)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/health", health)
    app.router.add_get("/health/detailed", detailed)
    app.router.add_get("/ready", ready)
    app.router.add_get("/metrics", metrics)
