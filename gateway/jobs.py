"""Job endpoints: submit (``POST /v1/jobs``), read one, a filtered and cursor-paginated list, tags and
priority, cancel and retry. Transcripts are served by ``gateway.transcripts``; erasure by ``gateway.privacy``."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from gateway.access import visible_job
from gateway.auth.audit import audit
from gateway.auth.middleware import caller
from gateway.auth.permissions import add_route, needs
from gateway.files import visible_file
from gateway.intake import Upload, new_job_id, queue_revision, queue_upload, receive_upload
from gateway.options import OPTION_FIELDS, parse_priority, parse_tags
from gateway.params import decode_cursor, next_cursor, parse_limit, parse_time
from gateway.problems import Problem
from gateway.refs import JOBS, PUBLISHER, SETTINGS
from gateway.validation import json_object
from repositories.jobs import STATUSES, JobFilter

JOB_FIELDS = ("tags", "priority", "file_id")
ACCEPTED = (*OPTION_FIELDS, "model", *JOB_FIELDS)


async def _job_request(request: web.Request) -> Upload:
    """What POST /v1/jobs names: a multipart upload (``file``) or an existing ``file_id``, with the accepted
    fields from the form and the query string (the form wins)."""
    defaults = {k: v for k, v in request.query.items() if k in ACCEPTED and v}
    if request.content_type.startswith("multipart/"):
        return await receive_upload(request, ACCEPTED, defaults, file_optional=True)
    parts = list(defaults.items())
    if request.content_type == "application/x-www-form-urlencoded":
        try:
            form = await request.post()
        except ValueError:  # not valid form encoding (or not UTF-8)
            raise Problem(400, "Bad Request", "malformed application/x-www-form-urlencoded body") from None
        parts += [(k, v.strip()) for k, v in form.items() if k in ACCEPTED and isinstance(v, str) and v.strip()]
    elif not defaults.get("file_id"):
        raise Problem(415, "Unsupported Media Type",
                      "upload the recording as multipart/form-data, field 'file' (or name a stored file: file_id)")
    return Upload(job_id=new_job_id(), parts=parts)


async def _labels(request: web.Request, upload: Upload, fields: dict[str, str]) -> tuple[str, list[str], str]:
    """(file_id, tags, priority) of a job request, popped from ``fields``; a refused request's upload is
    deleted."""
    file_id = fields.pop("file_id", "").strip()
    try:
        tags = parse_tags(",".join(upload.values("tags")))
        priority = parse_priority(fields.pop("priority", "normal"))
        fields.pop("tags", None)
        if file_id and upload.object_key:
            raise Problem(400, "Bad Request", "send either a 'file' or a file_id, not both")
        if not file_id and not upload.object_key:
            raise Problem(400, "Bad Request", "the request has no 'file' field and no file_id")
    except Problem:
        await upload.discard(request)
        raise
    return file_id, tags, priority


async def create_job(request: web.Request) -> web.Response:
    """POST /v1/jobs: a job from an upload (multipart ``file``) or from a stored file (``file_id``), with options,
    ``tags`` (comma-separated) and a ``priority``."""
    principal = caller(request)
    upload = await _job_request(request)
    fields = upload.fields
    file_id, tags, priority = await _labels(request, upload, fields)
    if file_id:
        _, found = await visible_file(request, file_id)
        if found["probe_error"]:
            raise Problem(422, "Unprocessable Content", f"file {file_id} has no decodable audio: "
                          f"{found['probe_error']}", reason=found["probe_error"])
        upload.use_file(file_id, found)
    model = fields.pop("model", request.app[SETTINGS].asr.default_model)
    stored_as = await queue_upload(request, principal, upload, model, fields, tags=tags, priority=priority)
    job_id = stream_id = upload.job_id
    body = {"job_id": job_id, "stream_id": stream_id, "status": "queued", "file_id": stored_as, "tags": tags,
            "priority": priority,
            "links": {"self": f"/v1/jobs/{job_id}", "transcript": f"/v1/jobs/{job_id}/transcript"}}
    return web.json_response(body, status=202, headers={"Location": f"/v1/jobs/{job_id}"})


async def get_job(request: web.Request) -> web.Response:
    _, job = await visible_job(request, request.match_info["job_id"])
    return web.json_response(job)


async def list_jobs(request: web.Request) -> web.Response:
    """GET /v1/jobs[?status=&source=&tag=&priority=&file_id=&model=&from=&to=&limit=&cursor=] newest first;
    ``next_cursor`` continues the list where it stopped, stable while new jobs arrive."""
    principal = caller(request)
    q = request.query
    limit = parse_limit(q)
    if q.get("status") and q["status"] not in STATUSES:
        raise Problem(400, "Bad Request", f"status must be one of {', '.join(STATUSES)}")
    if q.get("priority"):
        parse_priority(q["priority"])
    after = decode_cursor(q["cursor"]) if q.get("cursor") else None
    org = (q.get("org_id") or None) if principal.is_admin else principal.org_id
    where = JobFilter(org_id=org, status=q.get("status") or None, source=q.get("source") or None,
                      tag=q.get("tag") or None, model=q.get("model") or None,
                      since=parse_time(q.get("from"), "from"), until=parse_time(q.get("to"), "to"),
                      priority=q.get("priority") or None, file_id=q.get("file_id") or None)
    jobs = await request.app[JOBS].page(where, after, limit + 1)
    return web.json_response({"jobs": jobs[:limit], "next_cursor": next_cursor(jobs, limit, "job_id")})


async def update(request: web.Request) -> web.Response:
    """PATCH /v1/jobs/{id} with ``{"tags": [...], "priority": "low|normal|high"}`` (either or both): the
    job's labels. A new priority applies to the job's next run (retry); audio already queued keeps its lane."""
    job_id = request.match_info["job_id"]
    principal, job = await visible_job(request, job_id)
    body = await json_object(request)
    unknown = sorted(set(body) - {"tags", "priority"})
    if unknown:
        raise Problem(400, "Bad Request", f"only tags and priority can be changed, not {', '.join(unknown)}")
    if not body:
        raise Problem(400, "Bad Request", "give tags, priority, or both")
    if "tags" in body and not isinstance(body["tags"], list):
        raise Problem(400, "Bad Request", "tags must be a list of strings")
    tags = parse_tags(body["tags"]) if "tags" in body else None
    priority = parse_priority(body["priority"]) if "priority" in body else None
    if not await request.app[JOBS].update(job_id, tags, priority):
        raise Problem(404, "Not Found", f"no job {job_id!r}")
    await audit(request, principal, "job.update", f"job:{job_id}",
                {k: v for k, v in (("tags", tags), ("priority", priority)) if v is not None}, org_id=job["org_id"])
    return web.json_response(await request.app[JOBS].job(job_id))


async def cancel(request: web.Request) -> web.Response:
    """POST /v1/jobs/{id}/cancel: a queued or running job stops counting; later results are discarded."""
    job_id = request.match_info["job_id"]
    principal, job = await visible_job(request, job_id)
    if not await request.app[JOBS].cancel(job_id, job["revision"]):
        raise Problem(409, "Conflict", f"job {job_id} is {job['status']}; only queued or running jobs cancel")
    await audit(request, principal, "job.cancel", f"job:{job_id}", org_id=job["org_id"])
    return web.json_response(await request.app[JOBS].job(job_id))


async def retry(request: web.Request) -> web.Response:
    """POST /v1/jobs/{id}/retry: any job that has not completed runs again from its stored audio, as a new
    revision with the same model and options. A queued or running job's current run is given up (its revision
    fails as superseded; results it still produces stay under that revision); a completed job is replayed
    instead (POST /v1/replays)."""
    job_id = request.match_info["job_id"]
    principal, job = await visible_job(request, job_id)
    if job["status"] == "completed":
        raise Problem(409, "Conflict", f"job {job_id} is completed; replay it (POST /v1/replays) for a new revision")
    if not job["audio_stored"]:
        raise Problem(409, "Conflict", "the job has no stored audio to retry from")
    options: dict[str, Any] = {**job["options"], "priority": job["priority"]}  # as it is now (PATCH)
    model = str(options.get("model") or job["model"])
    jobs = request.app[JOBS]
    if job["status"] in ("queued", "running"):
        row = await jobs.rerun(job_id, job["revision"], model, options,
                               f"superseded by a retry (revision {job['revision']} was {job['status']})",
                               next_attempt=False)
        if row is None:
            raise Problem(409, "Conflict", f"job {job_id} finished or moved on while the retry was asked; "
                          "read it again")
        revision, created = int(row["revision"]), True
    else:
        revision, created, row = await jobs.start_revision(job_id, model, options, uuid.uuid4().hex)
    if created:
        await queue_revision(request.app[PUBLISHER], row, revision, options)
    await audit(request, principal, "job.retry", f"job:{job_id}", {"revision": revision}, org_id=job["org_id"])
    return web.json_response({"job_id": job_id, "revision": revision, "created": created}, status=202)


def add_routes(app: web.Application) -> None:
    add_route(app, "POST", "/v1/jobs", create_job, needs("jobs:write"))
    add_route(app, "GET", "/v1/jobs", list_jobs, needs("jobs:read"))
    add_route(app, "GET", "/v1/jobs/{job_id}", get_job, needs("jobs:read"))
    add_route(app, "PATCH", "/v1/jobs/{job_id}", update, needs("jobs:write"))
    add_route(app, "POST", "/v1/jobs/{job_id}/cancel", cancel, needs("jobs:write"))
    add_route(app, "POST", "/v1/jobs/{job_id}/retry", retry, needs("jobs:write"))
