"""Loads the Avro contracts in ``schemas/avro`` (the single source of truth for what flows on a topic).

They are package data of the ``schemas`` package, read from wherever it is installed (the source tree, an
editable install, or a wheel in an image), never from a path relative to this file.
"""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import fastavro

SCHEMA_DIR = Path(str(files("schemas") / "avro"))


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
