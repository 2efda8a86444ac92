"""Avro serialization in the Confluent wire format: magic byte 0, big-endian schema id, Avro binary body.

Readers resolve the writer's schema (looked up by id) against the current contract, so events written
under any backward-compatible earlier version of a schema stay readable.
"""

from __future__ import annotations

import io
import json
import struct
from typing import Any

import fastavro

from foundation.contracts import parsed_schema, schema_text
from foundation.events import Event
from streams.kafka.schema_registry import SchemaRegistry
from streams.kafka.topics import schema_of

MAGIC = 0


class SerdeError(ValueError):
    """The bytes on a topic are not a valid event for its contract."""


class AvroSerde:
    def __init__(self, registry: SchemaRegistry, topic_prefix: str = "") -> None:
        self.registry = registry
        self.prefix = topic_prefix
        self._writer_ids: dict[str, int] = {}
        self._writer_schemas: dict[int, Any] = {}

    def _contract(self, topic: str) -> str:
        return schema_of(topic.removeprefix(self.prefix))

    def serialize(self, topic: str, event: Event) -> bytes:
        """``event`` in the Confluent wire format, under the schema of ``topic``'s contract (which must be the
        event's own: an event written to the wrong topic is a programming error, raised here)."""
        name = self._contract(topic)
        if name != event.SCHEMA:
            raise TypeError(f"{type(event).__name__} ({event.SCHEMA}) cannot be written to {topic}, whose "
                            f"contract is {name}")
        record = event.to_record()
        sid = self._writer_ids.get(topic)
        if sid is None:
            sid = self.registry.register(f"{topic}-value", schema_text(name))
            self._writer_ids[topic] = sid
        buf = io.BytesIO()
        buf.write(struct.pack(">bI", MAGIC, sid))
        fastavro.schemaless_writer(buf, parsed_schema(name), record)
        return buf.getvalue()

    def deserialize(self, topic: str, payload: bytes | None) -> dict[str, Any]:
        if payload is None or len(payload) < 5:
            raise SerdeError(f"event on {topic} is {0 if payload is None else len(payload)} bytes: too short")
        magic, sid = struct.unpack(">bI", payload[:5])
        if magic != MAGIC:
            raise SerdeError(f"event on {topic} has magic byte {magic}, expected {MAGIC} (Confluent wire format)")
        writer = self._writer_schemas.get(sid)
        if writer is None:
            try:
                writer = fastavro.parse_schema(json.loads(self.registry.schema_by_id(sid)), named_schemas={})
            except KeyError as exc:
                raise SerdeError(f"event on {topic} names unknown schema id {sid}") from exc
            self._writer_schemas[sid] = writer
        try:
            record = fastavro.schemaless_reader(
                io.BytesIO(payload[5:]), writer, parsed_schema(self._contract(topic))
            )
        except Exception as exc:  # fastavro raises several types for corrupt bodies
            raise SerdeError(f"event on {topic} does not decode with schema {sid}: {exc}") from exc
        if not isinstance(record, dict):
            raise SerdeError(f"event on {topic} is not a record")
        return record
