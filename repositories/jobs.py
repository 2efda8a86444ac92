"""What the gateway reads from and writes to PostgreSQL (the materializer owns the projections)."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

import asyncpg

# Options that change what a run produces; a replay asking for the same model and these is the same revision.
RESULT_OPTIONS = ("language", "initial_prompt", "hotwords", "beam_size", "diarize", "min_speakers", "max_speakers",
                  "speaker_names", "speaker_threshold", "channel_mode", "segmentation")


def request_key(model: str, options: dict[str, str]) -> str:
    relevant = {k: str(options[k]) for k in RESULT_OPTIONS if options.get(k) not in (None, "")}
    return hashlib.sha256(json.dumps([model, relevant], sort_keys=True).encode()).hexdigest()[:32]

STAGE_WEIGHTS = {"ingest": 0.1, "vad": 0.1, "asr": 0.7, "post": 0.1}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


class Repository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def create_job(self, *, job_id: str, stream_id: str, filename: str | None, content_type: str | None,
                         size_bytes: int, object_key: str, model: str, language: str | None,
                         options: dict[str, str], source: str = "upload", org_id: str = "default",
                         user_id: str | None = None, key_id: str | None = None, file_id: str | None = None,
                         new_file: dict[str, Any] | None = None, tags: list[str] | None = None,
                         priority: str = "normal") -> None:
        """Insert a job and its first revision. ``new_file`` (the columns of a ``files`` row) records the
        upload as a file in the same transaction; otherwise a ``file_id`` names an existing file, which must
        still exist (``LookupError`` if it was deleted meanwhile)."""
        async with self.pool.acquire() as conn, conn.transaction():
            if new_file is not None:
                await self._insert_file(conn, new_file)
                file_id = new_file["file_id"]
            elif file_id is not None and await conn.fetchval(
                    "SELECT true FROM files WHERE file_id = $1 FOR SHARE", file_id) is None:
                raise LookupError(file_id)
            await conn.execute(
                """
                INSERT INTO jobs (job_id, stream_id, status, source, filename, content_type, size_bytes, object_key,
                                  model, language, options, org_id, user_id, key_id, file_id, tags, priority)
                VALUES ($1, $2, 'queued', $10, $3, $4, $5, $6, $7, $8, $9::jsonb, $11, $12, $13, $14, $15, $16)
                """,
                job_id, stream_id, filename, content_type, size_bytes, object_key, model, language,
                json.dumps(options), source, org_id, user_id, key_id, file_id, list(tags or []), priority,
            )
            await conn.execute(
                "INSERT INTO revisions (job_id, revision, model, options, request_key) "
                "VALUES ($1, 1, $2, $3::jsonb, $4)",
                job_id, model, json.dumps(options), request_key(model, options),
            )

    async def update_job(self, job_id: str, tags: list[str] | None, priority: str | None) -> bool:
        """Set a job's tags and/or priority (None leaves one as it is); False if the job is gone."""
        status = await self.pool.execute(
            "UPDATE jobs SET tags = COALESCE($2::text[], tags), priority = COALESCE($3, priority), "
            "updated_at = now() WHERE job_id = $1", job_id, tags, priority)
        return bool(status.endswith(" 1"))

    # -- files ---------------------------------------------------------------------------------------
    FILE_COLUMNS = ("file_id", "org_id", "user_id", "object_key", "filename", "content_type", "size_bytes",
                    "duration", "codec", "container", "sample_rate", "channels", "probe_error")

    @classmethod
    async def _insert_file(cls, conn: asyncpg.Connection, row: dict[str, Any]) -> None:
        cols = cls.FILE_COLUMNS
        await conn.execute(
            f"INSERT INTO files ({', '.join(cols)}) VALUES ({', '.join(f'${i}' for i in range(1, len(cols) + 1))})",
            *(row.get(c) for c in cols))

    async def create_file(self, row: dict[str, Any]) -> None:
        async with self.pool.acquire() as conn:
            await self._insert_file(conn, row)

    async def file(self, file_id: str) -> dict[str, Any] | None:
        """A file as the API shows it."""
        row = await self.pool.fetchrow("SELECT * FROM files WHERE file_id = $1", file_id)
        return self._file_json(row) if row else None

    async def file_record(self, file_id: str) -> dict[str, Any] | None:
        """A file's row, with what the API does not show (its object key)."""
        row = await self.pool.fetchrow("SELECT * FROM files WHERE file_id = $1", file_id)
        return dict(row) if row else None

    async def list_files(self, org_id: str | None, after: tuple[datetime, str] | None,
                         limit: int) -> list[asyncpg.Record]:
        """Files newest first, after a (created_at, file_id) cursor; ``org_id`` None: every organization."""
        return list(await self.pool.fetch(
            "SELECT * FROM files WHERE ($1::text IS NULL OR org_id = $1) "
            "AND ($2::timestamptz IS NULL OR (created_at, file_id) < ($2, $3)) "
            "ORDER BY created_at DESC, file_id DESC LIMIT $4",
            org_id, after[0] if after else None, after[1] if after else None, limit))

    async def delete_file(self, file_id: str) -> tuple[str, list[str]] | None:
        """Delete a file's row; the jobs made from it keep their transcripts but no longer have stored audio
        (their ``file_id`` and ``object_key`` are cleared). Returns (object_key, detached job ids), or None if
        there was no such file. The caller deletes the object."""
        async with self.pool.acquire() as conn, conn.transaction():
            key = await conn.fetchval("DELETE FROM files WHERE file_id = $1 RETURNING object_key", file_id)
            if key is None:
                return None
            jobs = await conn.fetch(
                "UPDATE jobs SET file_id = NULL, object_key = NULL, updated_at = now() WHERE file_id = $1 "
                "RETURNING job_id", file_id)
            return str(key), [r["job_id"] for r in jobs]

    @staticmethod
    def _file_json(r: asyncpg.Record | dict[str, Any]) -> dict[str, Any]:
        return {"file_id": r["file_id"], "org_id": r["org_id"], "user_id": r["user_id"], "filename": r["filename"],
                "content_type": r["content_type"], "size_bytes": r["size_bytes"], "duration": r["duration"],
                "codec": r["codec"], "container": r["container"], "sample_rate": r["sample_rate"],
                "channels": r["channels"], "probe_error": r["probe_error"], "created_at": _iso(r["created_at"]),
                "links": {"self": f"/v1/files/{r['file_id']}", "content": f"/v1/files/{r['file_id']}/content"}}

    # -- revisions and replays ---------------------------------------------------------------------
    async def revisions(self, job_id: str) -> list[dict[str, Any]]:
        rows = await self.pool.fetch("SELECT * FROM revisions WHERE job_id = $1 ORDER BY revision", job_id)
        return [{"revision": r["revision"], "status": r["status"], "model": r["model"],
                 "options": json.loads(r["options"]), "replay_id": r["replay_id"], "error": r["error"],
                 "created_at": _iso(r["created_at"]), "completed_at": _iso(r["completed_at"])} for r in rows]

    async def jobs_created_between(self, since: datetime | None, until: datetime | None,
                                   org_id: str | None) -> list[str]:
        rows = await self.pool.fetch(
            "SELECT job_id FROM jobs WHERE ($1::timestamptz IS NULL OR created_at >= $1) "
            "AND ($2::timestamptz IS NULL OR created_at < $2) AND ($3::text IS NULL OR org_id = $3) "
            "ORDER BY created_at", since, until, org_id)
        return [r["job_id"] for r in rows]

    async def start_revision(self, job_id: str, model: str, options: dict[str, str],
                             replay_id: str) -> tuple[int, bool, asyncpg.Record]:
        """The revision a replay with these settings is (an existing one when it was asked for before: replays
        are idempotent), creating it if needed. Returns (revision, created, job row)."""
        key = request_key(model, options)
        async with self.pool.acquire() as conn, conn.transaction():
            job = await conn.fetchrow("SELECT * FROM jobs WHERE job_id = $1 FOR UPDATE", job_id)
            if job is None:
                raise LookupError(job_id)
            existing = await conn.fetchval(
                "SELECT revision FROM revisions WHERE job_id = $1 AND request_key = $2 AND status <> 'failed'",
                job_id, key)
            if existing is not None:
                return int(existing), False, job
            revision = int(await conn.fetchval(
                "SELECT COALESCE(max(revision), 0) + 1 FROM revisions WHERE job_id = $1", job_id))
            await conn.execute(
                "INSERT INTO revisions (job_id, revision, model, options, request_key, replay_id) "
                "VALUES ($1, $2, $3, $4::jsonb, $5, $6)", job_id, revision, model, json.dumps(options), key, replay_id)
            await conn.execute(
                "UPDATE jobs SET revision = $2, status = 'queued', error = NULL, error_stage = NULL, "
                "completed_at = NULL, model = $3, updated_at = now() WHERE job_id = $1", job_id, revision, model)
            return revision, True, job

    async def latest_completed_revision(self, job_id: str) -> int | None:
        value = await self.pool.fetchval(
            "SELECT max(revision) FROM transcripts WHERE job_id = $1 AND status = 'completed'", job_id)
        return int(value) if value is not None else None

    async def fail_job(self, job_id: str, error: str, stage: str) -> None:
        await self.pool.execute(
            "UPDATE jobs SET status = 'failed', error = $2, error_stage = $3, updated_at = now(), "
            "completed_at = now() WHERE job_id = $1 AND status NOT IN ('completed', 'failed')",
            job_id, error, stage,
        )

    async def job(self, job_id: str) -> dict[str, Any] | None:
        row = await self.pool.fetchrow("SELECT * FROM jobs WHERE job_id = $1", job_id)
        if row is None:
            return None
        stages = await self.pool.fetch(
            "SELECT stage, state, progress, message, error, updated_at FROM job_stages "
            "WHERE job_id = $1 AND revision = $2 ORDER BY updated_at",
            job_id, row["revision"],
        )
        return self._job_json(row, stages)

    async def list_jobs(self, limit: int = 50, status: str | None = None,
                        org_id: str | None = None) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT * FROM jobs WHERE ($2::text IS NULL OR status = $2) AND ($3::text IS NULL OR org_id = $3) "
            "ORDER BY created_at DESC LIMIT $1",
            limit, status, org_id,
        )
        return [self._job_json(r, []) for r in rows]

    @staticmethod
    def _job_json(row: asyncpg.Record, stages: list[asyncpg.Record]) -> dict[str, Any]:
        stage_map = {
            s["stage"].removeprefix("streamscribe-"): {
                "state": s["state"], "progress": s["progress"], "message": s["message"], "error": s["error"],
                "updated_at": _iso(s["updated_at"]),
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
            "created_at": _iso(row["created_at"]), "started_at": _iso(row["started_at"]),
            "completed_at": _iso(row["completed_at"]),
        }

    async def transcript(self, job_id: str, revision: int | None = None,
                         original: bool = False) -> dict[str, Any] | None:
        """A revision's transcript; PII stays redacted unless ``original`` (callers check pii:read first)."""
        job = await self.pool.fetchrow("SELECT job_id, stream_id, status, revision FROM jobs WHERE job_id = $1", job_id)
        if job is None:
            return None
        rev = revision or await self.latest_completed_revision(job_id) or job["revision"]
        t = await self.pool.fetchrow("SELECT * FROM transcripts WHERE job_id = $1 AND revision = $2", job_id, rev)
        if t is None:
            return None
        segs = await self.pool.fetch(
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
            segments.append({
                "id": s["segment_id"], "start": s["start_s"], "end": s["end_s"], "text": text,
                "speaker": display.get(s["speaker"], s["speaker"]), "speaker_id": s["speaker"],
                "channel": s["channel"], "confidence": s["confidence"],
                "words": [{"start": w["start"], "end": w["end"], "word": w["word"], "probability": w["probability"]}
                          for w in json.loads(words)]})
        return {
            "job_id": job_id, "stream_id": t["stream_id"], "status": t["status"], "revision": rev,
            "duration": t["duration"], "language": t["language"], "model": t["model"],
            "pipeline_version": t["pipeline_version"],
            "text": " ".join(s["text"] for s in segments) if original or t["text"] is None else t["text"],
            "error": t["error"], "redacted": bool(redactions) and not original, "redactions": redactions,
            "speakers": speakers, "segments": segments,
        }

    async def speakers(self, job_id: str, revision: int) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT speaker_id, label, name, channel, talk_time, identified_as, similarity FROM transcript_speakers "
            "WHERE job_id = $1 AND revision = $2 ORDER BY talk_time DESC, speaker_id",
            job_id, revision,
        )
        return [{"id": r["speaker_id"], "label": r["label"], "name": r["name"], "channel": r["channel"],
                 "talk_time": r["talk_time"], "identified_as": r["identified_as"], "similarity": r["similarity"]}
                for r in rows]

    async def rename_speaker(self, job_id: str, revision: int, speaker_id: str, name: str | None) -> bool:
        status = await self.pool.execute(
            "UPDATE transcript_speakers SET name = $4, renamed = true WHERE job_id = $1 AND revision = $2 "
            "AND speaker_id = $3",
            job_id, revision, speaker_id, name,
        )
        return bool(status.endswith(" 1"))

    async def turns(self, job_id: str, revision: int) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT start_s, end_s, speaker_id FROM speaker_turns WHERE job_id = $1 AND revision = $2 ORDER BY idx",
            job_id, revision,
        )
        return [{"start": r["start_s"], "end": r["end_s"], "speaker": r["speaker_id"]} for r in rows]

    # -- voice profiles -------------------------------------------------------------------------------
    async def create_profile(self, profile_id: str, org_id: str, name: str, object_keys: list[str]) -> None:
        await self.pool.execute(
            "INSERT INTO speaker_profiles (profile_id, org_id, name, samples, object_keys) VALUES ($1, $2, $3, $4, $5)",
            profile_id, org_id, name, len(object_keys), object_keys,
        )

    # org_id None: any organization (the platform admin)
    async def profiles(self, org_id: str | None) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT * FROM speaker_profiles WHERE ($1::text IS NULL OR org_id = $1) ORDER BY created_at", org_id)
        return [self._profile_json(r) for r in rows]

    async def profile(self, org_id: str | None, profile_id: str) -> dict[str, Any] | None:
        row = await self.pool.fetchrow(
            "SELECT * FROM speaker_profiles WHERE ($1::text IS NULL OR org_id = $1) AND profile_id = $2",
            org_id, profile_id)
        return self._profile_json(row) if row else None

    async def rename_profile(self, org_id: str | None, profile_id: str, name: str) -> bool:
        status = await self.pool.execute(
            "UPDATE speaker_profiles SET name = $3, updated_at = now() "
            "WHERE ($1::text IS NULL OR org_id = $1) AND profile_id = $2",
            org_id, profile_id, name,
        )
        return bool(status.endswith(" 1"))

    async def delete_profile(self, org_id: str | None, profile_id: str) -> list[str] | None:
        keys = await self.pool.fetchval(
            "DELETE FROM speaker_profiles WHERE ($1::text IS NULL OR org_id = $1) AND profile_id = $2 "
            "RETURNING object_keys",
            org_id, profile_id,
        )
        return list(keys) if keys is not None else None

    @staticmethod
    def _profile_json(r: asyncpg.Record) -> dict[str, Any]:
        return {"id": r["profile_id"], "org_id": r["org_id"], "name": r["name"], "status": r["status"],
                "samples": r["samples"],
                "voiced_seconds": r["voiced_seconds"], "backend": r["backend"], "error": r["error"],
                "created_at": _iso(r["created_at"]), "updated_at": _iso(r["updated_at"])}

    async def ping(self) -> None:
        await self.pool.fetchval("SELECT 1")
