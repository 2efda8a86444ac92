"""Request parameters every feature reads the same way: ISO times, list limits and the opaque cursors of
keyset-paginated lists. (What every parameter may be, text PostgreSQL can store included, is checked before
handlers run: ``gateway.validation``.)"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from gateway.problems import Problem
from gateway.validation import check_text, rfc3339


def parse_time(value: Any, name: str) -> datetime | None:
    """An RFC 3339 time with a time zone (query parameter or JSON field), as the document's ``date-time``
    format says; absent is None; else a 400."""
    if value is None:
        return None
    parsed = rfc3339(str(value))
    if parsed is None:
        raise Problem(400, "Bad Request", f"{name} must be an RFC 3339 time with a time zone, e.g. "
                                          "2026-11-26T10:00:00Z")
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
        return datetime.fromisoformat(at), check_text(str(item_id), "query.cursor")
    except (ValueError, TypeError):
        raise Problem(400, "Bad Request", "cursor is not one this API returned") from None
