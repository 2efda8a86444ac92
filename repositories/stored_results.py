"""A revision's stored results, read back for a partial replay (``foundation.revision``): its recognised words
(the transcript segments, with the words as recognised where PII was redacted) and its speaker turns and
speakers, which stand in for the stages a replay does not run.

Read by the ingest stage (synchronous, one request at a time), with psycopg: one short connection per replay.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg

TRANSIENT_STORED_ERRORS: tuple[type[BaseException], ...] = (psycopg.OperationalError,)


class NoStoredResults(LookupError):
    """The revision to reuse has no completed transcript."""


@dataclass
class StoredRevision:
    """What a completed revision left in PostgreSQL."""

    model: str
    pipeline_version: str
    language: str | None
    duration: float | None
    segments: list[dict[str, Any]]  # segment_id, start, end, text, channel, words (as recognised)
    turns: list[dict[str, Any]] = field(default_factory=list)  # start, end, speaker
    speakers: list[dict[str, Any]] = field(default_factory=list)  # as the speaker.turns contract has them


StoredResults = Callable[[str, int], StoredRevision]


def stored_results(database_url: str) -> StoredResults:
    """A reader of a revision's stored results from PostgreSQL (``NoStoredResults`` if it has none)."""

    def load(job_id: str, revision: int) -> StoredRevision:
        with psycopg.connect(database_url, connect_timeout=5) as conn:
            t = conn.execute(
                "SELECT status, model, pipeline_version, language, duration FROM transcripts "
                "WHERE job_id = %s AND revision = %s", (job_id, revision)).fetchone()
            if t is None or t[0] != "completed":
                raise NoStoredResults(f"revision {revision} of job {job_id} has no completed transcript")
            segs = conn.execute(
                "SELECT segment_id, start_s, end_s, COALESCE(original_text, text), channel, "
                "COALESCE(original_words, words) FROM transcript_segments WHERE job_id = %s AND revision = %s "
                "ORDER BY start_s, idx", (job_id, revision)).fetchall()
            turns = conn.execute(
                "SELECT start_s, end_s, speaker_id FROM speaker_turns WHERE job_id = %s AND revision = %s "
                "ORDER BY idx", (job_id, revision)).fetchall()
            speakers = conn.execute(
                "SELECT speaker_id, label, channel, talk_time, identified_as, name, similarity "
                "FROM transcript_speakers WHERE job_id = %s AND revision = %s ORDER BY speaker_id",
                (job_id, revision)).fetchall()
        return StoredRevision(
            model=t[1], pipeline_version=t[2], language=t[3], duration=t[4],
            segments=[{"segment_id": s[0], "start": s[1], "end": s[2], "text": s[3], "channel": s[4],
                       "words": s[5] if isinstance(s[5], list) else json.loads(s[5] or "[]")} for s in segs],
            turns=[{"start": a, "end": b, "speaker": s} for a, b, s in turns],
            speakers=[{"id": r[0], "label": r[1], "channel": r[2], "talk_time": r[3], "identified_as": r[4],
                       "name": r[5], "similarity": r[6]} for r in speakers])

    return load
