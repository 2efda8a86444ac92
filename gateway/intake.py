"""Job intake: a recording received as multipart/form-data (spooled, probed, stored once in object storage) or
named by ``file_id`` becomes a queued job, and its claim check goes to ``ingest.requests``. ``POST /v1/jobs``
(``gateway.jobs``) and the OpenAI-compatible endpoint (``gateway.openai_compat``) take uploads this way; a
retry or a replay queues a new revision of a stored job with ``queue_revision``."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from foundation.events import IngestRequest
from foundation.logs import get_logger
from gateway.auth.audit import audit
from gateway.auth.principal import Principal
from gateway.files import file_row, new_file_id
from gateway.options import validate_options
from gateway.probe import Probe
from gateway.problems import Problem
from gateway.publisher import Publisher
from gateway.refs import JOBS, MODELS, PUBLISHER, SETTINGS, STORE
from gateway.uploads import clean_filename, form_text, multipart_parts, object_key, spool_and_probe
from gateway.validation import check_form
from processors.asr.models import UnknownModel
from repositories.db import MissingReference
from repositories.jobs import NewJob
from streams.kafka.topics import INGEST_REQUESTS

log = get_logger(__name__)


def new_job_id() -> str:
    return uuid.uuid4().hex


@dataclass
class Upload:
    """A recording for a new job: received as multipart/form-data and stored once in object storage, or an
    already stored file (``file_id``) the job reads without a copy; not yet a job."""

    job_id: str
    object_key: str = ""
    filename: str | None = None
    content_type: str | None = None
    size_bytes: int = 0
    # the accepted text parts in the order they came (a name may repeat, e.g. ``timestamp_granularities[]``)
    parts: list[tuple[str, str]] = field(default_factory=list)
    # an existing file this job is made from (its object is not the job's to delete), with its organization
    file_id: str | None = None
    org_id: str | None = None
    # what the probe found in a new upload (recorded as its ``files`` row)
    probe: Probe | None = None

    @property
    def fields(self) -> dict[str, str]:
        """The text parts by name (the last one wins when a name repeats)."""
        return dict(self.parts)

    def values(self, name: str) -> list[str]:
        return [v for k, v in self.parts if k == name]

    def use_file(self, file_id: str, row: dict[str, Any]) -> None:
        """Make the job from a stored file (its ``files`` row) rather than from an upload."""
        self.file_id, self.org_id, self.object_key = file_id, row["org_id"], row["object_key"]
        self.filename, self.content_type, self.size_bytes = row["filename"], row["content_type"], row["size_bytes"]

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
    upload = Upload(job_id=new_job_id(), parts=list((defaults or {}).items()))
    try:
        async for part in multipart_parts(request, "the recording in field 'file'"):
            if part.name == "file" and not upload.object_key:
                filename = clean_filename(part.filename)
                content_type = part.headers.get("Content-Type")
                key = object_key(f"uploads/{upload.job_id}", filename)
                # probed before it is kept, exactly as POST /v1/files does: no decodable audio (or a truncated
                # recording) is a 422 and nothing is stored
                size, found = await spool_and_probe(part, request.app[STORE], key, settings, content_type,
                                                    refuse_undecodable=True)
                upload.filename, upload.content_type, upload.object_key = filename, content_type, key
                upload.size_bytes, upload.probe = size, found
            elif part.name is not None and part.name in accepted:
                value = await form_text(part)
                if value:
                    upload.parts.append((part.name, value))
            else:
                await part.release()
        check_form(request, upload.parts)
    except BaseException:
        await upload.discard(request)
        raise
    if not upload.object_key and not file_optional:
        raise Problem(400, "Bad Request", "the multipart body has no 'file' field")
    return upload


async def _check(request: web.Request, upload: Upload, model: str, fields: dict[str, str]) -> None:
    """The model is installed and the options are valid; else a 400 problem, and a new upload is deleted."""
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


async def queue_upload(request: web.Request, principal: Principal, upload: Upload, model: str,
                       fields: dict[str, str], *, tags: list[str] | None = None, priority: str = "normal") -> str:
    """Make an upload a job, as POST /v1/jobs does: check the model and options (a new upload they refuse is
    deleted), insert the job row (and a ``files`` row for a new upload) and publish its claim check to
    ``ingest.requests``. Returns the job's file id."""
    await _check(request, upload, model, fields)
    org_id = upload.org_id or principal.org_id
    # the priority travels with the stream: it picks the speech lane (streams.kafka.lanes) at the costly stages
    options = {"model": model, **fields, "org_id": org_id, "priority": priority}
    job = NewJob(job_id=upload.job_id, stream_id=upload.job_id, object_key=upload.object_key, model=model,
                 options=options, filename=upload.filename, content_type=upload.content_type,
                 size_bytes=upload.size_bytes, language=fields.get("language"), org_id=org_id,
                 user_id=principal.user_id, key_id=principal.key_id, file_id=upload.file_id, tags=list(tags or []),
                 priority=priority)
    new_file = None if upload.file_id else file_row(
        file_id=new_file_id(), org_id=org_id, user_id=principal.user_id, object_key=upload.object_key,
        filename=upload.filename, content_type=upload.content_type, size_bytes=upload.size_bytes,
        found=upload.probe)
    jobs = request.app[JOBS]
    try:
        await jobs.create(job, new_file)
    except MissingReference:
        raise Problem(404, "Not Found", f"no file {upload.file_id!r}") from None
    except BaseException:
        await upload.discard(request)
        raise
    file_id = str(upload.file_id or (new_file.file_id if new_file else None))
    await audit(request, principal, "job.create", f"job:{job.job_id}",
                {"filename": job.filename, "size_bytes": job.size_bytes, "file_id": file_id}, org_id=org_id)
    try:
        await request.app[PUBLISHER].publish(INGEST_REQUESTS, IngestRequest(
            stream_id=job.stream_id, job_id=job.job_id, object_key=job.object_key, filename=job.filename,
            content_type=job.content_type, size_bytes=job.size_bytes, options=options))
    except Exception as exc:
        await jobs.fail_job(job.job_id, f"could not queue the job: {exc}", "gateway")
        raise Problem(503, "Service Unavailable", f"the event backbone did not accept the job: {exc}") from exc
    log.info("job queued", job_id=job.job_id, file_id=file_id, filename=job.filename, size_bytes=job.size_bytes,
             model=model)
    return file_id


async def queue_revision(publisher: Publisher, job: dict[str, Any], revision: int, options: dict[str, str]) -> None:
    """Publish the claim check of a new revision of a stored job (its row as ``JobStore.start_revision``
    returns it): ingest reads the job's stored audio again."""
    await publisher.publish(INGEST_REQUESTS, IngestRequest(
        stream_id=job["stream_id"], job_id=job["job_id"], revision=revision, object_key=job["object_key"],
        filename=job["filename"], content_type=job["content_type"], size_bytes=job["size_bytes"] or 0,
        options=options))
