"""The aiohttp application: jobs (upload, status, transcript), models and health."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field

import aiohttp
import asyncpg
from aiohttp import web

from connectors.storage.factory import store_from_settings
from foundation.events import IngestRequest
from foundation.logs import get_logger
from foundation.settings import Settings
from gateway import (
    files,
    job_feed,
    job_ops,
    live,
    media,
    observability,
    openai_compat,
    openapi,
    privacy,
    replays,
    search,
    speaker_enrollment,
    speakers,
    transcript_edits,
    twilio,
    usage,
    webapp,
)
from gateway import webhooks as webhook_routes
from gateway.access import audit, visible_job
from gateway.auth import routes as auth_routes
from gateway.auth.middleware import IDENTITY, JWT_SECRET, LIMITER, authenticate, require, security_headers
from gateway.auth.principal import Principal
from gateway.auth.ratelimit import RateLimiter
from gateway.problems import Problem, problem_middleware
from gateway.publisher import Publisher
from gateway.refs import HTTP, MODELS, PUBLISHER, REPO, SETTINGS, STORE
from gateway.results import ResultsFeed
from gateway.uploads import multipart_parts
from processors.asr.models import ModelRegistry, UnknownModel
from processors.post.render import FORMATS, MEDIA_TYPES, render, to_rttm
from repositories.identity import IdentityStore
from repositories.jobs import Repository
from streams.kafka.lanes import PRIORITIES
from streams.kafka.topics import INGEST_REQUESTS

log = get_logger(__name__)

OPTION_FIELDS = ("language", "initial_prompt", "hotwords", "beam_size", "channel_mode", "segmentation", "diarize",
                 "min_speakers", "max_speakers", "speaker_names", "speaker_threshold", "redact")
ALLOWED_OPTION_VALUES = {"channel_mode": ("mix", "split"), "segmentation": ("merge", "utterance"),
                         "diarize": ("auto", "channels", "acoustic", "off"), "priority": PRIORITIES}


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


@dataclass
class Upload:
    """A recording for a new job: received as multipart/form-data and stored once in object storage, or an
    already stored file (``file_id``) the job reads without a copy; not yet a job."""

    job_id: str
    object_key: str
    filename: str | None
    content_type: str | None
    size_bytes: int
    # the accepted text parts in the order they came (a name may repeat, e.g. ``timestamp_granularities[]``)
    parts: list[tuple[str, str]] = field(default_factory=list)
    # an existing file this job is made from (its object is not the job's to delete), with its organization
    file_id: str | None = None
    org_id: str | None = None
    # what the probe found in a new upload (recorded as its ``files`` row)
    probe: files.Probe | None = None

    @property
    def fields(self) -> dict[str, str]:
        """The text parts by name (the last one wins when a name repeats)."""
        return dict(self.parts)

    def values(self, name: str) -> list[str]:
        return [v for k, v in self.parts if k == name]

    async def discard(self, request: web.Request) -> None:
        """Delete what this request stored (never an existing file's object)."""
        if self.object_key and self.file_id is None:
            await request.app[STORE].delete(self.object_key)


async def receive_upload(request: web.Request, accepted: Collection[str],
                         defaults: dict[str, str] | None = None, *, file_optional: bool = False) -> Upload:
    """Read a multipart upload: the 'file' part is probed and spooled into object storage under a new job id, the
    text parts named in ``accepted`` are kept (stripped; empty ones dropped; after ``defaults``), any other part is
    skipped. Without a 'file' part: 400, unless ``file_optional``."""
    settings = request.app[SETTINGS]
    upload = Upload(job_id=_job_id(), object_key="", filename=None, content_type=None, size_bytes=0,
                    parts=list((defaults or {}).items()))
    try:
        async for part in multipart_parts(request, "the recording in field 'file'"):
            if part.name == "file" and not upload.object_key:
                filename = files.clean_filename(part.filename)
                content_type = part.headers.get("Content-Type")
                key = files.object_key(f"uploads/{upload.job_id}", filename)
                # an undecodable file is still stored: its job fails in ingest with the reason, as before
                size, found = await files.spool_and_probe(part, request.app[STORE], key, settings, content_type)
                upload.filename, upload.content_type, upload.object_key = filename, content_type, key
                upload.size_bytes, upload.probe = size, found
            elif part.name is not None and part.name in accepted:
                value = await files.form_text(part)
                if value:
                    upload.parts.append((part.name, value))
            else:
                await part.release()
    except BaseException:
        await upload.discard(request)
        raise
    if not upload.object_key and not file_optional:
        raise Problem(400, "Bad Request", "the multipart body has no 'file' field")
    return upload


async def queue_upload(request: web.Request, principal: Principal, upload: Upload, model: str,
                       fields: dict[str, str], *, tags: list[str] | None = None, priority: str = "normal") -> str:
    """Make an upload a job, as POST /v1/jobs does: check the model and options (a new upload they refuse is
    deleted), insert the job row (and a ``files`` row for a new upload) and publish its claim check to
    ``ingest.requests``. Returns the job's file id."""
    job_id, object_key, filename, content_type, size = (upload.job_id, upload.object_key, upload.filename,
                                                        upload.content_type, upload.size_bytes)
    try:
        request.app[MODELS].get(model)
    except UnknownModel as exc:
        await upload.discard(request)
        raise Problem(400, "Unknown model", str(exc), models=exc.known) from None
    try:
        validate_options(fields)
    except Problem:
        await upload.discard(request)
        raise
    org_id = upload.org_id or principal.org_id
    # the priority travels with the stream: it picks the speech lane (streams.kafka.lanes) at the costly stages
    options = {"model": model, **fields, "org_id": org_id, "priority": priority}
    stream_id = job_id
    repo = request.app[REPO]
    new_file = None if upload.file_id else files.file_row(
        file_id=files.new_file_id(), org_id=org_id, user_id=principal.user_id, object_key=object_key,
        filename=filename, content_type=content_type, size_bytes=size, found=upload.probe)
    try:
        await repo.create_job(job_id=job_id, stream_id=stream_id, filename=filename, content_type=content_type,
                              size_bytes=size, object_key=object_key, model=model, language=fields.get("language"),
                              options=options, org_id=org_id, user_id=principal.user_id,
                              key_id=principal.key_id, file_id=upload.file_id, new_file=new_file, tags=tags,
                              priority=priority)
    except LookupError:
        raise Problem(404, "Not Found", f"no file {upload.file_id!r}") from None
    except BaseException:
        await upload.discard(request)
        raise
    file_id = str(upload.file_id or (new_file or {}).get("file_id"))
    await audit(request, principal, "job.create", f"job:{job_id}",
                {"filename": filename, "size_bytes": size, "file_id": file_id}, org_id=org_id)
    try:
        await request.app[PUBLISHER].publish(INGEST_REQUESTS, IngestRequest(
            stream_id=stream_id, job_id=job_id, object_key=object_key, filename=filename,
            content_type=content_type, size_bytes=size, options=options))
    except Exception as exc:
        await repo.fail_job(job_id, f"could not queue the job: {exc}", "gateway")
        raise Problem(503, "Service Unavailable", f"the event backbone did not accept the job: {exc}") from exc
    log.info("job queued", job_id=job_id, file_id=file_id, filename=filename, size_bytes=size, model=model)
    return file_id


JOB_FIELDS = ("tags", "priority", "file_id")


async def _job_request(request: web.Request, accepted: tuple[str, ...]) -> Upload:
    """What POST /v1/jobs names: a multipart upload (``file``) or an existing ``file_id``, with the accepted
    fields from the form and the query string (the form wins)."""
    defaults = {k: job_ops.text_param(v, k) or "" for k, v in request.query.items() if k in accepted}
    if request.content_type.startswith("multipart/"):
        return await receive_upload(request, accepted, defaults, file_optional=True)
    parts = list(defaults.items())
    if request.content_type == "application/x-www-form-urlencoded":
        try:
            form = await request.post()
        except ValueError:  # not valid form encoding (or not UTF-8)
            raise Problem(400, "Bad Request", "malformed application/x-www-form-urlencoded body") from None
        parts += [(k, job_ops.text_param(v.strip(), k) or "") for k, v in form.items()
                  if k in accepted and isinstance(v, str) and v.strip()]
    elif not defaults.get("file_id"):
        raise Problem(415, "Unsupported Media Type",
                      "upload the recording as multipart/form-data, field 'file' (or name a stored file: file_id)")
    return Upload(job_id=_job_id(), object_key="", filename=None, content_type=None, size_bytes=0, parts=parts)


async def create_job(request: web.Request) -> web.Response:
    """POST /v1/jobs: a job from an upload (multipart ``file``) or from a stored file (``file_id``), with options,
    ``tags`` (comma-separated) and a ``priority``."""
    principal = require(request, "jobs:write")
    accepted = (*OPTION_FIELDS, "model", *JOB_FIELDS)
    upload = await _job_request(request, accepted)
    fields = upload.fields
    file_id = fields.pop("file_id", "").strip()
    try:
        tags = job_ops.parse_tags(",".join(upload.values("tags")))
        priority = job_ops.parse_priority(fields.pop("priority", "normal"))
        fields.pop("tags", None)
        if file_id and upload.object_key:
            raise Problem(400, "Bad Request", "send either a 'file' or a file_id, not both")
        if not file_id and not upload.object_key:
            raise Problem(400, "Bad Request", "the request has no 'file' field and no file_id")
    except Problem:
        await upload.discard(request)
        raise
    if file_id:
        _, found = await files.visible_file(request, file_id, "jobs:read")
        if found["probe_error"]:
            raise Problem(422, "Unprocessable Content", f"file {file_id} has no decodable audio: "
                          f"{found['probe_error']}", reason=found["probe_error"])
        upload.file_id, upload.org_id, upload.object_key = file_id, found["org_id"], found["object_key"]
        upload.filename, upload.content_type, upload.size_bytes = (found["filename"], found["content_type"],
                                                                   found["size_bytes"])
    model = fields.pop("model", request.app[SETTINGS].asr.default_model)
    stored_as = await queue_upload(request, principal, upload, model, fields, tags=tags, priority=priority)
    job_id = stream_id = upload.job_id
    body = {"job_id": job_id, "stream_id": stream_id, "status": "queued", "file_id": stored_as, "tags": tags,
            "priority": priority,
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
    app[JOB_GAUGE] = asyncio.create_task(observability.refresh_job_gauge(app))


async def _cleanup(app: web.Application) -> None:
    app[JOB_GAUGE].cancel()
    await app[HTTP].close()
    await app[STORE].close()
    app[live.RESULTS].close()
    app[PUBLISHER].close()
    await app[REPO].pool.close()


JOB_GAUGE = web.AppKey("job_gauge", asyncio.Task)


def create_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[observability.measure, problem_middleware, authenticate],
                          client_max_size=settings.gateway.max_upload_bytes)
    app[SETTINGS] = settings
    app[JWT_SECRET] = settings.jwt_key()
    app[LIMITER] = RateLimiter(settings.auth.rate_per_s, settings.auth.rate_burst)
    app.on_response_prepare.append(security_headers)
    app[STORE] = store_from_settings(settings)
    app[MODELS] = ModelRegistry(settings.asr.model_paths)
    app.on_startup.append(_startup)
    app.on_cleanup.append(_cleanup)
    webapp.add_routes(app)  # the web app at / (gateway/webapp.py) and the endpoints it added:
    for feature in (job_feed, media, transcript_edits, speaker_enrollment):
        feature.add_routes(app)
    app.router.add_get("/v1/models", list_models)
    app.router.add_post("/v1/jobs", create_job)
    app.router.add_get("/v1/jobs", job_ops.list_jobs)
    app.router.add_get("/v1/jobs/{job_id}", get_job)
    app.router.add_get("/v1/jobs/{job_id}/transcript", get_transcript)
    files.add_routes(app)
    observability.add_routes(app)
    openapi.add_routes(app, {**openai_compat.OPENAPI_PATHS, **webhook_routes.openapi_paths()})
    speakers.add_routes(app)
    live.add_routes(app)
    replays.add_routes(app)
    privacy.add_routes(app)
    job_ops.add_routes(app)
    search.add_routes(app)
    usage.add_routes(app)
    webhook_routes.add_routes(app)
    openai_compat.add_routes(app)
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
    from foundation.logs import configure

    configure(settings.log_level, settings.log_format, component="gateway")
    log.info("gateway starting", host=settings.gateway.host, port=settings.gateway.port)
    web.run_app(create_app(settings), host=settings.gateway.host, port=settings.gateway.port, print=None,
                access_log=None)


__all__ = ["create_app", "json", "run_gateway"]
