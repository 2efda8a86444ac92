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
    return body
