"""A stage hosted by faust-streaming instead of ``StageRunner``: for stateful, windowed aggregation, which is
what faust's agents and tables are for (docs/architecture.md, "Why not faust" says why the other stages are
not).

``FaustStageSpec`` declares such a stage in the registry like ``StageSpec`` declares the others: name, inputs,
outputs and the faust tables it keeps. From it derive the same things: the worker command, the consumer group
(the faust app id), one changelog topic per table (``state_topic("<group>.<table>")``, created with the other
topics; faust never creates one), the stack's worker process and its health check, and docs/stages.md.
``FaustWorker`` runs the stage's app in the worker process and reports readiness the way ``StageRunner``
does, for ``/health``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import faust

from foundation.logs import get_logger
from foundation.settings import Settings
from streams.kafka.topics import JOBS_EVENTS, dlq_name, stage_group, state_topic

log = get_logger(__name__)


class FaustStage(Protocol):
    """What a faust-hosted stage's ``build`` returns: its app, with agents and tables registered."""

    app: faust.App


@dataclass(frozen=True)
class FaustStageSpec:
    """A faust-hosted stage, declared once (see ``StageSpec`` for the fields they share)."""

    name: str
    doc: str
    inputs: tuple[str, ...]  # every topic its agents read
    outputs: tuple[str, ...]  # topics written besides the inputs' dead-letter topics
    tables: tuple[str, ...]  # its faust tables, each with a changelog topic (``table_topic``)
    build: Callable[[Settings], FaustStage]
    batch: int = 500  # events taken per poll (faust's broker_max_poll_records)

    @property
    def lanes(self) -> tuple[str, ...]:
        return ()  # no priority lanes: faust reads its inputs as they come

    @property
    def stateful(self) -> bool:
        return bool(self.tables)

    @property
    def group(self) -> str:
        return stage_group(self.name)

    @property
    def state_owners(self) -> tuple[str, ...]:
        """What owns a state changelog topic: ``<group>.<table>`` for every table."""
        return tuple(f"{self.group}.{table}" for table in self.tables)

    @property
    def changelogs(self) -> tuple[str, ...]:
        return tuple(state_topic(owner) for owner in self.state_owners)

    def table_topic(self, table: str) -> str:
        """The changelog topic of ``table`` (before the deployment's topic prefix)."""
        if table not in self.tables:
            raise KeyError(f"stage {self.name} declares no table {table!r} (tables: {', '.join(self.tables)})")
        return state_topic(f"{self.group}.{table}")

    @property
    def emits(self) -> frozenset[str]:
        return frozenset((*self.outputs, JOBS_EVENTS, *(dlq_name(t) for t in self.inputs)))

    def batch_size(self, _settings: Settings) -> int:
        return self.batch


class FaustWorker:
    """Runs a faust-hosted stage's app as this process's worker until SIGTERM. ``ready`` is set once its
    tables are recovered after the first assignment; ``partitions`` are the input partitions it holds."""

    def __init__(self, spec: FaustStageSpec, stage: FaustStage, settings: Settings) -> None:
        self.spec = spec
        self.stage = stage
        self.settings = settings
        self.ready = threading.Event()
        self.partitions: set[tuple[str, int]] = set()
        app = stage.app
        app.on_partitions_assigned.connect(self._assigned)
        app.on_partitions_revoked.connect(self._revoked)
        app.on_rebalance_complete.connect(self._recovered)

    # faust's signals call receivers as (sender, *args, signal=..., **kwargs)
    async def _assigned(self, _sender: Any, /, *args: Any, signal: Any = None, **_: Any) -> None:
        assigned: set[Any] = args[0]
        self.partitions |= {(tp.topic, tp.partition) for tp in assigned}
        log.info("partitions assigned", stage=self.spec.group, partitions=sorted(tp.partition for tp in assigned))

    async def _revoked(self, _sender: Any, /, *args: Any, signal: Any = None, **_: Any) -> None:
        revoked: set[Any] = args[0]
        self.partitions -= {(tp.topic, tp.partition) for tp in revoked}

    async def _recovered(self, _sender: Any, /, *_args: Any, signal: Any = None, **_: Any) -> None:
        if not self.ready.is_set():
            log.info("tables recovered; stage ready", stage=self.spec.group)
        self.ready.set()

    def run(self) -> None:
        worker = faust.Worker(self.stage.app, loglevel=self.settings.log_level.lower(), quiet=True,
                              override_logging=False, redirect_stdouts=False)
        try:
            worker.execute_from_commandline()
        except SystemExit as exc:
            if exc.code not in (0, None):
                raise
        finally:
            log.info("stage stopped", stage=self.spec.group)
