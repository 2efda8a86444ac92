"""Project pipeline events into PostgreSQL.

Every write is an idempotent upsert keyed by ids the events carry (job, revision, segment id), so applying
an event twice leaves the same rows as applying it once. A batch of events is applied in one transaction.
Status never moves backwards: a terminal state (completed, failed) is kept, progress only grows.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg

from repositories import analytics

TRANSIENT_DB_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
)


def _ts(ms: int | datetime) -> datetime:
    if isinstance(ms, datetime):
        return ms
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


class Projection:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def apply(self, events: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """Apply (kind, event) pairs in order, in one transaction.
        kind is 'job', 'transcript', 'turns', 'profile', 'analytics_call' or 'analytics_window'."""
        handlers = {"job": self._job_event, "transcript": self._transcript_event, "turns": self._turns_event,
                    "profile": self._profile_event, "analytics_call": self._analytics_call,
                    "analytics_window": analytics.project_window}
        async with self.pool.acquire() as conn, conn.transaction():
            for kind, event in events:
                await handlers[kind](conn, event)

    # -- speaker.turns and speakers.profiles -----------------------------------------------------------
    async def _turns_event(self, conn: asyncpg.Connection, ev: dict[str, Any]) -> None:
        if ev["kind"] != "FINAL":
            return
        job_id = await self._ensure_job(conn, ev)
        if job_id is None:
            return  # a deleted job
        await conn.execute("DELETE FROM speaker_turns WHERE job_id = $1 AND revision = $2", job_id, ev["revision"])
        await conn.executemany(
            "INSERT INTO speaker_turns (job_id, revision, idx, start_s, end_s, speaker_id) "
            "VALUES ($1, $2, $3, $4, $5, $6)",
            [(job_id, ev["revision"], i, t["start"], t["end"], t["speaker"]) for i, t in enumerate(ev["turns"])],
        )

    async def _profile_event(self, conn: asyncpg.Connection, ev: dict[str, Any]) -> None:
        await conn.execute(
            """
            UPDATE speaker_profiles SET status = $2, embedding = $3, voiced_seconds = $4, backend = $5, error = $6,
                   updated_at = now()
            WHERE profile_id = $1
            """,
            ev["profile_id"], "failed" if ev.get("error") else "ready", ev["embedding"] or None,
            ev["voiced_seconds"], ev["backend"], ev.get("error"),
        )

    # -- analytics.calls (analytics.windows: repositories.analytics.project_window) ---------------------------
    async def _analytics_call(self, conn: asyncpg.Connection, ev: dict[str, Any]) -> None:
        # A call's analytics follow its transcript, which made the job row. No row means the job was erased in
        # between: its analytics are dropped with it, never a job brought back to life.
        if await conn.fetchval("SELECT true FROM jobs WHERE job_id = $1", ev.get("job_id") or ev["stream_id"]):
            await analytics.project_call(conn, ev)

    # -- jobs.events ---------------------------------------------------------------------------------
    async def _ensure_job(self, conn: asyncpg.Connection, ev: dict[str, Any]) -> str | None:
        """Streams produced straight to Kafka have no job until their first result: it is made here. None for a
        job that was deleted (its results still in flight are dropped, not made into a job again)."""
        job_id = str(ev.get("job_id") or ev["stream_id"])
        created, deleted = await conn.fetchrow(
            "WITH made AS (INSERT INTO jobs (job_id, stream_id, status, source, model) "
            "SELECT $1, $2, 'running', $3, $4 WHERE NOT EXISTS (SELECT 1 FROM deleted_jobs WHERE job_id = $1) "
            "ON CONFLICT (job_id) DO NOTHING RETURNING true) "
            "SELECT EXISTS (SELECT 1 FROM made), EXISTS (SELECT 1 FROM deleted_jobs WHERE job_id = $1)",
            job_id, ev["stream_id"], ev.get("source") or "producer", ev.get("model"),
        )
        if deleted:
            return None
        if created:
            await conn.execute(
                "INSERT INTO revisions (job_id, revision, model, request_key, status) VALUES ($1, 1, $2, 'r1', "
                "'running') ON CONFLICT DO NOTHING", job_id, ev.get("model") or "")
        return job_id

    @staticmethod
    async def _revision_status(conn: asyncpg.Connection, job_id: str, revision: int, status: str,
                               error: str | None = None) -> None:
        """queued -> running -> completed | failed; a finished revision keeps its outcome."""
        await conn.execute(
            """
            UPDATE revisions SET status = $3, error = COALESCE(error, $4),
                   completed_at = CASE WHEN $3 IN ('completed', 'failed') THEN COALESCE(completed_at, now())
                                       ELSE completed_at END
            WHERE job_id = $1 AND revision = $2 AND status NOT IN ('completed', 'failed')
              AND NOT (status = 'running' AND $3 = 'queued')
            """,
            job_id, revision, status, error,
        )

    async def _job_event(self, conn: asyncpg.Connection, ev: dict[str, Any]) -> None:
        job_id = await self._ensure_job(conn, ev)
        if job_id is None:
            return  # a deleted job
        at = _ts(ev["at"])
        state = ev["state"].lower()
        await conn.execute(
            """
            INSERT INTO job_stages (job_id, revision, stage, state, progress, message, error, updated_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
            ON CONFLICT (job_id, revision, stage) DO UPDATE SET
              state = CASE WHEN job_stages.state IN ('completed', 'failed') THEN job_stages.state
                           ELSE EXCLUDED.state END,
              progress = GREATEST(job_stages.progress, EXCLUDED.progress),
              message = COALESCE(EXCLUDED.message, job_stages.message),
              error = COALESCE(job_stages.error, EXCLUDED.error),
              updated_at = GREATEST(job_stages.updated_at, EXCLUDED.updated_at)
            """,
            job_id, ev["revision"], ev["stage"], state, ev.get("progress"), ev.get("message"), ev.get("error"), at,
        )
        await self._revision_status(conn, job_id, ev["revision"], "failed" if state == "failed" else "running",
                                    ev.get("error"))
        if state == "failed":
            await conn.execute(
                """
                UPDATE jobs SET status = 'failed', error = COALESCE(error, $3), error_stage = COALESCE(error_stage, $4),
                                updated_at = now(), completed_at = COALESCE(completed_at, $5)
                WHERE job_id = $1 AND revision = $2 AND status NOT IN ('completed', 'failed', 'cancelled')
                """,
                job_id, ev["revision"], ev.get("error"), ev["stage"], at,
            )
        else:
            await conn.execute(
                """
                UPDATE jobs SET status = 'running', started_at = COALESCE(started_at, $3), updated_at = now()
                WHERE job_id = $1 AND revision = $2 AND status = 'queued'
                """,
                job_id, ev["revision"], at,
            )

    # -- transcripts ---------------------------------------------------------------------------------
    async def _ensure_transcript(self, conn: asyncpg.Connection, job_id: str, ev: dict[str, Any]) -> None:
        await conn.execute(
            """
            INSERT INTO transcripts (job_id, revision, stream_id, status, model, pipeline_version)
            VALUES ($1, $2, $3, 'running', $4, $5) ON CONFLICT (job_id, revision) DO NOTHING
            """,
            job_id, ev["revision"], ev["stream_id"], ev["model"], ev["pipeline_version"],
        )

    async def _transcript_event(self, conn: asyncpg.Connection, ev: dict[str, Any]) -> None:
        job_id = await self._ensure_job(conn, ev)
        if job_id is None:
            return  # a deleted job
        await self._ensure_transcript(conn, job_id, ev)
        kind = ev["kind"]
        if kind == "SEGMENT":
            if await conn.fetchval("SELECT status = 'cancelled' FROM jobs WHERE job_id = $1", job_id):
                return  # a cancelled job keeps no results
            seg = ev["segment"]
            if seg is None:
                raise ValueError("SEGMENT event without a segment")
            original = ev.get("original")
            await conn.execute(
                """
                INSERT INTO transcript_segments (job_id, revision, segment_id, idx, start_s, end_s, text, speaker,
                                                 channel, confidence, words, model, pipeline_version, original_text,
                                                 original_words, redactions)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb, $12, $13, $14, $15::jsonb, $16::jsonb)
                ON CONFLICT (job_id, revision, segment_id) DO UPDATE SET
                  idx = EXCLUDED.idx, start_s = EXCLUDED.start_s, end_s = EXCLUDED.end_s, text = EXCLUDED.text,
                  speaker = EXCLUDED.speaker, channel = EXCLUDED.channel, confidence = EXCLUDED.confidence,
                  words = EXCLUDED.words, model = EXCLUDED.model, pipeline_version = EXCLUDED.pipeline_version,
                  original_text = EXCLUDED.original_text, original_words = EXCLUDED.original_words,
                  redactions = EXCLUDED.redactions
                """,
                job_id, ev["revision"], seg["id"], seg["index"], seg["start"], seg["end"], seg["text"],
                seg.get("speaker"), seg.get("channel"), seg.get("confidence"), json.dumps(seg["words"]),
                ev["model"], ev["pipeline_version"], original["text"] if original else None,
                json.dumps(original["words"]) if original else None, json.dumps(ev.get("redactions") or []),
            )
            return
        done = _ts(ev["produced_at"])
        if kind == "COMPLETED":
            stored = await conn.fetchval(
                "SELECT count(*) FROM transcript_segments WHERE job_id = $1 AND revision = $2", job_id, ev["revision"]
            )
            if stored != ev["segment_count"]:
                kind, ev = "FAILED", {**ev, "error": f"materialized {stored} of {ev['segment_count']} segments"}
        await self._revision_status(conn, job_id, ev["revision"], kind.lower(), ev.get("error"))
        if kind == "COMPLETED":
            await conn.executemany(
                """
                INSERT INTO transcript_speakers (job_id, revision, speaker_id, label, name, channel, talk_time,
                                                 identified_as, similarity)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                ON CONFLICT (job_id, revision, speaker_id) DO UPDATE SET
                  label = EXCLUDED.label, channel = EXCLUDED.channel, talk_time = EXCLUDED.talk_time,
                  identified_as = EXCLUDED.identified_as, similarity = EXCLUDED.similarity,
                  name = CASE WHEN transcript_speakers.renamed THEN transcript_speakers.name ELSE EXCLUDED.name END
                """,
                [(job_id, ev["revision"], s["id"], s["label"], s.get("name"), s.get("channel"), s["talk_time"],
                  s.get("identified_as"), s.get("similarity")) for s in ev.get("speakers") or []],
            )
            await conn.execute(
                """
                UPDATE transcripts SET status = 'completed', language = $3, duration = $4, segment_count = $5,
                       completed_at = COALESCE(completed_at, $6), model = $7, pipeline_version = $8,
                       text = (SELECT string_agg(text, ' ' ORDER BY start_s, idx) FROM transcript_segments s
                               WHERE s.job_id = $1 AND s.revision = $2)
                WHERE job_id = $1 AND revision = $2 AND status <> 'failed'
                """,
                job_id, ev["revision"], ev.get("language"), ev.get("duration"), ev["segment_count"], done,
                ev["model"], ev["pipeline_version"],
            )
            await conn.execute(
                """
                UPDATE jobs SET status = 'completed', language = $3, duration = $4, model = $5, updated_at = now(),
                       completed_at = COALESCE(completed_at, $6), started_at = COALESCE(started_at, $6)
                WHERE job_id = $1 AND revision = $2 AND status NOT IN ('failed', 'cancelled')
                """,
                job_id, ev["revision"], ev.get("language"), ev.get("duration"), ev["model"], done,
            )
        else:  # FAILED
            await conn.execute(
                "UPDATE transcripts SET status = 'failed', error = COALESCE(error, $3), duration = $4 "
                "WHERE job_id = $1 AND revision = $2",
                job_id, ev["revision"], ev.get("error"), ev.get("duration"),
            )
            await conn.execute(
                """
                UPDATE jobs SET status = 'failed', error = COALESCE(error, $3),
                       error_stage = COALESCE(error_stage, 'post'),
                       duration = COALESCE(duration, $4), updated_at = now(), completed_at = COALESCE(completed_at, $5)
                WHERE job_id = $1 AND revision = $2 AND status NOT IN ('completed', 'cancelled')
                """,
                job_id, ev["revision"], ev.get("error"), ev.get("duration"), done,
            )
