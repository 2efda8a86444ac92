"""Errors as RFC 9457 ``application/problem+json``."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

PROBLEM_TYPE = "application/problem+json"


def problem(status: int, title: str, detail: str, **extra: Any) -> web.Response:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return web.Response(status=status, text=json.dumps(body), content_type=PROBLEM_TYPE)


class Problem(web.HTTPException):
    """Raise from a handler to answer with a problem document."""

    def __init__(self, status: int, title: str, detail: str, **extra: Any) -> None:
        self.status_code = status
        super().__init__(text=json.dumps({"type": "about:blank", "title": title, "status": status,
                                          "detail": detail, **extra}),
                         content_type=PROBLEM_TYPE)


@web.middleware
async def problem_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except Problem:
        raise
    except web.HTTPException as exc:
        if exc.status >= 400 and exc.content_type != PROBLEM_TYPE:
            return problem(exc.status, exc.reason, exc.text or exc.reason)
        raise


async def json_object(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object; anything else is a 400 problem."""
    try:
        body = await request.json()
    except ValueError:
        raise Problem(400, "Bad Request", "the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise Problem(400, "Bad Request", "the body must be a JSON object")
    if _has_nul(body):  # PostgreSQL stores no NUL in text or jsonb: refuse it here, not with a server error
        raise Problem(400, "Bad Request", "text in the body may not contain NUL characters")
    return body


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False
