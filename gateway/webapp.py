"""The web app: its page at ``/`` and its assets under ``/static/app/``, built from ``web/`` by ``make setup``
(esbuild, from the committed package-lock.json) into ``gateway/static/app/``. Everything it loads comes from
the gateway, so it works offline.

The page and the assets are sent with a strict Content-Security-Policy: scripts only from the gateway (no
inline script, no eval), styles from the gateway plus the one ``<style>`` element the waveform player puts in
its shadow root, allowed by a per-response nonce; no plugins, no framing, no foreign connections.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from aiohttp import web

from foundation.logs import get_logger
from gateway.auth import ws_subprotocol
from gateway.auth.permissions import PUBLIC, add_route, add_static
from gateway.problems import Problem

log = get_logger(__name__)

APP_DIR = Path(__file__).parent / "static" / "app"
PREFIX = "/static/app"
NONCE_MARK = "__CSP_NONCE__"


def content_security_policy(nonce: str | None = None) -> str:
    styles = f"'self' 'nonce-{nonce}'" if nonce else "'self'"
    return "; ".join((
        "default-src 'self'", "script-src 'self'", f"style-src {styles}", "img-src 'self' data: blob:",
        "media-src 'self' blob:", "connect-src 'self'", "worker-src 'self'", "font-src 'self'",
        "object-src 'none'", "base-uri 'none'", "form-action 'self'", "frame-ancestors 'none'"))


async def index(_request: web.Request) -> web.Response:
    """The app's single page (its views are routed in the browser, after ``#``)."""
    page = APP_DIR / "index.html"
    if not page.is_file():
        raise Problem(503, "Service Unavailable", "the web app is not built: run `make setup` (it builds web/ "
                                                  "into gateway/static/app/)")
    nonce = secrets.token_urlsafe(18)
    return web.Response(text=page.read_text().replace(NONCE_MARK, nonce), content_type="text/html",
                        headers={"Content-Security-Policy": content_security_policy(nonce),
                                 "Cache-Control": "no-store"})


async def asset_headers(request: web.Request, response: web.StreamResponse) -> None:
    """The app's assets: the same policy (without a nonce), revalidated on every load (ETag/Last-Modified)."""
    if request.path.startswith(PREFIX + "/"):
        response.headers["Content-Security-Policy"] = content_security_policy()
        response.headers["Cache-Control"] = "no-cache"


def add_routes(app: web.Application) -> None:
    add_route(app, "GET", "/", index, PUBLIC)
    app.on_response_prepare.append(asset_headers)
    ws_subprotocol.install(app)  # the app's WebSockets authenticate without a token in the URL
    add_static(app, PREFIX, APP_DIR)
    if not APP_DIR.is_dir():
        log.warning("the web app is not built; run make setup", directory=str(APP_DIR))
