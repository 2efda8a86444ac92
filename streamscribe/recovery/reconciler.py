"""The reconciler: finds jobs in flight that nothing will move on any more and runs them again, closes live
sessions a crash cut, or fails them with the reason (the rules: ``streamscribe.recovery.rules``; why a new
revision: docs/recovery.md).

One pass reads the jobs queued or running (PostgreSQL), what every stage still has to read on Kafka
(``streamscribe.recovery.backlog``), whether each stuck job's recording is still stored, and when the gateway now
running started (``stack.json``, embedded stack only); then it acts on each job:

- **rerun**: the job's current request becomes a new revision (``JobStore.rerun``, conditional on the job still
  being at the revision judged), its claim check is published to ``ingest.requests`` and a ``QUEUED`` report to
  ``jobs.events`` (webhook ``job.requeued``);
- **close**: a cut live session's end of stream is published on its audio lane, so the pipeline finalizes what
  was heard; the revision is marked recovered (its clock starts again) and, its archive never having been
  written, the job stops offering stored audio;
- **fail**: the job row is failed with the reason, and a ``FAILED`` report with it goes to ``jobs.events``
  (webhook ``job.failed``, the job's stage list).

Every action is conditional on the job still being in flight at the revision judged, so two reconcilers (the
periodic one and ``streamscribe reconcile``) never act twice on one stall. The pass runs in ``streamscribe
maintenance`` (started by the embedded stack; a CronJob in the Helm chart) at start and every
``recovery.interval_s``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message

from connectors.storage.base import ObjectStore
from foundation.events import AudioChunk, Event, IngestRequest, JobEvent
from foundation.logs import get_logger
from foundation.settings import Settings
from repositories.jobs import InFlightJob, JobStore
from streams.kafka.clients import publisher_producer
from streams.kafka.lanes import chunk_lane
from streams.kafka.schema_registry import make_registry
from streams.kafka.serde import AvroSerde
from streams.kafka.topics import INGEST_REQUESTS, JOBS_EVENTS, stage_group
from streamscribe.recovery.backlog import Backlog
from streamscribe.recovery.rules import Action, Facts, Policy, decide

log = get_logger(__name__)

STAGE = stage_group("reconciler")  # what its reports on jobs.events name (GET /v1/jobs shows "reconciler")
# The seq of the end-of-stream chunk that closes a cut live session: above any seq the session sent, so VAD takes it
# as the next chunk of the stream (it skips chunks at or below the last seq it saw); it carries no audio.
CLOSE_SEQ = 2**62
# Channels announced by that chunk: the most a live session may have. Its audio is empty, so channels the session
# did not have add nothing, and every channel it had is finished.
CLOSE_CHANNELS = 8
LIVE_RATES = {"telephony": 8000}


class EventWriter:
    """Publishes events (Avro, Confluent wire format) and waits until the broker has each."""

    def __init__(self, settings: Settings) -> None:
        kafka = settings.kafka
        self.prefix = kafka.topic_prefix
        self.serde = AvroSerde(make_registry(settings.schema_registry.url, settings.schema_registry_file),
                               self.prefix)
        self.producer = publisher_producer(kafka, "streamscribe-reconciler")

    def publish(self, topic: str, event: Event, timeout: float = 30.0) -> None:
        failures: list[KafkaError] = []

        def delivered(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                failures.append(err)

        full = self.prefix + topic
        key = event.partition_key
        self.producer.produce(full, key=key.encode() if key else None, value=self.serde.serialize(full, event),
                              on_delivery=delivered)
        if self.producer.flush(timeout) != 0:
            raise KafkaException(KafkaError(KafkaError._MSG_TIMED_OUT, f"{topic}: not delivered in {timeout:.0f} s"))
        if failures:
            raise KafkaException(failures[0])

    def close(self) -> None:
        self.producer.flush(10)


@dataclass(frozen=True)
class Outcome:
    job_id: str
    revision: int
    action: str  # rerun | close | fail
    reason: str
    new_revision: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


class Reconciler:
    def __init__(self, jobs: JobStore, store: ObjectStore, events: EventWriter, policy: Policy,
                 probe: Callable[[], Backlog], gateway_started: Callable[[], float | None]) -> None:
        self.jobs, self.store, self.events, self.policy = jobs, store, events, policy
        self.probe, self.gateway_started = probe, gateway_started

    async def judge(self, handed_off: frozenset[str] = frozenset()) -> list[tuple[InFlightJob, Action]]:
        """What one pass would do: each job in flight that needs an action, with it."""
        in_flight = await self.jobs.in_flight()
        if not in_flight:
            return []
        backlog = await asyncio.to_thread(self.probe)  # after the jobs were read: see backlog.py
        gateway = self.gateway_started()
        decided = []
        for job in in_flight:
            holding = tuple(backlog.holding(job.stream_id))
            stored = bool(job.object_key and not holding and await self._stored(job.object_key))
            action = decide(job, Facts(holding, stored, gateway, job.job_id in handed_off), self.policy)
            if action is not None:
                decided.append((job, action))
        return decided

    async def run_pass(self, handed_off: frozenset[str] = frozenset()) -> list[Outcome]:
        outcomes = []
        for job, action in await self.judge(handed_off):
            try:
                outcome = await self._act(job, action)
            except KafkaException as exc:  # the broker may be restarting (a rerun not published is stuck again
                # at the next pass, and run again)
                log.warning("reconciler could not act on a job", job_id=job.job_id, action=action.kind,
                            error=str(exc))
                continue
            if outcome is not None:
                log.warning("job reconciled", job_id=job.job_id, revision=job.revision, action=outcome.action,
                            reason=outcome.reason, new_revision=outcome.new_revision)
                outcomes.append(outcome)
        return outcomes

    async def _stored(self, key: str) -> bool:
        try:
            return await self.store.exists(key)
        except ValueError:  # a key the store refuses is no recording
            return False

    async def _act(self, job: InFlightJob, action: Action) -> Outcome | None:
        if action.kind == "rerun":
            return await self._rerun(job, action.reason)
        if action.kind == "close":
            return await self._close(job, action.reason)
        return await self._fail(job, action.reason)

    async def _publish(self, topic: str, event: Event) -> None:
        await asyncio.to_thread(self.events.publish, topic, event)

    async def _rerun(self, job: InFlightJob, reason: str) -> Outcome | None:
        row = await self.jobs.rerun(job.job_id, job.revision, job.model, job.options, reason, next_attempt=True)
        if row is None:
            return None
        revision = int(row["revision"])
        await self._publish(INGEST_REQUESTS, IngestRequest(
            stream_id=job.stream_id, job_id=job.job_id, revision=revision, object_key=str(job.object_key),
            filename=job.filename, content_type=job.content_type, size_bytes=job.size_bytes, options=job.options))
        await self._publish(JOBS_EVENTS, JobEvent(
            job_id=job.job_id, stream_id=job.stream_id, revision=revision, stage=STAGE, state="QUEUED",
            message=f"run again as revision {revision}: revision {job.revision} was {reason}",
            details={"previous_revision": str(job.revision), "attempt": str(row["attempt"]), "reason": reason}))
        return Outcome(job.job_id, job.revision, "rerun", reason, revision)

    async def _close(self, job: InFlightJob, reason: str) -> Outcome | None:
        archived = bool(job.object_key) and await self._stored(str(job.object_key))
        if not await self.jobs.mark_recovered(job.job_id, job.revision, audio_gone=not archived):
            return None
        await self._publish(chunk_lane(job.options, job.source), AudioChunk(
            stream_id=job.stream_id, job_id=job.job_id, revision=job.revision, seq=CLOSE_SEQ, start_sample=0,
            sample_rate=LIVE_RATES.get(job.source, 16000), channels=CLOSE_CHANNELS, data=b"", end_of_stream=True,
            source=job.source))
        await self._publish(JOBS_EVENTS, JobEvent(
            job_id=job.job_id, stream_id=job.stream_id, revision=job.revision, stage=STAGE, state="RUNNING",
            message=reason, details={"reason": reason}))
        return Outcome(job.job_id, job.revision, "close", reason)

    async def _fail(self, job: InFlightJob, reason: str) -> Outcome | None:
        if not await self.jobs.fail_in_flight(job.job_id, job.revision, reason, STAGE):
            return None
        await self._publish(JOBS_EVENTS, JobEvent(job_id=job.job_id, stream_id=job.stream_id, revision=job.revision,
                                                  stage=STAGE, state="FAILED", error=reason))
        return Outcome(job.job_id, job.revision, "fail", reason)
