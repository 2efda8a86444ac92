"""Every pipeline stage, in data-flow order: the one list a stage is added to.

Each stage module declares its ``SPEC`` (``streams.runtime.stage.StageSpec``: name, inputs, outputs, lanes,
state, batch size, how it is built; or ``streams.runtime.faust_stage.FaustStageSpec`` for a stage hosted by
faust-streaming, with its tables); from this tuple derive the ``streamscribe worker`` names, the stack's
worker processes and their health checks, ``streamscribe status``, the state changelog topics created at
start, and ``docs/stages.md`` (``streamscribe stages --markdown``; a unit test checks it is current).
"""

from __future__ import annotations

from streams.kafka.topics import dlq_name
from streams.runtime.faust_stage import FaustStageSpec
from streams.runtime.stage import StageSpec
from streams.stages import analytics, asr, diarization, ingest, materializer, post, vad, webhooks

AnySpec = StageSpec | FaustStageSpec

STAGES: tuple[AnySpec, ...] = (
    ingest.SPEC,
    vad.SPEC,
    asr.SPEC,
    diarization.SPEC,
    post.SPEC,
    analytics.SPEC,
    materializer.SPEC,
    webhooks.SPEC,
)


class UnknownStage(KeyError):
    def __str__(self) -> str:
        return f"unknown stage {self.args[0]!r}; stages: {', '.join(names())}"


def names() -> tuple[str, ...]:
    return tuple(spec.name for spec in STAGES)


def spec_of(name: str) -> AnySpec:
    for spec in STAGES:
        if spec.name == name:
            return spec
    raise UnknownStage(name)


def state_groups() -> tuple[str, ...]:
    """What owns a state changelog topic (``topics.all_topics`` creates one each): the consumer groups of the
    stateful stages, and ``<group>.<table>`` for every table of a faust-hosted stage."""
    return tuple(owner for spec in STAGES for owner in spec.state_owners)


def _topics(topics: tuple[str, ...]) -> str:
    return ", ".join(f"`{t}`" for t in topics) or "—"


def _batch(spec: AnySpec) -> str:
    if isinstance(spec, FaustStageSpec):
        return f"{spec.batch} (faust)"
    if isinstance(spec.batch, int):
        return str(spec.batch)
    return f"`{(spec.batch.__doc__ or spec.batch.__name__).strip()}`"


def markdown() -> str:
    """docs/stages.md, generated from ``STAGES``."""
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
    for s in STAGES:
        lines.append(f"| `{s.name}` | `{s.group}` | {_topics(s.inputs)} | {_topics(s.lanes)} | {_topics(s.outputs)} "
                     f"| {_topics(s.changelogs)} | {_batch(s)} | {s.doc} |")
    dead = sorted({dlq_name(t) for s in STAGES for t in s.inputs})
    lines += ["", f"Dead-letter topics: {_topics(tuple(dead))}.", ""]
    return "\n".join(lines)
