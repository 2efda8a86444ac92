"""The web app: ``/`` serves its single page (``gateway/static/index.html``)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

INDEX = Path(__file__).parent / "static" / "index.html"


async def index(_request: web.Request) -> web.StreamResponse:
    return web.FileResponse(INDEX)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", index)
