"""Every response names its request (``X-Request-ID``), errors included, and a failure nobody foresaw is a
problem document too. The real application, without its database: these requests never need it."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from foundation.settings import Settings
from gateway.app import create_app
from gateway.auth.permissions import PUBLIC, add_route

PLAIN = re.compile(r"[A-Za-z0-9._:-]{1,64}")


async def _boom(_request: web.Request) -> web.Response:
    raise RuntimeError("a bug with a secret inside: hunter2")


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = create_app(Settings(home=tmp_path))
    app.cleanup_ctx.clear()
    app.on_startup.clear()
    app.on_shutdown.clear()
    add_route(app, "GET", "/boom", _boom, PUBLIC)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


@pytest.mark.parametrize("method, path, status", [("GET", "/health", 200), ("GET", "/no/such/route", 404),
                                                  ("GET", "/v1/me", 401), ("DELETE", "/health", 405),
                                                  ("GET", "/v1/jobs/%00", 400), ("GET", "/boom", 500)])
async def test_every_answer_names_its_request(client: TestClient[web.Request, web.Application], method: str,
                                              path: str, status: int) -> None:
    for given, kept in (("support-ticket.42:a_B", True), ("x" * 65, False), ("x" * 5000, False),
                        ("has space", False), ("ünïcode", False), (None, False)):
        headers = {"X-Request-ID": given} if given else {}
        resp = await client.request(method, path, headers=headers)
        assert resp.status == status
        rid = resp.headers.get("X-Request-ID", "")
        assert PLAIN.fullmatch(rid), (path, given, rid)
        assert (rid == given) == kept, (path, given, rid)
        if status >= 400:
            assert resp.content_type == "application/problem+json", (path, resp.content_type)


async def test_a_failure_nobody_foresaw_is_a_problem_that_tells_nothing_inside(
        client: TestClient[web.Request, web.Application]) -> None:
    resp = await client.get("/boom")
    body = await resp.json(content_type=None)
    assert resp.status == 500 and body["title"] == "Internal Server Error"
    assert "hunter2" not in await resp.text() and "X-Request-ID" in body["detail"]
    assert resp.headers.get("Allow") is None
    not_allowed = await client.delete("/health")
    assert not_allowed.status == 405 and "GET" in not_allowed.headers["Allow"]
