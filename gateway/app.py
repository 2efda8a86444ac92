"""The gateway's application factory and lifecycle.

``create_app`` wires the middlewares, what the application holds (typed keys in ``gateway.refs``) and the
routes every feature module registers (``add_routes``); the contexts below open, in order, and close, in
reverse order, what lives as long as the application: the database pool with the repositories on it, the
object store, the Kafka publisher, the HTTP session, the live results feed and the background tasks. Feature
modules never import this module.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp
import aiohttp_cors
from aiohttp import web

from connectors.storage.factory import store_from_settings
from foundation.logs import configure, get_logger
from foundation.settings import Settings
from gateway import (
    analytics,
    files,
    job_feed,
    jobs,
    live,
    media,
    models,
    observability,
    openai_compat,
    openapi,
    privacy,
    rediarize,
    replays,
    search,
    speaker_enrollment,
    speakers,
    transcript_edits,
    transcripts,
    twilio,
    usage,
    webapp,
    webhooks,
)
from gateway.auth import routes as auth_routes
from gateway.auth.middleware import JWT_SECRET, LIMITER, authenticate, security_headers
from gateway.auth.permissions import check_complete
from gateway.auth.ratelimit import RateLimiter
from gateway.problems import mark_started, problem_middleware
from gateway.publisher import Publisher
from gateway.refs import (
    ANALYTICS,
    AUDIT,
    DATABASE,
    EDITS,
    ERASURE,
    FILES,
    HTTP,
    IDENTITY,
    JOBS,
    MODELS,
    PROFILES,
    PUBLISHER,
    RECORDINGS,
    RESULTS,
    SEARCH,
    SETTINGS,
    STORE,
    USAGE,
    WEBHOOKS,
)
from gateway.results import ResultsFeed
from gateway.validation import OPERATIONS, compile_operations, refuse_unstorable_text, validate_request
from processors.asr.models import ModelRegistry
from repositories.analytics import AnalyticsStore
from repositories.audit import AuditLog
from repositories.db import Database, create_pool
from repositories.edits import EditStore
from repositories.erasure import ErasureStore
from repositories.files import FileStore
from repositories.identity import IdentityStore
from repositories.jobs import JobStore
from repositories.recordings import RecordingStore
from repositories.search import TranscriptSearch
from repositories.speaker_profiles import SpeakerProfiles
from repositories.usage import UsageReport
from repositories.webhooks import WebhookStore

log = get_logger(__name__)

# the feature modules, each registering its routes with ``add_routes(app)``
FEATURES = (webapp, models, jobs, job_feed, transcripts, transcript_edits, media, files, observability, speakers,
            speaker_enrollment, live, replays, rediarize, privacy, search, usage, webhooks, analytics, openai_compat,
            twilio,
            auth_routes)


async def database(app: web.Application) -> AsyncIterator[None]:
    """One asyncpg pool, and the repositories (one per aggregate) on it."""
    pool = await create_pool(app[SETTINGS].database_url, max_size=8)
    app[DATABASE] = Database(pool)
    app[JOBS] = JobStore(pool)
    app[FILES] = FileStore(pool)
    app[IDENTITY] = IdentityStore(pool)
    app[AUDIT] = AuditLog(pool)
    app[WEBHOOKS] = WebhookStore(pool)
    app[SEARCH] = TranscriptSearch(pool)
    app[USAGE] = UsageReport(pool)
    app[PROFILES] = SpeakerProfiles(pool)
    app[ERASURE] = ErasureStore(pool)
    app[EDITS] = EditStore(pool)
    app[RECORDINGS] = RecordingStore(pool)
    app[ANALYTICS] = AnalyticsStore(pool)
    yield
    await pool.close()


async def object_store(app: web.Application) -> AsyncIterator[None]:
    app[STORE] = store_from_settings(app[SETTINGS])
    yield
    await app[STORE].close()


async def publisher(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    app[PUBLISHER] = Publisher(settings.kafka, settings.schema_registry.url, settings.schema_registry_file,
                               "gateway")
    yield
    app[PUBLISHER].close()


async def http_session(app: web.Application) -> AsyncIterator[None]:
    async with aiohttp.ClientSession() as session:
        app[HTTP] = session
        yield


async def results_feed(app: web.Application) -> AsyncIterator[None]:
    """The live sessions' results (``asr.segments`` from the end of the log), read from the start."""
    feed = ResultsFeed(app[SETTINGS])
    feed.start()
    app[RESULTS] = feed
    await asyncio.to_thread(feed.wait_ready)
    yield
    feed.close()


async def background_tasks(app: web.Application) -> AsyncIterator[None]:
    gauge = asyncio.create_task(observability.refresh_job_gauge(app))
    yield
    gauge.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await gauge


def _allow_cors(app: web.Application, origins: list[str]) -> None:
    cors = aiohttp_cors.setup(app, defaults={
        origin: aiohttp_cors.ResourceOptions(allow_credentials=True, expose_headers="*", allow_headers="*",
                                             allow_methods="*")
        for origin in origins})
    for route in list(app.router.routes()):
        if route.resource is not None and route.resource.canonical.startswith("/v1/"):
            cors.add(route)


def create_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[observability.measure, problem_middleware, refuse_unstorable_text,
                                       authenticate, validate_request],
                          client_max_size=settings.gateway.max_upload_bytes)
    app[SETTINGS] = settings
    app[JWT_SECRET] = settings.jwt_key()
    app[LIMITER] = RateLimiter(settings.auth.rate_per_s, settings.auth.rate_burst)
    app[MODELS] = ModelRegistry(settings.asr.model_paths, settings.model_cache)
    app.on_response_prepare.extend([observability.tag_response, mark_started, security_headers])
    app.cleanup_ctx.extend([database, object_store, publisher, http_session, results_feed, background_tasks])
    for feature in FEATURES:
        feature.add_routes(app)
    openapi.add_routes(app)
    check_complete(app)
    document = openapi.publish(app, {**openai_compat.openapi_paths(app[MODELS].names()), **webhooks.openapi_paths(),
                                     **analytics.openapi_paths(),
                                     **rediarize.openapi_paths()})
    app[OPERATIONS] = compile_operations(document)
    if settings.auth.cors_origins:
        _allow_cors(app, list(settings.auth.cors_origins))
    return app


def run_gateway(settings: Settings) -> None:
    configure(settings.log_level, settings.log_format, component="gateway")
    log.info("gateway starting", host=settings.gateway.host, port=settings.gateway.port)
    web.run_app(create_app(settings), host=settings.gateway.host, port=settings.gateway.port, print=None,
                access_log=None)
