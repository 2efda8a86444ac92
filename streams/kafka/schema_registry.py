"""Schema registries: a Confluent-compatible one over HTTP in production, a file-backed one when embedded.

Both assign an integer id per distinct schema and remember which schemas each subject has had, so events
carry the Confluent wire format (magic byte 0, 4-byte schema id, Avro body) either way.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol


class SchemaRegistry(Protocol):
    def register(self, subject: str, schema: str) -> int: ...

    def schema_by_id(self, schema_id: int) -> str: ...


class FileSchemaRegistry:
    """Registry kept in one JSON file, shared by the processes of one embedded stack (fcntl-locked)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._ids: dict[tuple[str, str], int] = {}
        self._schemas: dict[int, str] = {}

    def _with_file(self, mutate: Callable[[dict[str, Any]], None] | None) -> dict[str, Any]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX if mutate else fcntl.LOCK_SH)
            fh.seek(0)
            text = fh.read()
            data: dict[str, Any] = json.loads(text) if text.strip() else {"schemas": {}, "subjects": {}}
            if mutate:
                mutate(data)
                fh.seek(0)
                fh.truncate()
                fh.write(json.dumps(data, indent=1))
                fh.flush()
                os.fsync(fh.fileno())
            return data

    def register(self, subject: str, schema: str) -> int:
        key = (subject, schema)
        if key not in self._ids:

            def add(data: dict[str, Any]) -> None:
                known = {text: int(i) for i, text in data["schemas"].items()}
                sid = known.get(schema)
                if sid is None:
                    sid = max(map(int, data["schemas"]), default=0) + 1
                    data["schemas"][str(sid)] = schema
                versions = data["subjects"].setdefault(subject, [])
                if sid not in versions:
                    versions.append(sid)

            data = self._with_file(add)
            sid = next(int(i) for i, text in data["schemas"].items() if text == schema)
            self._ids[key] = sid
            self._schemas[sid] = schema
        return self._ids[key]

    def schema_by_id(self, schema_id: int) -> str:
        if schema_id not in self._schemas:
            text = self._with_file(None)["schemas"].get(str(schema_id))
            if text is None:
                raise KeyError(f"unknown schema id {schema_id}")
            self._schemas[schema_id] = text
        return self._schemas[schema_id]


class HttpSchemaRegistry:
    """A Confluent-compatible Schema Registry (Confluent, Apicurio, Redpanda, Karapace) via confluent-kafka."""

    def __init__(self, url: str) -> None:
        # confluent-kafka's registry client pulls in an HTTP and auth stack (about 0.25 s of imports) that only a
        # deployment with a registry URL needs: imported here, not by every process
        from confluent_kafka.schema_registry import SchemaRegistryClient

        self._client = SchemaRegistryClient({"url": url})
        self._ids: dict[tuple[str, str], int] = {}

    def register(self, subject: str, schema: str) -> int:
        from confluent_kafka.schema_registry import Schema  # see __init__: the optional registry client

        key = (subject, schema)
        if key not in self._ids:
            self._ids[key] = self._client.register_schema(subject, Schema(schema, "AVRO"))
        return self._ids[key]

    def schema_by_id(self, schema_id: int) -> str:
        return str(self._client.get_schema(schema_id).schema_str)


def make_registry(url: str, file_path: Path) -> SchemaRegistry:
    return HttpSchemaRegistry(url) if url else FileSchemaRegistry(file_path)
