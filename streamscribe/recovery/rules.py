"""What the reconciler does with one job in flight: leave it, run it again, close a cut live session, or fail it
with the reason. Pure decisions over facts the reconciler gathered (``streamscribe.recovery.reconciler``).

- A job whose events are still on Kafka, unread by some stage, is waiting its turn: it is left alone, however
  long it waits (a backlog is not a stall; a stage that is down is restarted by its supervisor).
- A job with nothing left for it on Kafka and no stage report for ``stall_after_s`` is stuck: nothing will move
  it on. It runs again from its stored recording as a new revision, until ``max_attempts`` runs of the request
  were made; then, or when the recording is gone, it fails with the reason. A job ``down`` handed over
  (``<home>/inflight.json``) is judged at the first look after ``up``, without waiting for ``stall_after_s``.
- A live session (a WebSocket or a phone call) is cut when the gateway that held it stopped before the client
  ended it (or, where no supervisor says when that was, after ``live_idle_s`` without progress). It is closed
  in place: the stream's end is published, so what was heard is finalized and the job completes as far as it
  was heard. Its audio archive is written only when a session ends, so it has none to run again from; if the
  close does not finish it either, it fails with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from foundation.settings import RecoverySettings
from repositories.jobs import InFlightJob

LIVE_SOURCES = frozenset({"live", "telephony"})

ActionKind = Literal["rerun", "close", "fail"]


@dataclass(frozen=True)
class Policy:
    stall_after_s: float
    max_attempts: int
    live_idle_s: float

    @classmethod
    def from_settings(cls, settings: RecoverySettings) -> Policy:
        return cls(settings.stall_after_s, settings.max_attempts, settings.live_idle_s)


@dataclass(frozen=True)
class Facts:
    """What the reconciler learned about a job beyond its row."""

    holding: tuple[str, ...]  # ``group:topic`` of the stages that still have unread events of the job
    audio_stored: bool  # its recording is in object storage
    gateway_started: float | None = None  # when the gateway now running started (epoch s), if known
    handed_off: bool = False  # ``down`` listed it as in flight


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    reason: str


def decide(job: InFlightJob, facts: Facts, policy: Policy) -> Action | None:
    if job.source in LIVE_SOURCES:
        return _live(job, facts, policy)
    if facts.holding or (job.idle_s < policy.stall_after_s and not facts.handed_off):
        return None
    why = (f"no progress for {job.idle_s:.0f} s" + (" (in flight when the stack stopped)" if facts.handed_off else "")
           + ", and no stage has anything left to read for it")
    if not (job.object_key and facts.audio_stored):
        what = ("it came straight to Kafka, so there is no stored recording to run it again from"
                if job.source == "producer" else "its stored recording is gone (deleted or expired), so it cannot "
                "run again")
        return Action("fail", f"stuck: {why}; {what}")
    if job.attempt >= policy.max_attempts:
        return Action("fail", f"stuck: {why}; given up after {job.attempt} runs (at most {policy.max_attempts})")
    return Action("rerun", f"stuck: {why}; running it again from its stored recording (run {job.attempt + 1} "
                  f"of at most {policy.max_attempts})")


def _live(job: InFlightJob, facts: Facts, policy: Policy) -> Action | None:
    if job.recovered:  # closed once already: it finishes from what the pipeline holds, or it cannot
        if facts.holding or job.idle_s < policy.stall_after_s:
            return None
        return Action("fail", f"the live session was cut before it ended and could not be finalized (no progress "
                      f"for {job.idle_s:.0f} s after it was closed; the audio that was on its way is lost)")
    gateway_gone = facts.gateway_started is not None and job.started_epoch < facts.gateway_started
    if not gateway_gone and job.idle_s < policy.live_idle_s:
        return None
    cause = "its gateway stopped" if gateway_gone else f"nothing was heard from it for {job.idle_s:.0f} s"
    return Action("close", f"the live session was cut before the client ended it ({cause}); what was heard is "
                  "finalized")
