"""Tenant isolation on every job a request names."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.auth.middleware import caller
from gateway.auth.principal import Principal
from gateway.problems import Problem
from gateway.refs import JOBS


async def visible_job(request: web.Request, job_id: str) -> tuple[Principal, dict[str, Any]]:
    """The caller and the job, if the job is in the caller's organization (what the route needs is checked
    before the handler runs, from its declared access).

    A job of another organization answers 404, exactly like a job that does not exist, so ids leak nothing.
    """
    principal = caller(request)
    job = await request.app[JOBS].job(job_id)
    if job is None or not principal.sees(job["org_id"]):
        raise Problem(404, "Not Found", f"no job {job_id!r}")
    return principal, job
