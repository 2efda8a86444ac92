from __future__ import annotations

from pathlib import Path

import pytest

from foundation.events import JobEvent
from foundation.settings import KafkaSettings
from streams.kafka.schema_registry import FileSchemaRegistry
from streams.kafka.serde import AvroSerde, SerdeError
from streams.kafka.topics import JOBS_EVENTS, TRANSCRIPTS, all_topics, dlq_name, schema_of
from streams.runtime.state import StateStore

EVENT = JobEvent(job_id="j", stream_id="s", stage="vad", state="RUNNING", progress=0.5, at=1_700_000_000_000)


def test_wire_format_roundtrip_and_registry_shared_by_processes(tmp_path: Path) -> None:
    path = tmp_path / "registry.json"
    payload = AvroSerde(FileSchemaRegistry(path)).serialize(JOBS_EVENTS, EVENT)
    assert payload[0] == 0 and int.from_bytes(payload[1:5], "big") >= 1
    other = AvroSerde(FileSchemaRegistry(path))  # a second process reads the id from the same file
    decoded = other.deserialize(JOBS_EVENTS, payload)
    assert decoded.pop("at").timestamp() == EVENT.at / 1000  # timestamp-millis reads as a datetime
    assert decoded == {k: v for k, v in EVENT.to_record().items() if k != "at"}


def test_an_event_cannot_be_written_to_another_contracts_topic(tmp_path: Path) -> None:
    serde = AvroSerde(FileSchemaRegistry(tmp_path / "r.json"))
    with pytest.raises(TypeError, match="job_event"):
        serde.serialize(TRANSCRIPTS, EVENT)


@pytest.mark.parametrize("payload, message", [
    (None, "too short"),
    (b"{\"a\": 1}", "magic byte"),
    (b"\x00\x00\x00\x99\x99\x02", "unknown schema id"),
])
def test_malformed_payloads_raise_serde_error(tmp_path: Path, payload: bytes | None, message: str) -> None:
    serde = AvroSerde(FileSchemaRegistry(tmp_path / "r.json"))
    with pytest.raises(SerdeError, match=message):
        serde.deserialize(JOBS_EVENTS, payload)


def test_truncated_body_raises_serde_error(tmp_path: Path) -> None:
    serde = AvroSerde(FileSchemaRegistry(tmp_path / "r.json"))
    payload = serde.serialize(JOBS_EVENTS, EVENT)
    with pytest.raises(SerdeError, match="does not decode"):
        serde.deserialize(JOBS_EVENTS, payload[:9])


def test_catalogue_covers_dlqs_and_changelogs() -> None:
    names = dict(all_topics(KafkaSettings(topic_prefix="p."), ("g",)))
    assert "p.audio.chunks" in names and "p.audio.chunks.dlq" in names
    assert names["p.g.state"]["cleanup.policy"] == "compact"
    assert schema_of(dlq_name(JOBS_EVENTS)) == "dead_letter" and schema_of(JOBS_EVENTS) == "job_event"


def test_state_rollback_undoes_only_the_failed_record() -> None:
    store = StateStore("t.state", lambda: None, None)  # type: ignore[arg-type]
    store._tables[0] = {"a": b"committed"}
    store.begin()
    store.put(0, "a", b"first")
    store.end()
    store.begin()
    store.put(0, "a", b"second")
    store.put(0, "b", b"new")
    store.delete(0, "a")
    store.rollback()
    assert store.get(0, "a") == b"first" and store.get(0, "b") is None
    assert store.keys(0, "") == ["a"]
    with pytest.raises(RuntimeError, match="not assigned"):
        store.put(7, "x", b"")
