"""Loads the Avro contracts in ``schemas/avro`` (the single source of truth for what flows on a topic)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import fastavro

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas" / "avro"


@cache
def schema_text(name: str) -> str:
    """Canonical JSON text of ``schemas/avro/<name>.avsc``."""
    raw = json.loads((SCHEMA_DIR / f"{name}.avsc").read_text())
    return json.dumps(raw, separators=(",", ":"), sort_keys=True)


@cache
def parsed_schema(name: str) -> Any:
    return fastavro.parse_schema(json.loads(schema_text(name)), named_schemas={})


def contract_names() -> list[str]:
    return sorted(p.stem for p in SCHEMA_DIR.glob("*.avsc"))
