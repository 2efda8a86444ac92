"""``GET /v1/models``: the speech recognition models this deployment has installed, and its default."""

from __future__ import annotations

from aiohttp import web

from gateway.auth.middleware import require
from gateway.refs import MODELS, SETTINGS


async def list_models(request: web.Request) -> web.Response:
    require(request, "jobs:read")
    models = request.app[MODELS]
    return web.json_response({"default": request.app[SETTINGS].asr.default_model,
                              "models": [m.to_json() for m in models.list()]})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/models", list_models)
