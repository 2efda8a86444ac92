"""Jobs and what a run of one produces: the job row, its revisions, stage progress, transcripts, the speakers
and turns of a transcript (the materializer writes the projections; ``repositories.projection``)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from repositories.db import MissingReference
from repositories.files import NewFile, insert_file
from repositories.rows import changed_one, iso

RERUN_ATTEMPTS = 3  # a rerun aborted by PostgreSQL's deadlock detection is run again, up to this many times in all

# Options that change what a run produces; a replay asking for the same model and these is the same revision.
RESULT_OPTIONS = ("language", "initial_prompt", "hotwords", "beam_size", "diarize", "speakers", "min_speakers",
                  "max_speakers", "speaker_names", "speaker_threshold", "diarization_backend", "channel_mode",
                  "segmentation", "redact", "stages", "source_revision")
STAGE_WEIGHTS = {"ingest": 0.1, "vad": 0.1, "asr": 0.7, "post": 0.1}
STATUSES = ("queued", "running", "completed", "failed", "cancelled")


def request_key(model: str, options: dict[str, str]) -> str:
    relevant = {k: str(options[k]) for k in RESULT_OPTIONS if options.get(k) not in (None, "")}
    return hashlib.sha256(json.dumps([model, relevant], sort_keys=True).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class NewJob:
    """A job to insert, queued, with its first revision."""

    job_id: str
    stream_id: str
    object_key: str
    model: str
    options: dict[str, str]
    filename: str | None = None
    content_type: str | None = None
    size_bytes: int = 0
    language: str | None = None
    source: str = "upload"
    org_id: str = "default"
    user_id: str | None = None
    key_id: str | None = None
    file_id: str | None = None
    tags: list[str] = field(default_factory=list)
    priority: str = "normal"


@dataclass(frozen=True)
class JobFilter:
    """What a job list is narrowed to; None: no condition (``org_id`` None: every organization)."""

    org_id: str | None = None
    status: str | None = None
    source: str | None = None
    tag: str | None = None
    model: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    priority: str | None = None
    file_id: str | None = None


@dataclass(frozen=True)
class InFlightJob:
    """A job queued or running, as the reconciler sees it: its current revision (the request being run, with the
    model and options of that revision), how many runs of that request there were, and how long nothing has been
    heard from it (seconds since its last stage report, or since the revision was made or last recovered)."""

    job_id: str
    stream_id: str
    revision: int
    status: str
    source: str
    object_key: str | None
    filename: str | None
    content_type: str | None
    size_bytes: int
    model: str
    options: dict[str, str]
    attempt: int
    idle_s: float
    started_epoch: float  # when the revision was made (or last recovered), seconds since the epoch
    recovered: bool  # the reconciler already acted on this revision (a live session it closed)


def job_json(row: asyncpg.Record | dict[str, Any], stages: list[asyncpg.Record]) -> dict[str, Any]:
    """A job as the API shows it, with its stages' progress and the weighted overall progress."""
    stage_map = {
        s["stage"].removeprefix("streamscribe-"): {
            "state": s["state"], "progress": s["progress"], "message": s["message"], "error": s["error"],
            "updated_at": iso(s["updated_at"]),
        }
        for s in stages
    }
    if row["status"] == "completed":
        progress = 1.0
    else:
        progress = sum(
            w * (1.0 if stage_map.get(name, {}).get("state") == "completed"
                 else float(stage_map.get(name, {}).get("progress") or 0.0))
            for name, w in STAGE_WEIGHTS.items()
        )
    return {
        "job_id": row["job_id"], "stream_id": row["stream_id"], "status": row["status"], "org_id": row["org_id"],
        "user_id": row["user_id"], "tags": list(row["tags"]), "priority": row["priority"],
        "file_id": row["file_id"], "source": row["source"], "filename": row["filename"],
        "size_bytes": row["size_bytes"],
        "model": row["model"], "language": row["language"], "options": json.loads(row["options"]),
        "audio_stored": bool(row["object_key"]),
        "duration": row["duration"], "revision": row["revision"], "progress": round(min(progress, 1.0), 3),
        "stages": stage_map, "error": row["error"], "error_stage": row["error_stage"],
        "created_at": iso(row["created_at"]), "started_at": iso(row["started_at"]),
        "completed_at": iso(row["completed_at"]),
    }


