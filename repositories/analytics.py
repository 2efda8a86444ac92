"""Conversation analytics in PostgreSQL (asyncpg): phrase lists as organizations manage them (the gateway) and
the analytics stage reads them; the projection of ``analytics.calls`` and ``analytics.windows`` (the
materializer); what the gateway serves. Tables: repositories/migrations/0007_analytics.sql.

The projection is idempotent: a call revision's analytics are upserted by (job, revision), and a window's
totals by (organization, granularity, speaker, start) only when the snapshot's ``version`` is not older than
the stored one, so snapshots redelivered or read out of order never take a window back.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from repositories.db import AlreadyExists, MissingReference
from repositories.rows import changed_one, iso

WINDOW_COUNTS = ("calls", "audio_ms", "speech_ms", "talk_ms", "talk_share_bp", "interruptions", "interrupted",
                 "overlap_ms", "silence_ms", "words", "required_missing")


def _ts(value: int | datetime) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromtimestamp(value / 1000, tz=UTC)


def _plain(value: Any) -> Any:
    """A decoded event as JSON can hold it (times as ISO 8601)."""
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True)
class PhraseRow:
    phrase_id: str
    org_id: str
    phrase: str
    kind: str
    speaker: str | None
    threshold: int


def phrase_json(r: asyncpg.Record) -> dict[str, Any]:
    return {"id": r["phrase_id"], "org_id": r["org_id"], "phrase": r["phrase"], "kind": r["kind"],
            "speaker": r["speaker"], "threshold": r["threshold"], "created_at": iso(r["created_at"]),
            "updated_at": iso(r["updated_at"])}


def new_phrase_id() -> str:
    return "phr_" + uuid.uuid4().hex[:20]


# -- the materializer's projection -------------------------------------------------------------------------
async def project_call(conn: asyncpg.Connection, ev: dict[str, Any]) -> None:
    """Upsert one revision's analytics (its job row exists: the materializer checked)."""
    job_id = ev.get("job_id") or ev["stream_id"]
    await conn.execute(
        """
        INSERT INTO analytics_calls (job_id, revision, org_id, stream_id, completed_at, duration, speech_time,
                                     overlap_time, silence_total, turns, interruptions, words, sentiment,
                                     phrase_hits, required_missing, metrics, produced_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16::jsonb, $17)
        ON CONFLICT (job_id, revision) DO UPDATE SET
          org_id = EXCLUDED.org_id, completed_at = EXCLUDED.completed_at, duration = EXCLUDED.duration,
          speech_time = EXCLUDED.speech_time, overlap_time = EXCLUDED.overlap_time,
          silence_total = EXCLUDED.silence_total, turns = EXCLUDED.turns, interruptions = EXCLUDED.interruptions,
          words = EXCLUDED.words, sentiment = EXCLUDED.sentiment, phrase_hits = EXCLUDED.phrase_hits,
          required_missing = EXCLUDED.required_missing, metrics = EXCLUDED.metrics,
          produced_at = EXCLUDED.produced_at
        """,
        job_id, ev["revision"], ev["org_id"], ev["stream_id"], _ts(ev["completed_at"]), ev["duration"],
        ev["speech_time"], ev["overlap_time"], ev["silence_total"], ev["turns"], len(ev["interruptions"]),
        ev["words"], ev.get("sentiment"), len(ev["phrase_hits"]), len(ev["required_missing"]),
        json.dumps(_plain(ev)), _ts(ev["produced_at"]))


async def project_window(conn: asyncpg.Connection, ev: dict[str, Any]) -> None:
    """Upsert a window's totals unless the stored ones are newer (or its organization is gone)."""
    counts = [ev[name] for name in WINDOW_COUNTS]
    await conn.execute(
        f"""
        INSERT INTO analytics_windows (org_id, granularity, speaker, window_start, window_end,
                                       {", ".join(WINDOW_COUNTS)}, phrase_hits, version, updated_at)
        SELECT $1, $2, $3, $4, $5, {", ".join(f"${i}" for i in range(6, 6 + len(WINDOW_COUNTS)))},
               ${6 + len(WINDOW_COUNTS)}::jsonb, ${7 + len(WINDOW_COUNTS)}, now()
        WHERE EXISTS (SELECT 1 FROM organizations WHERE org_id = $1)
        ON CONFLICT (org_id, granularity, speaker, window_start) DO UPDATE SET
          {", ".join(f"{name} = EXCLUDED.{name}" for name in WINDOW_COUNTS)},
          window_end = EXCLUDED.window_end, phrase_hits = EXCLUDED.phrase_hits, version = EXCLUDED.version,
          updated_at = now()
        WHERE analytics_windows.version <= EXCLUDED.version
        """,  # column names from WINDOW_COUNTS; values bound
        ev["org_id"], ev["granularity"].lower(), ev["speaker"], _ts(ev["window_start"]), _ts(ev["window_end"]),
        *counts, json.dumps(ev["phrase_hits"]), ev["version"])


