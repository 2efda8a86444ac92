"""Transcript endpoint: ``GET /v1/jobs/{id}/transcript`` in JSON or an export format (text, SRT, VTT, ...) or
the speaker turns as RTTM; redacted unless the caller may read PII and asks for the original."""

from __future__ import annotations

from aiohttp import web

from gateway.access import visible_job
from gateway.auth.audit import audit
from gateway.auth.permissions import add_route, needs
from gateway.problems import Problem
from gateway.refs import JOBS
from processors.post.render import FORMATS, MEDIA_TYPES, render, to_rttm

EXPORTS = (*FORMATS, "rttm")


async def get_transcript(request: web.Request) -> web.Response:
    job_id = request.match_info["job_id"]
    fmt = request.query.get("format", "json")
    if fmt not in EXPORTS:
        raise Problem(400, "Bad Request", f"format must be one of {', '.join(EXPORTS)}")
    revision = request.query.get("revision")
    if revision is not None and not revision.isdigit():
        raise Problem(400, "Bad Request", "revision must be a positive integer")
    jobs = request.app[JOBS]
    principal, job = await visible_job(request, job_id)
    if job["status"] == "failed":
        raise Problem(409, "Job failed", job["error"] or "the job failed", job_id=job_id, job_status="failed")
    original = request.query.get("original") in ("1", "true")
    if original and not principal.can("pii:read"):
        raise Problem(403, "Forbidden", f"role {principal.role} may not read unredacted transcripts")
    transcript = await jobs.transcript(job_id, int(revision) if revision else None, original=original)
    if transcript is None or (transcript["status"] != "completed" and job["status"] != "completed"):
        raise Problem(409, "Not ready", f"job {job_id} is {job['status']}; the transcript is not complete yet",
                      job_id=job_id, job_status=job["status"], progress=job["progress"])
    await audit(request, principal, "transcript.read" if fmt == "json" else "transcript.export",
                f"job:{job_id}", {"format": fmt, "revision": transcript["revision"], "original": original},
                org_id=job["org_id"])
    if fmt == "json":
        return web.json_response(transcript)
    if fmt == "rttm":
        turns = await jobs.turns(job_id, transcript["revision"])
        return web.Response(text=to_rttm(job_id, turns), content_type="text/plain", charset="utf-8")
    return web.Response(text=render(transcript, fmt), content_type=MEDIA_TYPES[fmt], charset="utf-8")


def add_routes(app: web.Application) -> None:
    add_route(app, "GET", "/v1/jobs/{job_id}/transcript", get_transcript,
              needs("jobs:read", also="original=true needs pii:read"))
