"""Erasure endpoints: a job, everything of a user, everything of an organization (GDPR)."""

from __future__ import annotations

from aiohttp import web

from gateway.access import visible_job
from gateway.auth.audit import audit
from gateway.auth.middleware import caller
from gateway.auth.permissions import Access, add_route, needs
from gateway.erasure import erase_jobs, erase_org, erase_user
from gateway.problems import Problem
from gateway.refs import ERASURE, IDENTITY, STORE


async def delete_job(request: web.Request) -> web.Response:
    """DELETE /v1/jobs/{id}: the recording, every revision of its transcript, its speakers, everywhere."""
    job_id = request.match_info["job_id"]
    principal, job = await visible_job(request, job_id)
    if not principal.can("jobs:delete") and job.get("user_id") != principal.user_id:
        raise Problem(403, "Forbidden", "only the job's creator or an org admin may delete it")
    erased = await erase_jobs(request.app[ERASURE], request.app[STORE], [job_id])
    await audit(request, principal, "job.erase", f"job:{job_id}", erased.to_json(), org_id=job["org_id"])
    return web.Response(status=204)


async def erase_user_data(request: web.Request) -> web.Response:
    """POST /v1/users/{id}/erase: a user's recordings, transcripts, voice profiles, files and the account."""
    user_id = request.match_info["user_id"]
    principal = caller(request)
    user = await request.app[IDENTITY].user(user_id)
    if user is None or not principal.sees(user["org_id"]):
        raise Problem(404, "Not Found", "no such user")
    if user_id != principal.user_id and not principal.can("users:manage"):
        raise Problem(403, "Forbidden", f"role {principal.role} may only erase its own account's data")
    if await request.app[IDENTITY].is_last_admin(user["id"]):
        raise Problem(409, "Conflict", "this is the only administrator; create another admin before removing it")
    erased = await erase_user(request.app[ERASURE], request.app[STORE], user_id)
    await audit(request, principal, "user.erase", f"user:{user_id}", erased.to_json(), org_id=user["org_id"])
    return web.json_response({"erased": erased.to_json()})


async def erase_organization(request: web.Request) -> web.Response:
    """POST /v1/organizations/{id}/erase[?delete=true]: all of an organization's data (and the organization)."""
    org_id = request.match_info["org_id"]
    principal = caller(request)
    if not principal.sees(org_id) or await request.app[IDENTITY].org(org_id) is None:
        raise Problem(404, "Not Found", f"no organization {org_id!r}")
    delete = request.query.get("delete") in ("1", "true")
    erased = await erase_org(request.app[ERASURE], request.app[STORE], org_id, delete)
    await audit(request, principal, "org.erase", f"org:{org_id}", {**erased.to_json(), "deleted": delete},
                org_id=None if delete else org_id)
    return web.json_response({"erased": erased.to_json(), "organization_deleted": delete and org_id != "default"})


def add_routes(app: web.Application) -> None:
    add_route(app, "DELETE", "/v1/jobs/{job_id}", delete_job,
              needs("jobs:write", also="the job's creator, or jobs:delete"))
    add_route(app, "POST", "/v1/users/{user_id}/erase", erase_user_data,
              Access(also="the caller's own account, or users:manage"))
    add_route(app, "POST", "/v1/organizations/{org_id}/erase", erase_organization, needs("org:manage"))
