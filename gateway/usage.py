"""Usage per organization: audio seconds transcribed (by source), jobs by state."""

from __future__ import annotations

from aiohttp import web

from gateway.auth.middleware import require
from gateway.refs import REPO
from gateway.search import parse_time


async def usage(request: web.Request) -> web.Response:
    """GET /v1/usage[?from=&to=&org_id=] (org_id only for the platform admin)."""
    principal = require(request, "usage:read")
    org = request.query.get("org_id") if principal.is_admin else principal.org_id
    since, until = parse_time(request.query.get("from"), "from"), parse_time(request.query.get("to"), "to")
    rows = await request.app[REPO].pool.fetch(
        """
        SELECT j.org_id, j.source, j.status, count(*) AS jobs, COALESCE(sum(j.duration), 0) AS seconds
        FROM jobs j
        WHERE ($1::text IS NULL OR j.org_id = $1) AND ($2::timestamptz IS NULL OR j.created_at >= $2)
          AND ($3::timestamptz IS NULL OR j.created_at < $3)
        GROUP BY j.org_id, j.source, j.status ORDER BY j.org_id, j.source, j.status
        """, org, since, until)
    seconds: dict[str, dict[str, float]] = {}  # org -> source -> completed audio seconds
    jobs: dict[str, dict[str, int]] = {}  # org -> status -> count
    for r in rows:
        by_source = seconds.setdefault(r["org_id"], {})
        if r["status"] == "completed":
            by_source[r["source"]] = round(by_source.get(r["source"], 0.0) + float(r["seconds"]), 3)
        by_status = jobs.setdefault(r["org_id"], {})
        by_status[r["status"]] = by_status.get(r["status"], 0) + int(r["jobs"])
    orgs = [{"org_id": o, "audio_seconds": round(sum(seconds[o].values()), 3), "by_source": seconds[o],
             "jobs": jobs[o]} for o in seconds]
    return web.json_response({"from": request.query.get("from"), "to": request.query.get("to"),
                              "organizations": orgs})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/usage", usage)
