"""Operations on jobs beyond submitting them: a filtered, cursor-paginated list; tags and priority; cancel;
retry."""

from __future__ import annotations

import base64
import json
import re
import uuid
from datetime import datetime
from typing import Any

from aiohttp import web

from foundation.events import IngestRequest
from gateway.access import audit, visible_job
from gateway.auth.middleware import require
from gateway.problems import Problem, json_object
from gateway.refs import PUBLISHER, REPO
from gateway.search import parse_time
from streams.kafka.lanes import PRIORITIES
from streams.kafka.topics import INGEST_REQUESTS

STATUSES = ("queued", "running", "completed", "failed", "cancelled")
MAX_TAGS = 20
TAG = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


def parse_tags(value: str | list[Any]) -> list[str]:
    """Tags from a comma-separated string (blank items ignored) or a JSON list of strings: each 1-64
    characters of ``A-Z a-z 0-9 _ . : -``, at most 20, duplicates dropped (order kept). A 400 problem otherwise."""
    if isinstance(value, str):
        items: list[Any] = [t.strip() for t in value.split(",") if t.strip()]
    elif isinstance(value, list):
        items = value
    else:
        raise Problem(400, "Bad Request", "tags must be a list of strings (or a comma-separated string)")
    tags = list(dict.fromkeys(items)) if all(isinstance(t, str) for t in items) else None
    if tags is None or not all(TAG.fullmatch(t) for t in tags):
        raise Problem(400, "Bad Request", "each tag must be 1 to 64 characters of letters, digits, _ . : -")
    if len(tags) > MAX_TAGS:
        raise Problem(400, "Bad Request", f"at most {MAX_TAGS} tags per job")
    return tags


def parse_priority(value: Any) -> str:
    """``low``, ``normal`` or ``high``; a 400 problem otherwise."""
    if value not in PRIORITIES:
        raise Problem(400, "Bad Request", f"priority must be one of {', '.join(PRIORITIES)}")
    return str(value)


def _cursor(created_at: datetime, job_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([created_at.isoformat(), job_id]).encode()).decode()


def _decode_cursor(value: str) -> tuple[datetime, str]:
    try:
        at, job_id = json.loads(base64.urlsafe_b64decode(value.encode()))
        return datetime.fromisoformat(at), text_param(str(job_id), "cursor") or ""
    except (ValueError, TypeError):
        raise Problem(400, "Bad Request", "cursor is not one this API returned") from None


def text_param(value: str | None, name: str) -> str | None:
    """A text filter as PostgreSQL can compare it: None when empty; 400 when it holds a NUL character or is
    not valid Unicode (neither can be in a text column)."""
    if not value:
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise Problem(400, "Bad Request", f"{name} is not valid UTF-8") from None
    if "\x00" in value:
        raise Problem(400, "Bad Request", f"{name} must not contain NUL characters")
    return value


async def list_jobs(request: web.Request) -> web.Response:
    """GET /v1/jobs[?status=&source=&tag=&priority=&file_id=&model=&from=&to=&limit=&cursor=] newest first;
    ``next_cursor`` continues the list where it stopped, stable while new jobs arrive."""
    principal = require(request, "jobs:read")
    q = request.query
    try:
        limit = min(200, max(1, int(q.get("limit", "50"))))
    except ValueError:
        raise Problem(400, "Bad Request", "limit must be an integer") from None
    if q.get("status") and q["status"] not in STATUSES:
        raise Problem(400, "Bad Request", f"status must be one of {', '.join(STATUSES)}")
    if q.get("priority"):
        parse_priority(q["priority"])
    after = _decode_cursor(q["cursor"]) if q.get("cursor") else None
    org = text_param(q.get("org_id"), "org_id") if principal.is_admin else principal.org_id
    rows = await request.app[REPO].pool.fetch(
        """
        SELECT * FROM jobs
        WHERE ($1::text IS NULL OR org_id = $1) AND ($2::text IS NULL OR status = $2)
          AND ($3::text IS NULL OR source = $3) AND ($4::text IS NULL OR $4 = ANY(tags))
          AND ($5::text IS NULL OR model = $5) AND ($6::timestamptz IS NULL OR created_at >= $6)
          AND ($7::timestamptz IS NULL OR created_at < $7)
          AND ($8::timestamptz IS NULL OR (created_at, job_id) < ($8, $9))
          AND ($11::text IS NULL OR priority = $11) AND ($12::text IS NULL OR file_id = $12)
        ORDER BY created_at DESC, job_id DESC LIMIT $10
        """,
        org, q.get("status") or None, text_param(q.get("source"), "source"), text_param(q.get("tag"), "tag"),
        text_param(q.get("model"), "model"), parse_time(q.get("from"), "from"), parse_time(q.get("to"), "to"),
        after[0] if after else None, after[1] if after else None, limit + 1, q.get("priority") or None,
        text_param(q.get("file_id"), "file_id"))
    repo = request.app[REPO]
    jobs = [repo._job_json(r, []) for r in rows[:limit]]
    more = len(rows) > limit
    return web.json_response({"jobs": jobs,
                              "next_cursor": _cursor(rows[limit - 1]["created_at"], rows[limit - 1]["job_id"])
                              if more else None})


