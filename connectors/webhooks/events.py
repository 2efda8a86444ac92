"""Pipeline events -> webhook events: which ones subscribers hear about, their ids, and their payloads.

Webhook event types:

- ``job.completed``: a run of a job (its first run, or a replay as a new revision) produced a complete
  transcript (from the ``transcripts`` COMPLETED event, the authoritative end of a run);
- ``transcript.completed``: the same moment, seen as a readable transcript revision, with its summary;
- ``job.failed``: a run failed (a stage's FAILED on ``jobs.events`` or the ``transcripts`` FAILED event,
  whichever comes first: both map to the same event id, so a subscriber hears it once);
- ``job.running``: a stage started, or finished, its part of a run (stage progress from ``jobs.events``;
  at most two per stage and run, however many progress reports the stage makes);
- ``analytics.required_phrase_missing``: the analytics of a run (``analytics.calls``) found that a phrase the
  organization lists as required was not said (or not by the speaker it names); the payload names the
  phrases (the organization's own list, not what the recording said).
- ``job.requeued``: a run was queued again as a new revision because the previous one stopped making progress
  (the reconciler's ``QUEUED`` on ``jobs.events``, with the reason, the revision given up and the attempt).

Event ids are deterministic (a hash of the type, the job, the revision and, for ``job.running``, the stage
and its state), so a pipeline event Kafka delivers twice maps to the same webhook event, and the delivery
log's unique (subscription, event id) records it once.

Payloads say what happened and where to read it; never transcript text, speaker names or anything else a
recording said (receivers fetch the transcript with their own credentials).
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

JOB_COMPLETED = "job.completed"
JOB_FAILED = "job.failed"
JOB_RUNNING = "job.running"
JOB_REQUEUED = "job.requeued"
TRANSCRIPT_COMPLETED = "transcript.completed"
REQUIRED_PHRASE_MISSING = "analytics.required_phrase_missing"
PING = "ping"
EVENT_TYPES: tuple[str, ...] = (JOB_COMPLETED, JOB_FAILED, JOB_RUNNING, JOB_REQUEUED, TRANSCRIPT_COMPLETED,
                                 REQUIRED_PHRASE_MISSING)
MAX_ERROR = 1000


def event_id(event_type: str, job_id: str, revision: int, *parts: str) -> str:
    raw = "\x1f".join((event_type, job_id, str(revision), *parts))
    return "evt_" + hashlib.sha256(raw.encode("utf-8")).hexdigest()[:32]


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def from_millis(ms: int | datetime) -> datetime:
    return ms if isinstance(ms, datetime) else datetime.fromtimestamp(ms / 1000, tz=UTC)


def links(job_id: str) -> dict[str, str]:
    job = f"/v1/jobs/{quote(job_id, safe='')}"
    return {"job": job, "transcript": f"{job}/transcript"}


@dataclass(frozen=True)
class WebhookEvent:
    id: str
    type: str
    job_id: str
    stream_id: str
    revision: int
    status: str  # of the job run: queued, running, completed, failed
    occurred_at: datetime
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def payload(self, org_id: str) -> dict[str, Any]:
        data: dict[str, Any] = {"job_id": self.job_id, "stream_id": self.stream_id, "org_id": org_id,
                                "revision": self.revision, "status": self.status, "error": self.error,
                                **self.extra, "links": links(self.job_id)}
        return {"id": self.id, "type": self.type, "created_at": iso(self.occurred_at), "data": data}


def _error(value: Any) -> str | None:
    return str(value)[:MAX_ERROR] if value else None


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, str) and value.isdigit() else None


def from_transcript_event(ev: dict[str, Any]) -> list[WebhookEvent]:
    """A ``transcripts`` event (decoded): COMPLETED -> job.completed + transcript.completed, FAILED ->
    job.failed, SEGMENT -> nothing."""
    kind = ev["kind"]
    if kind not in ("COMPLETED", "FAILED"):
        return []
    job_id = str(ev.get("job_id") or ev["stream_id"])
    revision = int(ev.get("revision") or 1)
    at = from_millis(ev["produced_at"])
    common = {"job_id": job_id, "stream_id": ev["stream_id"], "revision": revision, "occurred_at": at}
    if kind == "FAILED":
        return [WebhookEvent(id=event_id(JOB_FAILED, job_id, revision), type=JOB_FAILED, status="failed",
                             error=_error(ev.get("error")), **common)]
    summary = {"transcript": {"language": ev.get("language"), "duration": ev.get("duration"),
                              "segment_count": ev.get("segment_count"), "model": ev.get("model"),
                              "pipeline_version": ev.get("pipeline_version"),
                              "speaker_count": len(ev.get("speakers") or [])}}
    return [
        WebhookEvent(id=event_id(JOB_COMPLETED, job_id, revision), type=JOB_COMPLETED, status="completed",
                     **common),
        WebhookEvent(id=event_id(TRANSCRIPT_COMPLETED, job_id, revision), type=TRANSCRIPT_COMPLETED,
                     status="completed", extra=summary, **common),
    ]


def from_job_event(ev: dict[str, Any]) -> list[WebhookEvent]:
    """A ``jobs.events`` event (decoded): a stage's FAILED -> job.failed; a stage's RUNNING or COMPLETED ->
    job.running (one event id per stage and state, so repeated progress reports collapse into one); QUEUED (a
    run queued again by the reconciler) -> job.requeued."""
    state = ev["state"]
    stage = str(ev.get("stage") or "").removeprefix("streamscribe-")  # as GET /v1/jobs/{id} names stages
    job_id = str(ev["job_id"])
    revision = int(ev.get("revision") or 1)
    common = {"job_id": job_id, "stream_id": ev["stream_id"], "revision": revision,
              "occurred_at": from_millis(ev["at"])}
    if state == "FAILED":
        return [WebhookEvent(id=event_id(JOB_FAILED, job_id, revision), type=JOB_FAILED, status="failed",
                             error=_error(ev.get("error")), extra={"stage": stage}, **common)]
    if state == "QUEUED":
        details = ev.get("details") or {}
        return [WebhookEvent(id=event_id(JOB_REQUEUED, job_id, revision), type=JOB_REQUEUED, status="queued",
                             extra={"stage": stage, "reason": _error(details.get("reason") or ev.get("message")),
                                    "previous_revision": _int(details.get("previous_revision")),
                                    "attempt": _int(details.get("attempt"))}, **common)]
    if state in ("RUNNING", "COMPLETED"):
        stage_state = state.lower()
        progress = ev.get("progress")
        return [WebhookEvent(id=event_id(JOB_RUNNING, job_id, revision, stage, stage_state),
                             type=JOB_RUNNING, status="running",
                             extra={"stage": stage, "stage_status": stage_state,
                                    "progress": None if progress is None else round(float(progress), 3)},
                             **common)]
    return []


def from_analytics_call(ev: dict[str, Any]) -> list[WebhookEvent]:
    """An ``analytics.calls`` event (decoded): required phrases missing -> analytics.required_phrase_missing."""
    missing = ev.get("required_missing") or []
    if not missing:
        return []
    job_id = str(ev.get("job_id") or ev["stream_id"])
    revision = int(ev.get("revision") or 1)
    phrases = [{"phrase_id": m["phrase_id"], "phrase": m["phrase"], "speaker": m.get("speaker")} for m in missing]
    return [WebhookEvent(id=event_id(REQUIRED_PHRASE_MISSING, job_id, revision), type=REQUIRED_PHRASE_MISSING,
                         job_id=job_id, stream_id=ev["stream_id"], revision=revision, status="completed",
                         occurred_at=from_millis(ev["produced_at"]),
                         extra={"missing_phrases": phrases,
                                "analytics": f"/v1/jobs/{quote(job_id, safe='')}/analytics"})]


def ping(subscription_id: str, org_id: str, at: datetime | None = None) -> tuple[str, dict[str, Any]]:
    """(event id, payload) of a test event sent on request to one subscription."""
    eid = "evt_ping_" + uuid.uuid4().hex[:24]
    return eid, {"id": eid, "type": PING, "created_at": iso(at or datetime.now(UTC)),
                 "data": {"subscription_id": subscription_id, "org_id": org_id,
                          "message": "streamscribe webhook test delivery"}}
