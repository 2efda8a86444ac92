"""Full-text search across transcripts in PostgreSQL: ranked, with highlighted snippets, filtered by date,
speaker, job and tag, confined to the caller's organization. Only the latest completed revision of each
job is searched, and what is indexed is the redacted text."""

from __future__ import annotations

from aiohttp import web

from gateway.auth.middleware import caller
from gateway.auth.permissions import add_route, needs
from gateway.params import parse_time
from gateway.problems import Problem
from gateway.refs import SEARCH
from repositories.search import SearchQuery

MAX_LIMIT = 100


async def search(request: web.Request) -> web.Response:
    """GET /v1/search?q=...[&from=&to=&speaker=&job_id=&tag=&limit=&offset=]"""
    principal = caller(request)
    q = request.query.get("q", "").strip()
    if not q or len(q) > 500:
        raise Problem(400, "Bad Request", "q must be 1 to 500 characters")
    try:
        limit = min(MAX_LIMIT, max(1, int(request.query.get("limit", "20"))))
        offset = max(0, int(request.query.get("offset", "0")))
    except ValueError:
        raise Problem(400, "Bad Request", "limit and offset must be integers") from None
    query = SearchQuery(text=q, org_id=None if principal.is_admin else principal.org_id,
                        since=parse_time(request.query.get("from"), "from"),
                        until=parse_time(request.query.get("to"), "to"), job_id=request.query.get("job_id"),
                        tag=request.query.get("tag"), speaker=request.query.get("speaker"))
    hits = await request.app[SEARCH].hits(query, limit + 1, offset)
    more = len(hits) > limit
    return web.json_response({"query": q, "hits": hits[:limit], "next_offset": offset + limit if more else None})


def add_routes(app: web.Application) -> None:
    add_route(app, "GET", "/v1/search", search, needs("jobs:read"))
