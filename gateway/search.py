"""Full-text search across transcripts in PostgreSQL: ranked, with highlighted snippets, filtered by date,
speaker, job and tag, confined to the caller's organization. Only the latest completed revision of each
job is searched, and what is indexed is the redacted text."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from gateway.auth.middleware import require
from gateway.problems import Problem
from gateway.refs import REPO

MAX_LIMIT = 100


def parse_time(value: Any, name: str) -> datetime | None:
    """An ISO 8601 time with a time zone (query parameter or JSON field); empty is None; else a 400."""
    if value in (None, ""):
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise Problem(400, "Bad Request", f"{name} must be an ISO 8601 time") from None
    if parsed.tzinfo is None:
        raise Problem(400, "Bad Request", f"{name} must carry a time zone (e.g. 2026-11-26T10:00:00Z)")
    return parsed


async def search(request: web.Request) -> web.Response:
    """GET /v1/search?q=...[&from=&to=&speaker=&job_id=&tag=&limit=&offset=]"""
    principal = require(request, "jobs:read")
    q = request.query.get("q", "").strip()
    if not q or len(q) > 500:
        raise Problem(400, "Bad Request", "q must be 1 to 500 characters")
    try:
        limit = min(MAX_LIMIT, max(1, int(request.query.get("limit", "20"))))
        offset = max(0, int(request.query.get("offset", "0")))
    except ValueError:
        raise Problem(400, "Bad Request", "limit and offset must be integers") from None
    since, until = parse_time(request.query.get("from"), "from"), parse_time(request.query.get("to"), "to")
    org = None if principal.is_admin else principal.org_id
    rows = await request.app[REPO].pool.fetch(
        """
        WITH query AS (SELECT websearch_to_tsquery('english', $1) AS q),
        latest AS (SELECT job_id, max(revision) AS revision FROM transcripts WHERE status = 'completed'
                   GROUP BY job_id)
        SELECT s.job_id, s.revision, s.segment_id, s.start_s, s.end_s, s.speaker, j.filename, j.created_at,
               j.tags, ts_rank_cd(s.search, query.q) AS rank,
               ts_headline('english', s.text, query.q,
                           'StartSel=<mark>, StopSel=</mark>, MaxWords=30, MinWords=8, MaxFragments=2') AS snippet,
               COALESCE(sp.name, sp.label, s.speaker) AS speaker_name
        FROM transcript_segments s
        JOIN latest USING (job_id, revision)
        JOIN jobs j ON j.job_id = s.job_id
        LEFT JOIN transcript_speakers sp ON sp.job_id = s.job_id AND sp.revision = s.revision
                                        AND sp.speaker_id = s.speaker
        CROSS JOIN query
        WHERE s.search @@ query.q
          AND ($2::text IS NULL OR j.org_id = $2)
          AND ($3::timestamptz IS NULL OR j.created_at >= $3)
          AND ($4::timestamptz IS NULL OR j.created_at < $4)
          AND ($5::text IS NULL OR s.job_id = $5)
          AND ($6::text IS NULL OR $6 = ANY(j.tags))
          AND ($7::text IS NULL OR lower(COALESCE(sp.name, sp.label, s.speaker, '')) = lower($7)
               OR s.speaker = $7)
        ORDER BY rank DESC, j.created_at DESC, s.start_s
        LIMIT $8 OFFSET $9
        """,
        q, org, since, until, request.query.get("job_id"), request.query.get("tag"),
        request.query.get("speaker"), limit + 1, offset,
    )
    hits: list[dict[str, Any]] = [
        {"job_id": r["job_id"], "revision": r["revision"], "segment_id": r["segment_id"], "start": r["start_s"],
         "end": r["end_s"], "speaker": r["speaker_name"], "filename": r["filename"], "tags": list(r["tags"]),
         "created_at": r["created_at"].isoformat(), "rank": round(float(r["rank"]), 5), "snippet": r["snippet"]}
        for r in rows[:limit]
    ]
    more = len(rows) > limit
    return web.json_response({"query": q, "hits": hits, "next_offset": offset + limit if more else None})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/search", search)
