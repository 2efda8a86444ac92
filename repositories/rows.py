"""Small helpers for turning rows into the JSON the API answers with."""

from __future__ import annotations

from datetime import datetime


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def changed_one(status: str) -> bool:
    """Whether a command tag such as ``UPDATE 1`` reports exactly one row."""
    return bool(status.endswith(" 1"))
