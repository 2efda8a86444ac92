"""Every contract in schemas/avro has exactly one typed builder with the same fields in the same order, and a
built event is a valid record of its contract."""

from __future__ import annotations

import io
import json
from dataclasses import MISSING, fields
from typing import Any

import fastavro
import pytest

from foundation.contracts import SCHEMA_DIR, contract_names, parsed_schema
from foundation.events import BUILDERS, AudioChunk, DeadLetter, Event, IngestRequest, SpeakerProfile


def test_one_builder_per_contract() -> None:
    assert sorted(BUILDERS) == contract_names()


@pytest.mark.parametrize("name", contract_names())
def test_builder_fields_match_the_contract(name: str) -> None:
    contract = json.loads((SCHEMA_DIR / f"{name}.avsc").read_text())
    builder = BUILDERS[name]
    assert [f.name for f in fields(builder)] == [f["name"] for f in contract["fields"]], (
        f"{builder.__name__} and {name}.avsc list different fields: a new field goes in both, in the same place")
    for f, spec in zip(fields(builder), contract["fields"], strict=True):
        has_default = f.default is not MISSING or f.default_factory is not MISSING
        if "default" in spec:
            assert has_default, f"{name}.{f.name} has a default in the contract but must be given to the builder"


def _minimal(builder: type[Event]) -> Event:
    """The builder filled with a plausible value for every required field."""
    samples: dict[str, Any] = {"str": "x", "int": 1, "float": 1.5, "bytes": b"\x00\x01", "list[str]": ["k"]}
    kinds = {"kind": {"speech_segment": "FINAL", "asr_segment": "FINAL", "speaker_turns": "FINAL",
                      "transcript_event": "SEGMENT"}, "state": {"job_event": "RUNNING"},
             "granularity": {"analytics_window": "HOUR"}}
    values = {}
    for f in fields(builder):
        if f.default is not MISSING or f.default_factory is not MISSING:
            continue
        values[f.name] = kinds[f.name][builder.SCHEMA] if f.name in kinds else samples[str(f.type)]
    return builder(**values)


@pytest.mark.parametrize("name", contract_names())
def test_a_built_event_is_a_valid_record(name: str) -> None:
    record = _minimal(BUILDERS[name]).to_record()
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, parsed_schema(name), record)
    buf.seek(0)
    decoded = fastavro.schemaless_reader(buf, parsed_schema(name), parsed_schema(name))
    assert isinstance(decoded, dict) and list(decoded) == list(record)


def test_partition_keys() -> None:
    assert IngestRequest(stream_id="s1", job_id="j", object_key="k").partition_key == "s1"
    assert AudioChunk(stream_id="s2", seq=0, start_sample=0, sample_rate=16000, channels=1,
                      data=b"").partition_key == "s2"
    assert SpeakerProfile(profile_id="p1").partition_key == "p1"
    assert DeadLetter(topic="t", partition=0, offset=1, key=b"orig", stage="vad", error_type="E",
                      error="e").partition_key == "orig"
    assert DeadLetter(topic="t", partition=0, offset=1, stage="vad", error_type="E", error="e").partition_key is None
