"""Full-text search over transcript segments (PostgreSQL ``tsvector``): only the latest completed revision of
each job is searched, and what is indexed is the redacted text."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

_QUERY = """
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
"""


@dataclass(frozen=True)
class SearchQuery:
    """A web-search style query (``websearch_to_tsquery``) and what narrows it; None: no condition."""

    text: str
    org_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    job_id: str | None = None
    tag: str | None = None
    speaker: str | None = None  # a speaker's name, label or id


class TranscriptSearch:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def hits(self, query: SearchQuery, limit: int, offset: int) -> list[dict[str, Any]]:
        """Matching segments, best first, each with a highlighted snippet."""
        rows = await self._pool.fetch(_QUERY, query.text, query.org_id, query.since, query.until, query.job_id,
                                      query.tag, query.speaker, limit, offset)
        return [{"job_id": r["job_id"], "revision": r["revision"], "segment_id": r["segment_id"],
                 "start": r["start_s"], "end": r["end_s"], "speaker": r["speaker_name"], "filename": r["filename"],
                 "tags": list(r["tags"]), "created_at": r["created_at"].isoformat(),
                 "rank": round(float(r["rank"]), 5), "snippet": r["snippet"]} for r in rows]
