"""Errors as RFC 9457 ``application/problem+json``: raised problems, the router's and aiohttp's own errors, and
failures nobody foresaw (a 500 whose detail names no internals; the log has the traceback under the request's
id, which the response carries in ``X-Request-ID``)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from foundation.logs import get_logger

log = get_logger(__name__)

PROBLEM_TYPE = "application/problem+json"
STARTED = web.RequestKey("response_started", bool)


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
            answer = problem(exc.status, exc.reason, exc.text or exc.reason)
            for name, value in exc.headers.items():  # Allow on a 405, for one
                if name not in ("Content-Type", "Content-Length"):
                    answer.headers[name] = value
            return answer
        raise
    except Exception:
        log.exception("request failed", method=request.method, path=request.path)
        if request.get(STARTED):  # headers are sent already: aiohttp ends the connection
            raise
        return problem(500, "Internal Server Error", "the server could not answer this request; the id in "
                                                     "X-Request-ID finds it in the gateway's log")


async def mark_started(request: web.Request, _response: web.StreamResponse) -> None:
    """Remember that a response has started (a stream, a WebSocket): an error after that cannot be answered."""
    request[STARTED] = True