# -- what the gateway and the analytics stage read ---------------------------------------------------------
def window_json(r: asyncpg.Record) -> dict[str, Any]:
    return {"start": iso(r["window_start"]), "end": iso(r["window_end"]),
            **{name: r[name] for name in WINDOW_COUNTS}, "phrase_hits": json.loads(r["phrase_hits"])}


class AnalyticsStore:
    """Every gateway query takes the organization it is confined to; None: any (the platform admin)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def call(self, job_id: str, revision: int | None) -> dict[str, Any] | None:
        """A revision's analytics (the newest revision that has them when ``revision`` is None)."""
        row = await self._pool.fetchrow(
            "SELECT metrics FROM analytics_calls WHERE job_id = $1 AND ($2::int IS NULL OR revision = $2) "
            "ORDER BY revision DESC LIMIT 1", job_id, revision)
        return json.loads(row["metrics"]) if row else None

    async def revisions(self, job_id: str) -> list[int]:
        return [r["revision"] for r in await self._pool.fetch(
            "SELECT revision FROM analytics_calls WHERE job_id = $1 ORDER BY revision", job_id)]

    async def windows(self, org_id: str, granularity: str, speaker: str, since: datetime | None,
                      until: datetime | None) -> list[dict[str, Any]]:
        rows = await self._pool.fetch(
            """
            SELECT * FROM analytics_windows
            WHERE org_id = $1 AND granularity = $2 AND speaker = $3
              AND ($4::timestamptz IS NULL OR window_end > $4) AND ($5::timestamptz IS NULL OR window_start < $5)
            ORDER BY window_start
            """, org_id, granularity, speaker, since, until)
        return [window_json(r) for r in rows]

    async def speakers(self, org_id: str) -> list[str]:
        """The named speakers the organization's aggregates know."""
        return [r["speaker"] for r in await self._pool.fetch(
            "SELECT DISTINCT speaker FROM analytics_windows WHERE org_id = $1 AND speaker <> '' ORDER BY speaker",
            org_id)]

    # -- phrase lists ----------------------------------------------------------------------------------
    async def phrases(self, org_id: str | None) -> list[dict[str, Any]]:
        rows = await self._pool.fetch(
            "SELECT * FROM analytics_phrases WHERE ($1::text IS NULL OR org_id = $1) ORDER BY kind, created_at",
            org_id)
        return [phrase_json(r) for r in rows]

    async def phrase_rows(self, org_id: str) -> list[PhraseRow]:
        """An organization's phrases, for the analytics stage."""
        rows = await self._pool.fetch(
            "SELECT phrase_id, org_id, phrase, kind, speaker, threshold FROM analytics_phrases WHERE org_id = $1 "
            "ORDER BY phrase_id", org_id)
        return [PhraseRow(r["phrase_id"], r["org_id"], r["phrase"], r["kind"], r["speaker"], r["threshold"])
                for r in rows]

    async def phrase(self, org_id: str | None, phrase_id: str) -> dict[str, Any] | None:
        row = await self._pool.fetchrow(
            "SELECT * FROM analytics_phrases WHERE ($1::text IS NULL OR org_id = $1) AND phrase_id = $2",
            org_id, phrase_id)
        return phrase_json(row) if row else None

    async def create_phrase(self, org_id: str, phrase: str, kind: str, speaker: str | None,
                            threshold: int) -> dict[str, Any]:
        try:
            row = await self._pool.fetchrow(
                "INSERT INTO analytics_phrases (phrase_id, org_id, phrase, kind, speaker, threshold) "
                "VALUES ($1, $2, $3, $4, $5, $6) RETURNING *",
                new_phrase_id(), org_id, phrase, kind, speaker, threshold)
        except asyncpg.UniqueViolationError:
            raise AlreadyExists(f"the phrase {phrase!r} is already listed") from None
        except asyncpg.ForeignKeyViolationError:
            raise MissingReference(f"no organization {org_id!r}") from None
        return phrase_json(row)

    async def update_phrase(self, org_id: str | None, phrase_id: str, changes: dict[str, Any]) -> bool:
        """Set the given columns (phrase, kind, speaker, threshold); False when there is no such phrase."""
        allowed = [k for k in ("phrase", "kind", "speaker", "threshold") if k in changes]
        if not allowed:
            return await self.phrase(org_id, phrase_id) is not None
        sets = ", ".join(f"{k} = ${i}" for i, k in enumerate(allowed, start=3))
        try:
            status = await self._pool.execute(
                f"UPDATE analytics_phrases SET {sets}, updated_at = now() "  # names from a fixed list
                "WHERE ($1::text IS NULL OR org_id = $1) AND phrase_id = $2",
                org_id, phrase_id, *[changes[k] for k in allowed])
        except asyncpg.UniqueViolationError:
            raise AlreadyExists(f"the phrase {changes.get('phrase')!r} is already listed") from None
        return changed_one(status)

    async def delete_phrase(self, org_id: str | None, phrase_id: str) -> bool:
        status = await self._pool.execute(
            "DELETE FROM analytics_phrases WHERE ($1::text IS NULL OR org_id = $1) AND phrase_id = $2",
            org_id, phrase_id)
        return changed_one(status)
