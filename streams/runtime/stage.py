"""What a pipeline stage is and what it sees: its declaration (``StageSpec``), the records it handles and the
context it emits events and keeps per-stream state through. A stage never touches Kafka; ``StageRunner``
(``streams.runtime.runner``) runs it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from foundation.events import Event, JobEvent, JobState
from foundation.settings import Settings
from streams.kafka.topics import JOBS_EVENTS, dlq_name, stage_group, state_topic
from streams.runtime.state import StateStore


@dataclass(frozen=True)
class Record:
    topic: str  # logical name, without the deployment's topic prefix
    partition: int
    offset: int
    key: str | None
    value: dict[str, Any]
    timestamp_ms: int


class UndeclaredOutput(ValueError):
    """A stage emitted on a topic its ``StageSpec`` does not list among its outputs."""


class Context:
    """What a stage may do while handling records: emit events and read/write its per-stream state."""

    def __init__(self, stage: str, state: StateStore | None,
                 producer: Callable[[list[tuple[str, Event]]], None] | None = None,
                 outputs: frozenset[str] | None = None) -> None:
        self.stage = stage  # the stage's consumer group: what its job events and dead letters name
        self._state = state
        self._producer = producer
        self._outputs = outputs  # None: anything (tests of one stage)
        self.outbox: list[tuple[str, Event]] = []
        self.drained = 0  # events handed to the producer before the end of the batch
        self.partition = -1
        self.release_requested = False  # give freed memory back once the batch is committed

    def release_memory_after_commit(self) -> None:
        """Ask the runner to return the freed heap to the system once this batch's outputs are committed (after a
        step that built large temporary arrays), not before: a release takes up to a second in a worker holding
        models, and the batch's events would wait for it."""
        self.release_requested = True

    def emit(self, topic: str, event: Event) -> None:
        """Publish ``event`` on ``topic`` once the batch is handled (keyed by ``event.partition_key``)."""
        if self._outputs is not None and topic not in self._outputs:
            raise UndeclaredOutput(f"{self.stage} emitted on {topic!r}, which its StageSpec does not declare "
                                   f"(outputs: {', '.join(sorted(self._outputs))})")
        self.outbox.append((topic, event))

    def drain(self) -> None:
        """Hand emitted events to the producer now (still confirmed before the commit). For stages that
        emit a lot per input, like ingest; such events can no longer be rolled back if the record fails."""
        if self._producer is not None and self.outbox:
            self._producer(self.outbox)
            self.drained += len(self.outbox)
            self.outbox = []

    def job_event(self, stream: dict[str, Any], state: JobState, *, progress: float | None = None,
                  message: str | None = None, error: str | None = None,
                  details: dict[str, str] | None = None) -> None:
        # a stream produced straight to Kafka has no job id: its job is the stream's (the materializer makes it)
        job_id = stream.get("job_id") or stream["stream_id"]
        self.emit(JOBS_EVENTS, JobEvent(
            job_id=job_id, stream_id=stream["stream_id"], revision=stream.get("revision", 1), stage=self.stage,
            state=state, progress=progress, message=message, error=error, details=details or {}))

    # state of the partition the current record came from
    def get(self, key: str) -> bytes | None:
        return self._store().get(self.partition, key)

    def put(self, key: str, value: bytes | None) -> None:
        self._store().put(self.partition, key, value)

    def keys(self, prefix: str) -> list[str]:
        return self._store().keys(self.partition, prefix)

    def _store(self) -> StateStore:
        if self._state is None:
            raise RuntimeError(f"stage {self.stage} declared no state")
        return self._state


class Stage(Protocol):
    transient_errors: tuple[type[BaseException], ...]

    def handle(self, record: Record, ctx: Context) -> None: ...

    def handle_batch(self, records: Sequence[Record], ctx: Context) -> bool:
        """Handle a whole batch at once if the stage can do better than one by one; False to decline."""
        ...

    def forget(self, record: Record) -> None:
        """Drop any in-memory cache derived from the record's stream (its handling failed)."""
        ...

    def close(self) -> None: ...


class BaseStage:
    """Defaults for the optional parts of the Stage protocol."""

    transient_errors: tuple[type[BaseException], ...] = ()

    def handle_batch(self, records: Sequence[Record], ctx: Context) -> bool:
        return False

    def forget(self, record: Record) -> None:
        pass

    def close(self) -> None:
        pass


BatchSize = int | Callable[[Settings], int]


@dataclass(frozen=True)
class StageSpec:
    """A stage, declared once: everything else (its worker command, consumer group, changelog topic, the
    stack's worker processes, health, status and docs/stages.md) derives from this declaration, collected in
    ``streams.stages.registry``."""

    name: str  # the stage's one name: ``streamscribe worker NAME``, health, settings keys (LaneSettings)
    doc: str  # one line for docs/stages.md and ``streamscribe stages``
    inputs: tuple[str, ...]  # topics read, logical names
    outputs: tuple[str, ...]  # topics written besides jobs.events and the inputs' dead-letter topics
    build: Callable[[Settings], Stage]
    lanes: tuple[str, ...] = ()  # inputs read with strict priority, highest first (streams.runtime.priority)
    stateful: bool = False  # keeps per-stream state in a changelog topic
    batch: BatchSize = 200  # events taken per batch, or how settings give it
    # bytes of consumed input held back to take batches fairly across streams (streams.runtime.fairness), or how
    # settings give it; 0: first come first served
    lookahead: BatchSize = 0
    # input records smaller than this cost the stage nothing (a stream's END, no audio): the fair pool hands them
    # out with the record before them, beyond a batch's limit
    free_bytes: int = 0

    def __post_init__(self) -> None:
        if not set(self.lanes) <= set(self.inputs):
            raise ValueError(f"stage {self.name}: lanes {self.lanes} are not all inputs")

    @property
    def group(self) -> str:
        """The consumer group (before the deployment's topic prefix); also names its job events, dead letters
        and metrics."""
        return stage_group(self.name)

    @property
    def changelog(self) -> str | None:
        return state_topic(self.group) if self.stateful else None

    @property
    def state_owners(self) -> tuple[str, ...]:
        """What owns a state changelog topic: the stage's group, if it keeps state."""
        return (self.group,) if self.stateful else ()

    @property
    def changelogs(self) -> tuple[str, ...]:
        return (self.changelog,) if self.changelog else ()

    @property
    def emits(self) -> frozenset[str]:
        """Every topic the stage may write: its outputs, job events, and the dead letters of its inputs."""
        return frozenset((*self.outputs, JOBS_EVENTS, *(dlq_name(t) for t in self.inputs)))

    def batch_size(self, settings: Settings) -> int:
        return self.batch if isinstance(self.batch, int) else self.batch(settings)

    def lookahead_bytes(self, settings: Settings) -> int:
        return self.lookahead if isinstance(self.lookahead, int) else self.lookahead(settings)
