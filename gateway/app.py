"""The aiohttp application: jobs (upload, status, transcript), models and health."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web
from confluent_kafka.admin import AdminClient

from gateway import job_ops, live, privacy, replays, search, speakers, twilio, usage
from gateway.access import audit, visible_job
from gateway.auth import routes as auth_routes
from gateway.auth.middleware import IDENTITY, JWT_SECRET, LIMITER, authenticate, require, security_headers
from gateway.auth.ratelimit import RateLimiter
from gateway.auth.store import IdentityStore
from gateway.problems import Problem, problem_middleware
from gateway.publisher import Publisher
from gateway.refs import HTTP, MODELS, PUBLISHER, REPO, SETTINGS, STORE
from gateway.repository import Repository
from gateway.results import ResultsFeed
from gateway.uploads import spool_to_store
from processors.asr.models import ModelRegistry, UnknownModel
from processors.post.render import FORMATS, MEDIA_TYPES, render, to_rttm
from streams.kafka import base_config
from streams.runtime import now_ms
from streams.topics import INGEST_REQUESTS
from streamscribe import __version__
from streamscribe.logs import get_logger
from streamscribe.settings import Settings

log = get_logger(__name__)

OPTION_FIELDS = ("language", "initial_prompt", "hotwords", "beam_size", "channel_mode", "segmentation", "diarize",
                 "min_speakers", "max_speakers", "speaker_names", "speaker_threshold", "redact")
ALLOWED_OPTION_VALUES = {"channel_mode": ("mix", "split"), "segmentation": ("merge", "utterance"),
                         "diarize": ("auto", "channels", "acoustic", "off")}


def validate_options(fields: dict[str, str]) -> None:
    """Raise a 400 problem for an option a worker could not honour."""
    for name, allowed in ALLOWED_OPTION_VALUES.items():
        if name in fields and fields[name] not in allowed:
            raise Problem(400, "Bad Request", f"{name} must be one of {', '.join(allowed)}")
    for name, lo, hi in (("beam_size", 1, 10), ("min_speakers", 1, 20), ("max_speakers", 1, 20)):
        if name in fields and not (fields[name].isdigit() and lo <= int(fields[name]) <= hi):
            raise Problem(400, "Bad Request", f"{name} must be an integer from {lo} to {hi}")
    if "min_speakers" in fields and "max_speakers" in fields and int(fields["min_speakers"]) > int(
            fields["max_speakers"]):
        raise Problem(400, "Bad Request", "min_speakers must not exceed max_speakers")
    if "redact" in fields and fields["redact"] not in ("off", "all") and not set(fields["redact"].split(",")) <= {
            "email", "phone", "card", "id"}:
        raise Problem(400, "Bad Request", "redact must be off, all, or a comma list of email, phone, card, id")
    if "speaker_threshold" in fields:
        try:
            ok = 0.0 < float(fields["speaker_threshold"]) <= 1.0
        except ValueError:
            ok = False
        if not ok:
            raise Problem(400, "Bad Request", "speaker_threshold must be a number in (0, 1]")


def _job_id() -> str:
    return uuid.uuid4().hex


async def create_job(request: web.Request) -> web.Response:
    principal = require(request, "jobs:write")
    settings = request.app[SETTINGS]
    if not request.content_type.startswith("multipart/"):
        raise Problem(415, "Unsupported Media Type", "upload the recording as multipart/form-data, field 'file'")
    job_id = _job_id()
    fields: dict[str, str] = {k: v for k, v in request.query.items() if k in (*OPTION_FIELDS, "model")}
    store = request.app[STORE]
    object_key = ""
    filename: str | None = None
    content_type: str | None = None
    size = 0
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, aiohttp.BodyPartReader):
            continue
        if part.name == "file":
            filename = Path(part.filename or "upload").name
            content_type = part.headers.get("Content-Type")
            object_key = f"uploads/{job_id}/original{Path(filename).suffix.lower()[:10]}"
            size = await spool_to_store(part, store, object_key, settings, content_type)
        elif part.name in (*OPTION_FIELDS, "model"):
            value = (await part.text()).strip()
            if value:
                fields[part.name] = value
        else:
            await part.release()
    if not object_key:
        raise Problem(400, "Bad Request", "the multipart body has no 'file' field")
    model = fields.pop("model", settings.asr.default_model)
    try:
        request.app[MODELS].get(model)
    except UnknownModel as exc:
        await store.delete(object_key)
        raise Problem(400, "Unknown model", str(exc), models=exc.known) from None
    try:
        validate_options(fields)
    except Problem:
        await store.delete(object_key)
        raise
    options = {"model": model, **fields, "org_id": principal.org_id}
    stream_id = job_id
    repo = request.app[REPO]
    await repo.create_job(job_id=job_id, stream_id=stream_id, filename=filename, content_type=content_type,
                          size_bytes=size, object_key=object_key, model=model, language=fields.get("language"),
                          options=options, org_id=principal.org_id, user_id=principal.user_id,
                          key_id=principal.key_id)
    await audit(request, principal, "job.create", f"job:{job_id}", {"filename": filename, "size_bytes": size})
    try:
        await request.app[PUBLISHER].publish(INGEST_REQUESTS, stream_id, {
            "stream_id": stream_id, "job_id": job_id, "revision": 1, "object_key": object_key,
            "filename": filename, "content_type": content_type, "size_bytes": size, "options": options,
            "submitted_at": now_ms(),
        })
    except Exception as exc:
        await repo.fail_job(job_id, f"could not queue the job: {exc}", "gateway")
        raise Problem(503, "Service Unavailable", f"the event backbone did not accept the job: {exc}") from exc
    log.info("job queued", job_id=job_id, filename=filename, size_bytes=size, model=model)
    body = {"job_id": job_id, "stream_id": stream_id, "status": "queued",
            "links": {"self": f"/v1/jobs/{job_id}", "transcript": f"/v1/jobs/{job_id}/transcript"}}
    return web.json_response(body, status=202, headers={"Location": f"/v1/jobs/{job_id}"})


async def get_job(request: web.Request) -> web.Response:
    _, job = await visible_job(request, request.match_info["job_id"], "jobs:read")
    return web.json_response(job)


async def get_transcript(request: web.Request) -> web.Response:
    job_id = request.match_info["job_id"]
    fmt = request.query.get("format", "json")
    if fmt not in (*FORMATS, "rttm"):
        raise Problem(400, "Bad Request", f"format must be one of {', '.join((*FORMATS, 'rttm'))}")
    revision = request.query.get("revision")
    if revision is not None and not revision.isdigit():
        raise Problem(400, "Bad Request", "revision must be a positive integer")
    repo = request.app[REPO]
    principal, job = await visible_job(request, job_id, "jobs:read")
    if job["status"] == "failed":
        raise Problem(409, "Job failed", job["error"] or "the job failed", job_id=job_id, job_status="failed")
    original = request.query.get("original") in ("1", "true")
    if original and not principal.can("pii:read"):
        raise Problem(403, "Forbidden", f"role {principal.role} may not read unredacted transcripts")
    transcript = await repo.transcript(job_id, int(revision) if revision else None, original=original)
    if transcript is None or (transcript["status"] != "completed" and job["status"] != "completed"):
        raise Problem(409, "Not ready", f"job {job_id} is {job['status']}; the transcript is not complete yet",
                      job_id=job_id, job_status=job["status"], progress=job["progress"])
    await audit(request, principal, "transcript.read" if fmt == "json" else "transcript.export",
                f"job:{job_id}", {"format": fmt, "revision": transcript["revision"], "original": original},
                org_id=job["org_id"])
    if fmt == "json":
        return web.json_response(transcript)
    if fmt == "rttm":
        turns = await repo.turns(job_id, transcript["revision"])
        return web.Response(text=to_rttm(job_id, turns), content_type="text/plain", charset="utf-8")
    return web.Response(text=render(transcript, fmt), content_type=MEDIA_TYPES[fmt], charset="utf-8")


async def list_models(request: web.Request) -> web.Response:
    require(request, "jobs:read")
    models = request.app[MODELS]
    return web.json_response({"default": request.app[SETTINGS].asr.default_model,
                              "models": [m.to_json() for m in models.list()]})


async def health(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    components: dict[str, Any] = {}

    async def check_db() -> None:
        started = time.monotonic()
        try:
            await asyncio.wait_for(request.app[REPO].ping(), 3)
            components["database"] = {"status": "ok", "ms": round((time.monotonic() - started) * 1000, 1)}
        except Exception as exc:
            components["database"] = {"status": "down", "error": str(exc)}

    async def check_kafka() -> None:
        started = time.monotonic()
        try:
            admin = AdminClient(base_config(settings.kafka))
            md = await asyncio.to_thread(admin.list_topics, timeout=3)
            components["kafka"] = {"status": "ok", "brokers": len(md.brokers), "topics": len(md.topics),
                                   "ms": round((time.monotonic() - started) * 1000, 1)}
        except Exception as exc:
            components["kafka"] = {"status": "down", "error": str(exc)}

    async def check_worker(name: str, url: str) -> None:
        try:
            async with request.app[HTTP].get(url, timeout=aiohttp.ClientTimeout(total=2)) as resp:
                body = await resp.json(content_type=None)
                components[f"worker:{name}"] = {**body, "status": "ok" if resp.status == 200 else "starting"}
        except Exception as exc:
            components[f"worker:{name}"] = {"status": "down", "error": str(exc) or type(exc).__name__}

    await asyncio.gather(check_db(), check_kafka(),
                         *(check_worker(n, u) for n, u in settings.worker_health_urls.items()))
    ok = all(c["status"] == "ok" for c in components.values())
    return web.json_response({"status": "ok" if ok else "degraded", "version": __version__,
                              "components": dict(sorted(components.items()))}, status=200 if ok else 503)


async def index(_request: web.Request) -> web.StreamResponse:
    return web.FileResponse(Path(__file__).parent / "static" / "index.html")


async def _startup(app: web.Application) -> None:
    settings = app[SETTINGS]
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=8)
    app[REPO] = Repository(pool)
    app[IDENTITY] = IdentityStore(pool)
    app[PUBLISHER] = Publisher(settings.kafka, settings.schema_registry.url, settings.schema_registry_file,
                               "gateway")
    app[HTTP] = aiohttp.ClientSession()
    app[live.RESULTS] = ResultsFeed(settings)
    app[live.RESULTS].start()
    await asyncio.to_thread(app[live.RESULTS].wait_ready)


async def _cleanup(app: web.Application) -> None:
    await app[HTTP].close()
    await app[STORE].close()
    app[live.RESULTS].close()
    app[PUBLISHER].close()
    await app[REPO].pool.close()


def create_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[problem_middleware, authenticate],
                          client_max_size=settings.gateway.max_upload_bytes)
    app[SETTINGS] = settings
    app[JWT_SECRET] = settings.jwt_key()
    app[LIMITER] = RateLimiter(settings.auth.rate_per_s, settings.auth.rate_burst)
    app.on_response_prepare.append(security_headers)
    app[STORE] = settings.object_store()
    app[MODELS] = ModelRegistry(settings.asr.model_paths)
    app.on_startup.append(_startup)
    app.on_cleanup.append(_cleanup)
    app.router.add_get("/", index)
    app.router.add_get("/health", health)
    app.router.add_get("/v1/models", list_models)
    app.router.add_post("/v1/jobs", create_job)
    app.router.add_get("/v1/jobs", job_ops.list_jobs)
    app.router.add_get("/v1/jobs/{job_id}", get_job)
    app.router.add_get("/v1/jobs/{job_id}/transcript", get_transcript)
    speakers.add_routes(app)
    live.add_routes(app)
    replays.add_routes(app)
    privacy.add_routes(app)
    job_ops.add_routes(app)
    search.add_routes(app)
    usage.add_routes(app)
    twilio.add_routes(app)
    auth_routes.add_routes(app)
    if settings.auth.cors_origins:
        import aiohttp_cors

        cors = aiohttp_cors.setup(app, defaults={
            origin: aiohttp_cors.ResourceOptions(allow_credentials=True, expose_headers="*", allow_headers="*",
                                                 allow_methods="*")
            for origin in settings.auth.cors_origins})
        for route in list(app.router.routes()):
            if route.resource is not None and route.resource.canonical.startswith("/v1/"):
                cors.add(route)
    return app


def run_gateway(settings: Settings) -> None:
    from streamscribe.logs import configure

    configure(settings.log_level, settings.log_format, component="gateway")
    log.info("gateway starting", host=settings.gateway.host, port=settings.gateway.port)
    web.run_app(create_app(settings), host=settings.gateway.host, port=settings.gateway.port, print=None,
                access_log=None)


__all__ = ["create_app", "json", "run_gateway"]