async def update(request: web.Request) -> web.Response:
    """PATCH /v1/jobs/{id} with ``{"tags": [...], "priority": "low|normal|high"}`` (either or both): the
    job's labels. A new priority applies to the job's next run (retry); audio already queued keeps its lane."""
    job_id = request.match_info["job_id"]
    principal, job = await visible_job(request, job_id, "jobs:write")
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
    if not await request.app[REPO].update_job(job_id, tags, priority):
        raise Problem(404, "Not Found", f"no job {job_id!r}")
    await audit(request, principal, "job.update", f"job:{job_id}",
                {k: v for k, v in (("tags", tags), ("priority", priority)) if v is not None}, org_id=job["org_id"])
    return web.json_response(await request.app[REPO].job(job_id))


async def cancel(request: web.Request) -> web.Response:
    """POST /v1/jobs/{id}/cancel: a queued or running job stops counting; later results are discarded."""
    job_id = request.match_info["job_id"]
    principal, job = await visible_job(request, job_id, "jobs:write")
    pool = request.app[REPO].pool
    async with pool.acquire() as conn, conn.transaction():
        done = await conn.fetchval(
            "UPDATE jobs SET status = 'cancelled', error = 'cancelled by request', updated_at = now(), "
            "completed_at = now() WHERE job_id = $1 AND status IN ('queued', 'running') RETURNING true", job_id)
        if not done:
            raise Problem(409, "Conflict", f"job {job_id} is {job['status']}; only queued or running jobs cancel")
        await conn.execute("UPDATE revisions SET status = 'failed', error = 'cancelled', completed_at = now() "
                           "WHERE job_id = $1 AND revision = $2 AND status IN ('queued', 'running')",
                           job_id, job["revision"])
    await audit(request, principal, "job.cancel", f"job:{job_id}", org_id=job["org_id"])
    return web.json_response(await request.app[REPO].job(job_id))


async def retry(request: web.Request) -> web.Response:
    """POST /v1/jobs/{id}/retry: a failed or cancelled job runs again from its stored audio, as a new
    revision with the same model and options."""
    job_id = request.match_info["job_id"]
    principal, job = await visible_job(request, job_id, "jobs:write")
    if job["status"] not in ("failed", "cancelled"):
        raise Problem(409, "Conflict", f"job {job_id} is {job['status']}; only failed or cancelled jobs retry")
    if not job["audio_stored"]:
        raise Problem(409, "Conflict", "the job has no stored audio to retry from")
    options: dict[str, Any] = {**job["options"], "priority": job["priority"]}  # as it is now (PATCH)
    model = str(options.get("model") or job["model"])
    revision, created, row = await request.app[REPO].start_revision(job_id, model, options, uuid.uuid4().hex)
    if created:
        await request.app[PUBLISHER].publish(INGEST_REQUESTS, IngestRequest(
            stream_id=row["stream_id"], job_id=job_id, revision=revision, object_key=row["object_key"],
            filename=row["filename"], content_type=row["content_type"], size_bytes=row["size_bytes"] or 0,
            options=options))
    await audit(request, principal, "job.retry", f"job:{job_id}", {"revision": revision}, org_id=job["org_id"])
    return web.json_response({"job_id": job_id, "revision": revision, "created": created}, status=202)


def add_routes(app: web.Application) -> None:
    app.router.add_patch("/v1/jobs/{job_id}", update)
    app.router.add_post("/v1/jobs/{job_id}/cancel", cancel)
    app.router.add_post("/v1/jobs/{job_id}/retry", retry)
