"""Operations on jobs beyond submitting them: a filtered, cursor-paginated list; cancel; retry."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime
from typing import Any

from aiohttp import web

from gateway.access import audit, visible_job
from gateway.auth.middleware import require
from gateway.problems import Problem
from gateway.refs import PUBLISHER, REPO
from gateway.search import _time
from streams.runtime import now_ms
from streams.topics import INGEST_REQUESTS

STATUSES = ("queued", "running", "completed", "failed", "cancelled")


def _cursor(created_at: datetime, job_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([created_at.isoformat(), job_id]).encode()).decode()


def _decode_cursor(value: str) -> tuple[datetime, str]:
    try:
        at, job_id = json.loads(base64.urlsafe_b64decode(value.encode()))
        return datetime.fromisoformat(at), str(job_id)
    except (ValueError, TypeError):
        raise Problem(400, "Bad Request", "cursor is not one this API returned") from None


async def list_jobs(request: web.Request) -> web.Response:
    """GET /v1/jobs[?status=&source=&tag=&model=&from=&to=&limit=&cursor=] newest first; ``next_cursor``
    continues the list where it stopped, stable while new jobs arrive."""
    principal = require(request, "jobs:read")
    q = request.query
    try:
        limit = min(200, max(1, int(q.get("limit", "50"))))
    except ValueError:
        raise Problem(400, "Bad Request", "limit must be an integer") from None
    if q.get("status") and q["status"] not in STATUSES:
        raise Problem(400, "Bad Request", f"status must be one of {', '.join(STATUSES)}")
    after = _decode_cursor(q["cursor"]) if q.get("cursor") else None
    org = q.get("org_id") if principal.is_admin else principal.org_id
    rows = await request.app[REPO].pool.fetch(
        """
        SELECT * FROM jobs
        WHERE ($1::text IS NULL OR org_id = $1) AND ($2::text IS NULL OR status = $2)
          AND ($3::text IS NULL OR source = $3) AND ($4::text IS NULL OR $4 = ANY(tags))
          AND ($5::text IS NULL OR model = $5) AND ($6::timestamptz IS NULL OR created_at >= $6)
          AND ($7::timestamptz IS NULL OR created_at < $7)
          AND ($8::timestamptz IS NULL OR (created_at, job_id) < ($8, $9))
        ORDER BY created_at DESC, job_id DESC LIMIT $10
        """,
        org, q.get("status"), q.get("source"), q.get("tag"), q.get("model"), _time(q.get("from"), "from"),
        _time(q.get("to"), "to"), after[0] if after else None, after[1] if after else None, limit + 1)
    repo = request.app[REPO]
    jobs = [repo._job_json(r, []) for r in rows[:limit]]
    more = len(rows) > limit
    return web.json_response({"jobs": jobs,
                              "next_cursor": _cursor(rows[limit - 1]["created_at"], rows[limit - 1]["job_id"])
                              if more else None})


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
    options: dict[str, Any] = {k: v for k, v in job["options"].items()}
    model = str(options.get("model") or job["model"])
    revision, created, row = await request.app[REPO].start_revision(job_id, model, options, uuid.uuid4().hex)
    if created:
        await request.app[PUBLISHER].publish(INGEST_REQUESTS, row["stream_id"], {
            "stream_id": row["stream_id"], "job_id": job_id, "revision": revision, "object_key": row["object_key"],
            "filename": row["filename"], "content_type": row["content_type"], "size_bytes": row["size_bytes"] or 0,
            "options": options, "submitted_at": now_ms()})
    await audit(request, principal, "job.retry", f"job:{job_id}", {"revision": revision}, org_id=job["org_id"])
    return web.json_response({"job_id": job_id, "revision": revision, "created": created}, status=202)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/jobs/{job_id}/cancel", cancel)
    app.router.add_post("/v1/jobs/{job_id}/retry", retry)
