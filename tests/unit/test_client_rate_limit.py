"""The API client waits out a 429 as the gateway's Retry-After asks, sends an upload whole again on each try,
and raises what is not a rate limit (or a rate limit that does not end)."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from streamscribe import client as client_module
from streamscribe.client import ApiError, Client


async def _server(handler: web.RequestHandler, method: str, path: str) -> TestServer:
    app = web.Application()
    app.router.add_route(method, path, handler)
    server = TestServer(app)
    await server.start_server()
    return server


async def test_an_upload_limited_twice_is_sent_whole_the_third_time(tmp_path: Path) -> None:
    audio = tmp_path / "a.wav"
    audio.write_bytes(b"RIFF" + bytes(range(256)) * 64)
    seen: list[tuple[bytes, str]] = []

    async def jobs(request: web.Request) -> web.Response:
        form = await request.post()
        part = form["file"]
        assert isinstance(part, web.FileField)
        seen.append((part.file.read(), str(form["model"])))
        if len(seen) < 3:
            return web.json_response({"detail": "rate limit exceeded"}, status=429, headers={"Retry-After": "0"})
        return web.json_response({"job_id": "j1"}, status=201)

    server = await _server(jobs, "POST", "/v1/jobs")
    try:
        async with Client(str(server.make_url("/")), token="k") as api:
            assert await api.submit(audio, model="tiny.en") == {"job_id": "j1"}
    finally:
        await server.close()
    assert seen == [(audio.read_bytes(), "tiny.en")] * 3


async def test_other_errors_are_raised_at_once_and_an_endless_limit_in_the_end(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    async def job(request: web.Request) -> web.Response:
        calls.append(request.match_info["id"])
        if request.match_info["id"] == "gone":
            return web.json_response({"detail": "no such job"}, status=404)
        return web.json_response({"detail": "rate limit exceeded"}, status=429, headers={"Retry-After": "0"})

    monkeypatch.setattr(client_module, "RATE_LIMIT_RETRIES", 2)
    server = await _server(job, "GET", "/v1/jobs/{id}")
    try:
        async with Client(str(server.make_url("/")), token="k") as api:
            with pytest.raises(ApiError) as gone:
                await api.job("gone")
            with pytest.raises(ApiError) as limited:
                await api.job("busy")
    finally:
        await server.close()
    assert (gone.value.status, limited.value.status) == (404, 429)
    assert calls == ["gone", "busy", "busy", "busy"]
