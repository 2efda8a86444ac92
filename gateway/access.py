"""Access checks shared by the gateway's handlers: tenant isolation on every job a request names."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.auth.middleware import IDENTITY, require
from gateway.auth.principal import Principal
from gateway.problems import Problem
from gateway.refs import REPO


async def visible_job(request: web.Request, job_id: str, scope: str) -> tuple[Principal, dict[str, Any]]:
    """The caller and the job, if the caller may ``scope`` and the job is in its organization.

    A job of another organization answers 404, exactly like a job that does not exist, so ids leak nothing.
    """
    principal = require(request, scope)
    job = await request.app[REPO].job(job_id)
    if job is None or not principal.sees(job["org_id"]):
        raise Problem(404, "Not Found", f"no job {job_id!r}")
    return principal, job


async def audit(request: web.Request, principal: Principal, action: str, resource: str,
                details: dict[str, Any] | None = None, org_id: str | None = None) -> None:
    await request.app[IDENTITY].audit(principal, action, resource, details, ip=request.remote,
                                      org_id=org_id or principal.org_id)
