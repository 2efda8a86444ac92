"""Request parameters every feature reads the same way: text PostgreSQL can hold, ISO times, list limits and
the opaque cursors of keyset-paginated lists."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from gateway.problems import Problem


def text_param(value: str | None, name: str) -> str | None:
    """A text filter as PostgreSQL can compare it: None when empty; 400 when it holds a NUL character or is
    not valid Unicode (neither can be in a text column)."""
    if not value:
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise Problem(400, "Bad Request", f"{name} is not valid UTF-8") from None
    if "\x00" in value:
        raise Problem(400, "Bad Request", f"{name} must not contain NUL characters")
    return value


def parse_time(value: Any, name: str) -> datetime | None:
    """An ISO 8601 time with a time zone (query parameter or JSON field); empty is None; else a 400."""
    if value in (None, ""):
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise Problem(400, "Bad Request", f"{name} must be an ISO 8601 time") from None
    if parsed.tzinfo is None:
        raise Problem(400, "Bad Request", f"{name} must carry a time zone (e.g. 2026-11-26T10:00:00Z)")
    return parsed


def parse_limit(query: Mapping[str, str], default: int = 50, maximum: int = 200) -> int:
    """``?limit=``, clamped to [1, maximum]; a 400 when it is not an integer."""
    try:
        return min(maximum, max(1, int(query.get("limit", str(default)))))
    except ValueError:
        raise Problem(400, "Bad Request", "limit must be an integer") from None


def encode_cursor(created_at: str, item_id: str) -> str:
    """The cursor after an item of a list ordered by (created_at, id) descending."""
    return base64.urlsafe_b64encode(json.dumps([created_at, item_id]).encode()).decode()


def next_cursor(items: list[dict[str, Any]], limit: int, id_field: str) -> str | None:
    """The cursor of the page after ``items`` (fetched with ``limit + 1``), or None when this was the last."""
    if len(items) <= limit:
        return None
    last = items[limit - 1]
    return encode_cursor(last["created_at"], last[id_field])


def decode_cursor(value: str) -> tuple[datetime, str]:
    try:
        at, item_id = json.loads(base64.urlsafe_b64decode(value.encode()))
        return datetime.fromisoformat(at), text_param(str(item_id), "cursor") or ""
    except (ValueError, TypeError):
        raise Problem(400, "Bad Request", "cursor is not one this API returned") from None
