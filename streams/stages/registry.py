"""Every pipeline stage, in data-flow order: the one list a stage is added to (``MODULES``).

Each stage module declares its ``SPEC`` (``streams.runtime.stage.StageSpec``: name, inputs, outputs, lanes,
state, batch size, how it is built; or ``streams.runtime.faust_stage.FaustStageSpec`` for a stage hosted by
faust-streaming, with its tables); from these derive the ``streamscribe worker`` names, the stack's
worker processes and their health checks, ``streamscribe status``, the state changelog topics created at
start, and ``docs/stages.md`` (``streamscribe stages --markdown``; a unit test checks it is current).

A stage's module is imported when its spec is first asked for: a worker loads its own stage and the libraries it
needs, not every stage's (diarization's SciPy, recognition's CTranslate2 ...: about 2 CPU seconds a worker, paid by
every worker at every start of a stack), and the supervisor starts them knowing only their names.
"""

from __future__ import annotations

import functools
import importlib

from streams.kafka.topics import dlq_name
from streams.runtime.faust_stage import FaustStageSpec
from streams.runtime.stage import StageSpec

AnySpec = StageSpec | FaustStageSpec

# each stage's name, and the module that declares its SPEC
MODULES: dict[str, str] = {
    "ingest": "streams.stages.ingest",
    "vad": "streams.stages.vad",
    "asr": "streams.stages.asr",
    "diarization": "streams.stages.diarization",
    "post": "streams.stages.post",
    "analytics": "streams.stages.analytics",
    "materializer": "streams.stages.materializer",
    "webhooks": "streams.stages.webhooks",
}


class UnknownStage(KeyError):
    def __str__(self) -> str:
        return f"unknown stage {self.args[0]!r}; stages: {', '.join(names())}"


def names() -> tuple[str, ...]:
    return tuple(MODULES)


def spec_of(name: str) -> AnySpec:
    """The spec of one stage, importing that stage's module only."""
    if name not in MODULES:
        raise UnknownStage(name)
    spec: AnySpec = importlib.import_module(MODULES[name]).SPEC
    return spec


@functools.cache
def stages() -> tuple[AnySpec, ...]:
    """Every stage's spec, in data-flow order (imports every stage's module)."""
    return tuple(spec_of(name) for name in MODULES)


def state_groups() -> tuple[str, ...]:
    """What owns a state changelog topic (``topics.all_topics`` creates one each): the consumer groups of the
    stateful stages, and ``<group>.<table>`` for every table of a faust-hosted stage."""
    return tuple(owner for spec in stages() for owner in spec.state_owners)


def _topics(topics: tuple[str, ...]) -> str:
    return ", ".join(f"`{t}`" for t in topics) or "—"


def _batch(spec: AnySpec) -> str:
    if isinstance(spec, FaustStageSpec):
        return f"{spec.batch} (faust)"
    if isinstance(spec.batch, int):
        return str(spec.batch)
    return f"`{(spec.batch.__doc__ or spec.batch.__name__).strip()}`"


def markdown() -> str:
    """docs/stages.md, generated from ``stages()``."""
    lines = [
        "# Pipeline stages",
        "",
        "Generated from `streams/stages/registry.py` by `streamscribe stages --markdown > docs/stages.md`;",
        "`tests/unit/test_registry.py` fails when this file and the registry differ. Every stage runs as",
        "`streamscribe worker NAME` in the consumer group shown (after `STREAMSCRIBE_KAFKA__TOPIC_PREFIX`), reports",
        "on `jobs.events` and dead-letters what it cannot handle to `<input>.dlq`. Lanes are read with strict",
        "priority, highest first (docs/events.md). A stage marked (faust) is a faust-streaming app with one",
        "changelog topic per table (docs/analytics.md).",
        "",
        "| stage | consumer group | reads | lanes | writes | state changelog | batch | what it does |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in stages():
        lines.append(f"| `{s.name}` | `{s.group}` | {_topics(s.inputs)} | {_topics(s.lanes)} | {_topics(s.outputs)} "
                     f"| {_topics(s.changelogs)} | {_batch(s)} | {s.doc} |")
    dead = sorted({dlq_name(t) for s in stages() for t in s.inputs})
    lines += ["", f"Dead-letter topics: {_topics(tuple(dead))}.", ""]
    return "\n".join(lines)
