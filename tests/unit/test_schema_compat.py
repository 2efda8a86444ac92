"""Every contract in schemas/avro must stay backward compatible with each version of it ever committed."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path

import fastavro
import pytest
from fastavro.utils import generate_many

from foundation.contracts import SCHEMA_DIR, contract_names
from tests.unit.schema_compat import incompatibilities

REPO = SCHEMA_DIR.parent.parent


def _history(path: Path) -> list[tuple[str, dict]]:
    rel = path.relative_to(REPO)
    try:
        revs = subprocess.run(["git", "log", "--format=%H", "--", str(rel)], cwd=REPO, capture_output=True,
                              text=True, check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        pytest.fail("git history is needed to check schema compatibility (a full clone)")
    out = []
    for rev in revs:
        shown = subprocess.run(["git", "show", f"{rev}:{rel}"], cwd=REPO, capture_output=True, text=True)
        if shown.returncode == 0:
            out.append((rev[:8], json.loads(shown.stdout)))
    return out


@pytest.mark.parametrize("name", contract_names())
def test_current_contract_reads_every_committed_version(name: str) -> None:
    path = SCHEMA_DIR / f"{name}.avsc"
    current = json.loads(path.read_text())
    fastavro.parse_schema(copy.deepcopy(current), named_schemas={})
    for rev, old in _history(path):
        problems = incompatibilities(current, old)
        assert not problems, f"{name}.avsc breaks backward compatibility with {rev}: {problems}"
        # and by data: events written with the old version decode with the current one
        writer = fastavro.parse_schema(copy.deepcopy(old), named_schemas={})
        reader = fastavro.parse_schema(copy.deepcopy(current), named_schemas={})
        import io

        for record in generate_many(writer, 20):
            buf = io.BytesIO()
            fastavro.schemaless_writer(buf, writer, record)
            buf.seek(0)
            fastavro.schemaless_reader(buf, writer, reader)


BASE = {"type": "record", "name": "E", "namespace": "t", "fields": [
    {"name": "id", "type": "string"},
    {"name": "n", "type": "int"},
    {"name": "kind", "type": {"type": "enum", "name": "K", "symbols": ["A", "B"]}},
    {"name": "words", "type": {"type": "array", "items": {"type": "record", "name": "W", "fields": [
        {"name": "w", "type": "string"}]}}},
]}


def _changed(fn) -> dict:  # type: ignore[no-untyped-def]
    new = copy.deepcopy(BASE)
    fn(new)
    return new


@pytest.mark.parametrize("change, expected", [
    (lambda s: s["fields"].append({"name": "x", "type": "string"}), "new field without a default"),
    (lambda s: s["fields"][1].update(type="string"), "type changed from int to string"),
    (lambda s: s["fields"][2]["type"].update(symbols=["A"]), "enum symbols removed"),
    (lambda s: s["fields"][3]["type"]["items"]["fields"][0].update(type="int"), "words[].w"),
    (lambda s: s.update(name="Renamed"), "record renamed"),
])
def test_checker_rejects_breaking_changes(change, expected) -> None:  # type: ignore[no-untyped-def]
    problems = incompatibilities(_changed(change), BASE)
    assert problems and any(expected in p for p in problems), problems


@pytest.mark.parametrize("change", [
    lambda s: s["fields"].append({"name": "x", "type": ["null", "string"], "default": None}),
    lambda s: s["fields"][1].update(type="long"),
    lambda s: s["fields"][2]["type"].update(symbols=["A", "B", "C"]),
    lambda s: s["fields"].pop(0),
    lambda s: s["fields"][1].update(type=["null", "int"]),
])
def test_checker_accepts_compatible_changes(change) -> None:  # type: ignore[no-untyped-def]
    assert incompatibilities(_changed(change), BASE) == []