def _shown(speaker: str | None, display: dict[str, str]) -> str | None:
    return display.get(speaker, speaker) if speaker else None


def segment_json(row: asyncpg.Record, text: str, words: list[dict[str, Any]],
                 display: dict[str, str]) -> dict[str, Any]:
    """A stored transcript segment as the API shows it: speakers by their display names; each word with its
    speaker and the others heard with it (``overlap``), the segment with all others heard during it."""
    shown = [{"start": w["start"], "end": w["end"], "word": w["word"], "probability": w["probability"],
              "speaker": _shown(w.get("speaker") or row["speaker"], display),
              "overlap": [display.get(o, o) for o in w.get("overlap") or []]} for w in words]
    overlap = sorted({o for w in shown for o in w["overlap"]})
    return {"id": row["segment_id"], "start": row["start_s"], "end": row["end_s"], "text": text,
            "speaker": _shown(row["speaker"], display), "speaker_id": row["speaker"], "overlap": overlap,
            "channel": row["channel"], "confidence": row["confidence"], "words": shown}


class JobStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create(self, job: NewJob, new_file: NewFile | None = None) -> None:
        """Insert a job and its first revision. ``new_file`` records the upload as a file in the same
        transaction; otherwise ``job.file_id`` names an existing file, which must still exist
        (``MissingReference`` if it was deleted meanwhile)."""
        file_id = job.file_id
        async with self._pool.acquire() as conn, conn.transaction():
            if new_file is not None:
                await insert_file(conn, new_file)
                file_id = new_file.file_id
            elif file_id is not None and await conn.fetchval(
                    "SELECT true FROM files WHERE file_id = $1 FOR SHARE", file_id) is None:
                raise MissingReference(file_id)
            await conn.execute(
                """
                INSERT INTO jobs (job_id, stream_id, status, source, filename, content_type, size_bytes, object_key,
                                  model, language, options, org_id, user_id, key_id, file_id, tags, priority)
                VALUES ($1, $2, 'queued', $10, $3, $4, $5, $6, $7, $8, $9::jsonb, $11, $12, $13, $14, $15, $16)
                """,
                job.job_id, job.stream_id, job.filename, job.content_type, job.size_bytes, job.object_key, job.model,
                job.language, json.dumps(job.options), job.source, job.org_id, job.user_id, job.key_id, file_id,
                list(job.tags), job.priority,
            )
            await conn.execute(
                "INSERT INTO revisions (job_id, revision, model, options, request_key) "
                "VALUES ($1, 1, $2, $3::jsonb, $4)",
                job.job_id, job.model, json.dumps(job.options), request_key(job.model, job.options),
            )

    async def update(self, job_id: str, tags: list[str] | None, priority: str | None) -> bool:
        """Set a job's tags and/or priority (None leaves one as it is); False if the job is gone."""
        status = await self._pool.execute(
            "UPDATE jobs SET tags = COALESCE($2::text[], tags), priority = COALESCE($3, priority), "
            "updated_at = now() WHERE job_id = $1", job_id, tags, priority)
        return changed_one(status)

    async def cancel(self, job_id: str, revision: int) -> bool:
        """Cancel a queued or running job and fail its running revision; False if the job is in another state."""
        async with self._pool.acquire() as conn, conn.transaction():
            done = await conn.fetchval(
                "UPDATE jobs SET status = 'cancelled', error = 'cancelled by request', updated_at = now(), "
                "completed_at = now() WHERE job_id = $1 AND status IN ('queued', 'running') RETURNING true", job_id)
            if not done:
                return False
            await conn.execute("UPDATE revisions SET status = 'failed', error = 'cancelled', completed_at = now() "
                               "WHERE job_id = $1 AND revision = $2 AND status IN ('queued', 'running')",
                               job_id, revision)
            return True

    async def page(self, where: JobFilter, after: tuple[datetime, str] | None,
                   limit: int) -> list[dict[str, Any]]:
        """Jobs newest first, after a (created_at, job_id) cursor, as the API shows them (without stages)."""
        rows = await self._pool.fetch(
            """
            SELECT * FROM jobs
            WHERE ($1::text IS NULL OR org_id = $1) AND ($2::text IS NULL OR status = $2)
              AND ($3::text IS NULL OR source = $3) AND ($4::text IS NULL OR $4 = ANY(tags))
              AND ($5::text IS NULL OR model = $5) AND ($6::timestamptz IS NULL OR created_at >= $6)
              AND ($7::timestamptz IS NULL OR created_at < $7)
              AND ($8::timestamptz IS NULL OR (created_at, job_id) < ($8, $9))
              AND ($11::text IS NULL OR priority = $11) AND ($12::text IS NULL OR file_id = $12)
            ORDER BY created_at DESC, job_id DESC LIMIT $10
            """,
            where.org_id, where.status, where.source, where.tag, where.model, where.since, where.until,
            after[0] if after else None, after[1] if after else None, limit, where.priority, where.file_id)
        return [job_json(r, []) for r in rows]

    async def count_by_status(self) -> dict[str, int]:
        rows = await self._pool.fetch("SELECT status, count(*) AS n FROM jobs GROUP BY status")
        return {r["status"]: int(r["n"]) for r in rows}

    # -- revisions and replays ---------------------------------------------------------------------
    async def revisions(self, job_id: str) -> list[dict[str, Any]]:
        rows = await self._pool.fetch("SELECT * FROM revisions WHERE job_id = $1 ORDER BY revision", job_id)
        return [{"revision": r["revision"], "status": r["status"], "model": r["model"],
                 "options": json.loads(r["options"]), "replay_id": r["replay_id"], "attempt": r["attempt"],
                 "error": r["error"],
                 "created_at": iso(r["created_at"]), "completed_at": iso(r["completed_at"])} for r in rows]

    async def jobs_created_between(self, since: datetime | None, until: datetime | None,
                                   org_id: str | None) -> list[str]:
        rows = await self._pool.fetch(
            "SELECT job_id FROM jobs WHERE ($1::timestamptz IS NULL OR created_at >= $1) "
            "AND ($2::timestamptz IS NULL OR created_at < $2) AND ($3::text IS NULL OR org_id = $3) "
            "ORDER BY created_at", since, until, org_id)
        return [r["job_id"] for r in rows]

    async def start_revision(self, job_id: str, model: str, options: dict[str, str],
                             replay_id: str) -> tuple[int, bool, dict[str, Any]]:
        """The revision a replay with these settings is (an existing one when it was asked for before: replays
        are idempotent), creating it if needed. Returns (revision, created, job row)."""
        key = request_key(model, options)
        async with self._pool.acquire() as conn, conn.transaction():
            job = await conn.fetchrow("SELECT * FROM jobs WHERE job_id = $1 FOR UPDATE", job_id)
            if job is None:
                raise MissingReference(job_id)
            existing = await conn.fetchval(
                "SELECT revision FROM revisions WHERE job_id = $1 AND request_key = $2 AND status <> 'failed'",
                job_id, key)
            if existing is not None:
                return int(existing), False, dict(job)
            revision = int(await conn.fetchval(
                "SELECT COALESCE(max(revision), 0) + 1 FROM revisions WHERE job_id = $1", job_id))
            await conn.execute(
                "INSERT INTO revisions (job_id, revision, model, options, request_key, replay_id) "
                "VALUES ($1, $2, $3, $4::jsonb, $5, $6)", job_id, revision, model, json.dumps(options), key, replay_id)
            await conn.execute(
                "UPDATE jobs SET revision = $2, status = 'queued', error = NULL, error_stage = NULL, "
                "completed_at = NULL, model = $3, updated_at = now() WHERE job_id = $1", job_id, revision, model)
            return revision, True, dict(job)

    async def completed_revision(self, job_id: str, revision: int) -> dict[str, Any] | None:
        """A revision whose transcript is completed: its number, options and the model of its transcript (what a
        replay reusing its results takes over); None if there is no such revision."""
        row = await self._pool.fetchrow(
            "SELECT r.revision, r.options, t.model FROM revisions r JOIN transcripts t "
            "ON t.job_id = r.job_id AND t.revision = r.revision "
            "WHERE r.job_id = $1 AND r.revision = $2 AND t.status = 'completed'", job_id, revision)
        if row is None:
            return None
        return {"revision": row["revision"], "options": json.loads(row["options"]), "model": row["model"]}

    async def latest_completed_revision(self, job_id: str) -> int | None:
        value = await self._pool.fetchval(
            "SELECT max(revision) FROM transcripts WHERE job_id = $1 AND status = 'completed'", job_id)
        return int(value) if value is not None else None

    # -- recovery (streamscribe.recovery, and retries of jobs in flight) -------------------------------
    async def in_flight(self, limit: int = 5000) -> list[InFlightJob]:
        """Jobs queued or running, oldest first, with how long nothing has been heard from their revision."""
        rows = await self._pool.fetch(
            """
            SELECT j.job_id, j.stream_id, j.revision, j.status, j.source, j.object_key, j.filename, j.content_type,
                   COALESCE(j.size_bytes, 0) AS size_bytes, COALESCE(r.model, j.model, '') AS model,
                   COALESCE(r.options, j.options) AS options, COALESCE(r.attempt, 1) AS attempt,
                   r.recovered_at IS NOT NULL AS recovered,
                   EXTRACT(EPOCH FROM GREATEST(j.created_at, r.created_at, r.recovered_at)) AS started_epoch,
                   EXTRACT(EPOCH FROM now() - GREATEST(j.created_at, r.created_at, r.recovered_at, s.last)) AS idle_s
            FROM jobs j
            LEFT JOIN revisions r ON r.job_id = j.job_id AND r.revision = j.revision
            LEFT JOIN LATERAL (SELECT max(updated_at) AS last FROM job_stages st
                               WHERE st.job_id = j.job_id AND st.revision = j.revision) s ON true
            WHERE j.status IN ('queued', 'running')
            ORDER BY j.created_at LIMIT $1
            """, limit)
        return [InFlightJob(
            job_id=r["job_id"], stream_id=r["stream_id"], revision=r["revision"], status=r["status"],
            source=r["source"], object_key=r["object_key"] or None, filename=r["filename"],
            content_type=r["content_type"], size_bytes=int(r["size_bytes"]), model=r["model"],
            options={k: str(v) for k, v in json.loads(r["options"]).items()}, attempt=int(r["attempt"]),
            idle_s=float(r["idle_s"]), started_epoch=float(r["started_epoch"]), recovered=bool(r["recovered"]))
            for r in rows]

    async def rerun(self, job_id: str, revision: int, model: str, options: dict[str, str], reason: str, *,
                    next_attempt: bool) -> dict[str, Any] | None:
        """Run a job that is still in flight at ``revision`` again, as a new revision with ``model`` and
        ``options``: the old revision fails with ``reason`` (its late results stay apart, under its own number),
        the job is queued at the new one. ``next_attempt`` counts the new run as another attempt of the same
        request (the reconciler); otherwise it starts the count again (a retry someone asked for). Returns the job
        row with the new ``revision`` and ``attempt``, or None when the job has finished or moved on meanwhile.

        The materializer may be writing the same job's progress meanwhile, locking its revision before its job row
        (repositories.projection); when PostgreSQL breaks such a deadlock by aborting this transaction, it is run
        again (a chaos run saw a retry answer 500 on it)."""
        for _ in range(RERUN_ATTEMPTS - 1):
            try:
                return await self._rerun_once(job_id, revision, model, options, reason, next_attempt=next_attempt)
            except (asyncpg.exceptions.DeadlockDetectedError, asyncpg.exceptions.SerializationError):
                continue
        return await self._rerun_once(job_id, revision, model, options, reason, next_attempt=next_attempt)

    async def _rerun_once(self, job_id: str, revision: int, model: str, options: dict[str, str], reason: str, *,
                          next_attempt: bool) -> dict[str, Any] | None:
        async with self._pool.acquire() as conn, conn.transaction():
            # NO KEY UPDATE: the job's key does not change, so the materializer's inserts of rows that reference it
            # (job_stages, segments) are not blocked behind this transaction
            job = await conn.fetchrow("SELECT * FROM jobs WHERE job_id = $1 AND revision = $2 "
                                      "AND status IN ('queued', 'running') FOR NO KEY UPDATE", job_id, revision)
            if job is None:
                return None
            attempt = int(await conn.fetchval(
                "SELECT COALESCE(max(attempt), 1) FROM revisions WHERE job_id = $1 AND revision = $2",
                job_id, revision)) + 1 if next_attempt else 1
            new = int(await conn.fetchval(
                "SELECT COALESCE(max(revision), 0) + 1 FROM revisions WHERE job_id = $1", job_id))
            await conn.execute(
                "UPDATE revisions SET status = 'failed', error = COALESCE(error, $3), "
                "completed_at = COALESCE(completed_at, now()) WHERE job_id = $1 AND revision = $2 "
                "AND status NOT IN ('completed', 'failed')", job_id, revision, reason)
            await conn.execute(
                "INSERT INTO revisions (job_id, revision, model, options, request_key, attempt) "
                "VALUES ($1, $2, $3, $4::jsonb, $5, $6)",
                job_id, new, model, json.dumps(options), request_key(model, options), attempt)
            await conn.execute(
                "UPDATE jobs SET revision = $2, status = 'queued', error = NULL, error_stage = NULL, "
                "completed_at = NULL, model = $3, updated_at = now() WHERE job_id = $1", job_id, new, model)
            return {**dict(job), "revision": new, "attempt": attempt}

    async def fail_in_flight(self, job_id: str, revision: int, reason: str, stage: str) -> bool:
        """Fail a job still in flight at ``revision`` (and that revision) with ``reason``; False when it has
        finished or moved on meanwhile."""
        async with self._pool.acquire() as conn, conn.transaction():
            done = await conn.fetchval(
                "UPDATE jobs SET status = 'failed', error = $3, error_stage = $4, updated_at = now(), "
                "completed_at = now() WHERE job_id = $1 AND revision = $2 AND status IN ('queued', 'running') "
                "RETURNING true", job_id, revision, reason, stage)
            if not done:
                return False
            await conn.execute(
                "UPDATE revisions SET status = 'failed', error = COALESCE(error, $3), "
                "completed_at = COALESCE(completed_at, now()) WHERE job_id = $1 AND revision = $2 "
                "AND status NOT IN ('completed', 'failed')", job_id, revision, reason)
            return True

    async def mark_recovered(self, job_id: str, revision: int, *, audio_gone: bool) -> bool:
        """Record that the reconciler acted on a revision in place (a cut live session it closed): one more
        attempt, and the revision's time starts again. ``audio_gone``: the job has no stored recording after all
        (a live session's archive is written when it ends), so it no longer offers one to retry or replay from.
        False when the job has finished or moved on meanwhile."""
        async with self._pool.acquire() as conn, conn.transaction():
            done = await conn.fetchval(
                "UPDATE jobs SET object_key = CASE WHEN $3 THEN NULL ELSE object_key END, updated_at = now() "
                "WHERE job_id = $1 AND revision = $2 AND status IN ('queued', 'running') RETURNING true",
                job_id, revision, audio_gone)
            if not done:
                return False
            await conn.execute("UPDATE revisions SET attempt = attempt + 1, recovered_at = now() "
                               "WHERE job_id = $1 AND revision = $2", job_id, revision)
            return True

    async def fail_job(self, job_id: str, error: str, stage: str) -> None:
        await self._pool.execute(
            "UPDATE jobs SET status = 'failed', error = $2, error_stage = $3, updated_at = now(), "
            "completed_at = now() WHERE job_id = $1 AND status NOT IN ('completed', 'failed')",
            job_id, error, stage,
        )

    async def job(self, job_id: str) -> dict[str, Any] | None:
        row = await self._pool.fetchrow("SELECT * FROM jobs WHERE job_id = $1", job_id)
        if row is None:
            return None
        stages = await self._pool.fetch(
            "SELECT stage, state, progress, message, error, updated_at FROM job_stages "
            "WHERE job_id = $1 AND revision = $2 ORDER BY updated_at",
            job_id, row["revision"],
        )
        return job_json(row, stages)

    async def transcript(self, job_id: str, revision: int | None = None,
                         original: bool = False) -> dict[str, Any] | None:
        """A revision's transcript; PII stays redacted unless ``original`` (callers check pii:read first)."""
        job = await self._pool.fetchrow("SELECT job_id, stream_id, status, revision FROM jobs WHERE job_id = $1",
                                        job_id)
        if job is None:
            return None
        rev = revision or await self.latest_completed_revision(job_id) or job["revision"]
        t = await self._pool.fetchrow("SELECT * FROM transcripts WHERE job_id = $1 AND revision = $2", job_id, rev)
        if t is None:
            return None
        segs = await self._pool.fetch(
            "SELECT segment_id, start_s, end_s, text, speaker, channel, confidence, words, original_text, "
            "original_words, redactions FROM transcript_segments WHERE job_id = $1 AND revision = $2 "
            "ORDER BY start_s, idx",
            job_id, rev,
        )
        speakers = await self.speakers(job_id, rev)
        display = {s["id"]: s["name"] or s["label"] for s in speakers}

        def pick(s: asyncpg.Record) -> tuple[str, str]:
            if original and s["original_text"] is not None:
                return s["original_text"], s["original_words"]
            return s["text"], s["words"]

        segments = []
        redactions = 0
        for s in segs:
            text, words = pick(s)
            redactions += len(json.loads(s["redactions"]))
            segments.append(segment_json(s, text, json.loads(words), display))
        return {
            "job_id": job_id, "stream_id": t["stream_id"], "status": t["status"], "revision": rev,
            "duration": t["duration"], "language": t["language"], "model": t["model"],
            "pipeline_version": t["pipeline_version"],
            "text": " ".join(s["text"] for s in segments) if original or t["text"] is None else t["text"],
            "error": t["error"], "redacted": bool(redactions) and not original, "redactions": redactions,
            "speakers": speakers, "segments": segments,
        }

    async def speakers(self, job_id: str, revision: int) -> list[dict[str, Any]]:
        rows = await self._pool.fetch(
            "SELECT speaker_id, label, name, channel, talk_time, identified_as, similarity FROM transcript_speakers "
            "WHERE job_id = $1 AND revision = $2 ORDER BY talk_time DESC, speaker_id",
            job_id, revision,
        )
        return [{"id": r["speaker_id"], "label": r["label"], "name": r["name"], "channel": r["channel"],
                 "talk_time": r["talk_time"], "identified_as": r["identified_as"], "similarity": r["similarity"]}
                for r in rows]

    async def rename_speaker(self, job_id: str, revision: int, speaker_id: str, name: str | None) -> bool:
        status = await self._pool.execute(
            "UPDATE transcript_speakers SET name = $4, renamed = true WHERE job_id = $1 AND revision = $2 "
            "AND speaker_id = $3",
            job_id, revision, speaker_id, name,
        )
        return changed_one(status)

    async def turns(self, job_id: str, revision: int) -> list[dict[str, Any]]:
        rows = await self._pool.fetch(
            "SELECT start_s, end_s, speaker_id FROM speaker_turns WHERE job_id = $1 AND revision = $2 ORDER BY idx",
            job_id, revision,
        )
        return [{"start": r["start_s"], "end": r["end_s"], "speaker": r["speaker_id"]} for r in rows]
