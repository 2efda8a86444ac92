"""``GET /v1/models``: the speech recognition models this deployment has installed, and its default."""

from __future__ import annotations

from aiohttp import web

from gateway.auth.permissions import add_route, needs
from gateway.refs import MODELS, SETTINGS


async def list_models(request: web.Request) -> web.Response:
    models = request.app[MODELS]
    return web.json_response({"default": request.app[SETTINGS].asr.default_model,
                              "models": [m.to_json() for m in models.list()]})


def add_routes(app: web.Application) -> None:
    add_route(app, "GET", "/v1/models", list_models, needs("jobs:read"))
