"""Webhook subscriptions and the delivery log in PostgreSQL (asyncpg), for the gateway, the webhooks stage
and its delivery loop. Tables: repositories/migrations/0005_webhooks.sql."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import asyncpg

from repositories.db import MissingReference
from repositories.rows import iso

# A subscription hears events that happen after it was created; the allowance absorbs clock skew between
# the producing hosts and the database (and keeps a lagging webhooks group from replaying old history into
# a brand-new subscription).
CREATED_ALLOWANCE_S = 60


class Notification(Protocol):
    """What a webhook event must tell the delivery log (``connectors.webhooks.events.WebhookEvent`` does)."""

    @property
    def id(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def job_id(self) -> str: ...
    @property
    def revision(self) -> int: ...
    @property
    def occurred_at(self) -> datetime: ...
    def payload(self, org_id: str) -> dict[str, Any]: ...


def subscription_json(r: asyncpg.Record) -> dict[str, Any]:
    return {"id": r["subscription_id"], "org_id": r["org_id"], "url": r["url"], "events": list(r["events"]),
            "active": r["active"], "description": r["description"], "secret_hint": r["secret_hint"],
            "created_by": r["created_by"], "created_at": iso(r["created_at"]), "updated_at": iso(r["updated_at"])}


def delivery_json(r: asyncpg.Record, attempts: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    out = {"id": r["delivery_id"], "subscription_id": r["subscription_id"], "event_id": r["event_id"],
           "event_type": r["event_type"], "job_id": r["job_id"], "revision": r["revision"], "status": r["status"],
           "attempts": r["attempts"], "last_status": r["last_status"], "last_error": r["last_error"],
           "next_attempt_at": iso(r["next_attempt_at"]), "created_at": iso(r["created_at"]),
           "updated_at": iso(r["updated_at"]), "delivered_at": iso(r["delivered_at"]),
           "payload": json.loads(r["payload"])}
    if attempts is not None:
        out["attempt_log"] = attempts
    return out


@dataclass(frozen=True)
class Due:
    """A delivery claimed for one attempt."""

    delivery_id: str
    subscription_id: str
    event_id: str
    event_type: str
    body: bytes
    attempts: int  # made before this one
    url: str
    secret_sealed: str


class WebhookStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    # -- subscriptions (gateway) ---------------------------------------------------------------------
    async def create(self, *, subscription_id: str, org_id: str, url: str, events: Sequence[str], sealed: str,
                     hint: str, description: str | None, created_by: str | None) -> dict[str, Any]:
        """A new subscription; ``MissingReference`` for an unknown organization."""
        try:
            row = await self._pool.fetchrow(
                "INSERT INTO webhook_subscriptions (subscription_id, org_id, url, secret_sealed, secret_hint, events, "
                "description, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *",
                subscription_id, org_id, url, sealed, hint, list(events), description, created_by)
        except asyncpg.ForeignKeyViolationError:
            raise MissingReference(org_id) from None
        return subscription_json(row)

    async def count(self, org_id: str) -> int:
        return int(await self._pool.fetchval("SELECT count(*) FROM webhook_subscriptions WHERE org_id = $1", org_id))

    async def subscriptions(self, org_id: str | None) -> list[dict[str, Any]]:
        rows = await self._pool.fetch(
            "SELECT * FROM webhook_subscriptions WHERE ($1::text IS NULL OR org_id = $1) ORDER BY created_at", org_id)
        return [subscription_json(r) for r in rows]

    async def subscription(self, subscription_id: str) -> dict[str, Any] | None:
        row = await self._pool.fetchrow("SELECT * FROM webhook_subscriptions WHERE subscription_id = $1",
                                       subscription_id)
        return subscription_json(row) if row else None

    async def update(self, subscription_id: str, *, url: str | None = None, events: Sequence[str] | None = None,
                     active: bool | None = None, description: str | None = None) -> dict[str, Any] | None:
        row = await self._pool.fetchrow(
            """
            UPDATE webhook_subscriptions SET url = COALESCE($2, url), events = COALESCE($3, events),
                   active = COALESCE($4, active), description = COALESCE($5, description), updated_at = now()
            WHERE subscription_id = $1 RETURNING *
            """,
            subscription_id, url, None if events is None else list(events), active, description)
        return subscription_json(row) if row else None

    async def delete(self, subscription_id: str) -> bool:
        return await self._pool.fetchval(
            "DELETE FROM webhook_subscriptions WHERE subscription_id = $1 RETURNING true", subscription_id) is not None

    # -- the delivery log ----------------------------------------------------------------------------
    async def deliveries(self, subscription_id: str, *, limit: int = 50, status: str | None = None,
                         event_type: str | None = None, job_id: str | None = None) -> list[dict[str, Any]]:
        rows = await self._pool.fetch(
            """
            SELECT * FROM webhook_deliveries WHERE subscription_id = $1 AND ($2::text IS NULL OR status = $2)
               AND ($3::text IS NULL OR event_type = $3) AND ($4::text IS NULL OR job_id = $4)
            ORDER BY created_at DESC, delivery_id LIMIT $5
            """,
            subscription_id, status, event_type, job_id, limit)
        attempts: dict[str, list[dict[str, Any]]] = {r["delivery_id"]: [] for r in rows}
        if rows:
            for a in await self._pool.fetch(
                    "SELECT * FROM webhook_attempts WHERE delivery_id = ANY($1::text[]) ORDER BY delivery_id, attempt",
                    list(attempts)):
                attempts[a["delivery_id"]].append({
                    "attempt": a["attempt"], "started_at": iso(a["started_at"]), "duration_ms": a["duration_ms"],
                    "http_status": a["http_status"], "error": a["error"]})
        return [delivery_json(r, attempts[r["delivery_id"]]) for r in rows]

    async def enqueue(self, subscription_id: str, org_id: str, event_id: str, event_type: str,
                      payload: dict[str, Any]) -> str:
        """A delivery to one subscription regardless of its event filter (test pings)."""
        delivery_id = "dlv_" + uuid.uuid4().hex[:24]
        await self._pool.execute(
            "INSERT INTO webhook_deliveries (delivery_id, subscription_id, org_id, event_id, event_type, payload, "
            "next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6::jsonb, now())",
            delivery_id, subscription_id, org_id, event_id, event_type, json.dumps(payload))
        return delivery_id

    async def redeliver(self, subscription_id: str, delivery_id: str) -> bool:
        """Send a delivery once more, now (a manual retry: one more attempt, whatever its status)."""
        return await self._pool.fetchval(
            "UPDATE webhook_deliveries SET status = CASE WHEN status = 'failed' THEN 'failed' ELSE 'pending' END, "
            "next_attempt_at = now(), updated_at = now() WHERE subscription_id = $1 AND delivery_id = $2 "
            "RETURNING true", subscription_id, delivery_id) is not None

    # -- the webhooks stage ---------------------------------------------------------------------------
    @staticmethod
    async def job_org(conn: asyncpg.Connection, job_id: str) -> str | None:
        org: str | None = await conn.fetchval("SELECT org_id FROM jobs WHERE job_id = $1", job_id)
        return org

    @staticmethod
    async def record(conn: asyncpg.Connection, items: Sequence[tuple[Notification, str]]) -> None:
        """A pending delivery of each (event, org) to every active subscription of the org that wants the
        event's type; an event already recorded for a subscription (a redelivered pipeline event) is skipped."""
        if not items:
            return
        await conn.executemany(
            f"""
            INSERT INTO webhook_deliveries (delivery_id, subscription_id, org_id, event_id, event_type, job_id,
                                            revision, payload, status, next_attempt_at)
            SELECT 'dlv_' || left(md5(s.subscription_id || '|' || $1), 24), s.subscription_id, s.org_id, $1, $2,
                   $3, $4, $5::jsonb, 'pending', now()
            FROM webhook_subscriptions s
            WHERE s.org_id = $6 AND s.active AND $2 = ANY (s.events)
              AND s.created_at <= $7::timestamptz + interval '{CREATED_ALLOWANCE_S} seconds'
            ON CONFLICT (subscription_id, event_id) DO NOTHING
            """,
            [(ev.id, ev.type, ev.job_id, ev.revision, json.dumps(ev.payload(org)), org, ev.occurred_at)
             for ev, org in items])

    # -- the delivery loop ----------------------------------------------------------------------------
    async def prune(self, days: int) -> int:
        """Remove finished deliveries (and their attempts) last touched more than ``days`` days ago."""
        removed = await self._pool.fetchval(
            "WITH gone AS (DELETE FROM webhook_deliveries WHERE status IN ('delivered', 'gave_up') "
            "AND updated_at < now() - make_interval(days => $1) RETURNING 1) SELECT count(*) FROM gone", days)
        return int(removed or 0)

    async def claim(self, limit: int, lease_s: float) -> list[Due]:
        """Up to ``limit`` due deliveries of active subscriptions, leased for ``lease_s`` (another worker skips
        them meanwhile; a worker that dies mid-attempt leaves them to be retried when the lease ends)."""
        rows = await self._pool.fetch(
            """
            WITH due AS (
                SELECT d.delivery_id FROM webhook_deliveries d
                JOIN webhook_subscriptions s ON s.subscription_id = d.subscription_id
                WHERE d.status IN ('pending', 'failed') AND d.next_attempt_at <= now() AND s.active
                ORDER BY d.next_attempt_at LIMIT $1 FOR UPDATE OF d SKIP LOCKED
            )
            UPDATE webhook_deliveries d SET next_attempt_at = now() + make_interval(secs => $2::double precision)
            FROM due, webhook_subscriptions s
            WHERE d.delivery_id = due.delivery_id AND s.subscription_id = d.subscription_id
            RETURNING d.delivery_id, d.subscription_id, d.event_id, d.event_type, d.payload::text AS payload,
                      d.attempts, s.url, s.secret_sealed
            """,
            limit, lease_s)
        return [Due(r["delivery_id"], r["subscription_id"], r["event_id"], r["event_type"],
                    json.dumps(json.loads(r["payload"]), separators=(",", ":"), ensure_ascii=False).encode("utf-8"),
                    r["attempts"], r["url"], r["secret_sealed"]) for r in rows]

    async def finish(self, delivery_id: str, *, started_at: datetime, duration_ms: int, http_status: int | None,
                     error: str | None, outcome: str, retry_in_s: float | None = None) -> None:
        """Log one attempt and move the delivery on: ``outcome`` delivered, failed (retry in ``retry_in_s``)
        or gave_up. A delivery already delivered stays delivered."""
        async with self._pool.acquire() as conn, conn.transaction():
            attempt = await conn.fetchval(
                """
                UPDATE webhook_deliveries SET attempts = attempts + 1, last_status = $2, last_error = $3,
                       status = CASE WHEN status = 'delivered' THEN 'delivered' ELSE $4 END,
                       next_attempt_at = CASE WHEN status <> 'delivered' AND $4 = 'failed'
                                              THEN now() + make_interval(secs => $5::double precision) END,
                       delivered_at = CASE WHEN $4 = 'delivered' THEN COALESCE(delivered_at, now())
                                           ELSE delivered_at END,
                       updated_at = now()
                WHERE delivery_id = $1 RETURNING attempts
                """,
                delivery_id, http_status, error, outcome, retry_in_s or 0.0)
            if attempt is None:
                return  # the subscription was deleted meanwhile
            await conn.execute(
                "INSERT INTO webhook_attempts (delivery_id, attempt, started_at, duration_ms, http_status, error) "
                "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                delivery_id, attempt, started_at, duration_ms, http_status, error)
