"""Usage per organization: audio seconds transcribed (by source), jobs by state."""

from __future__ import annotations

from aiohttp import web

from gateway.auth.middleware import caller
from gateway.auth.permissions import add_route, needs
from gateway.params import parse_time
from gateway.refs import USAGE


async def usage(request: web.Request) -> web.Response:
    """GET /v1/usage[?from=&to=&org_id=] (org_id only for the platform admin)."""
    principal = caller(request)
    org = request.query.get("org_id") if principal.is_admin else principal.org_id
    since, until = parse_time(request.query.get("from"), "from"), parse_time(request.query.get("to"), "to")
    seconds: dict[str, dict[str, float]] = {}  # org -> source -> completed audio seconds
    jobs: dict[str, dict[str, int]] = {}  # org -> status -> count
    for r in await request.app[USAGE].rows(org, since, until):
        by_source = seconds.setdefault(r.org_id, {})
        if r.status == "completed":
            by_source[r.source] = round(by_source.get(r.source, 0.0) + r.seconds, 3)
        by_status = jobs.setdefault(r.org_id, {})
        by_status[r.status] = by_status.get(r.status, 0) + r.jobs
    orgs = [{"org_id": o, "audio_seconds": round(sum(seconds[o].values()), 3), "by_source": seconds[o],
             "jobs": jobs[o]} for o in seconds]
    return web.json_response({"from": request.query.get("from"), "to": request.query.get("to"),
                              "organizations": orgs})


def add_routes(app: web.Application) -> None:
    add_route(app, "GET", "/v1/usage", usage, needs("usage:read"))
