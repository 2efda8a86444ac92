"""Credentials for browser WebSockets without putting them in the URL.

A browser cannot set ``Authorization`` on a WebSocket, and a token in the query string ends up in logs and
history. The one header a page can set is ``Sec-WebSocket-Protocol``, so a browser offers two subprotocols:

    new WebSocket(url, ["streamscribe", "bearer." + accessToken])

Before authentication, ``carry_token`` turns the ``bearer.`` entry into an ``Authorization: Bearer`` header
of the request (a header the client sent wins), and ``answer_subprotocol`` answers the handshake with
``streamscribe``, the subprotocol a browser requires to be selected when it offered some. Clients that offer
no subprotocol see no difference (``?access_token=`` keeps working for them).
"""

from __future__ import annotations

from aiohttp import web

from gateway.auth.middleware import Handler, authenticate

SUBPROTOCOL = "streamscribe"
TOKEN_PREFIX = "bearer."
OFFERED = "streamscribe_offered_subprotocol"


def offered_token(request: web.Request) -> str | None:
    """The token a WebSocket upgrade carries in ``Sec-WebSocket-Protocol``, if any."""
    if request.headers.get("Upgrade", "").lower() != "websocket":
        return None
    for entry in request.headers.get("Sec-WebSocket-Protocol", "").split(","):
        entry = entry.strip()
        if entry.startswith(TOKEN_PREFIX) and len(entry) > len(TOKEN_PREFIX):
            return entry[len(TOKEN_PREFIX):]
    return None


@web.middleware
async def carry_token(request: web.Request, handler: Handler) -> web.StreamResponse:
    token = offered_token(request)
    if token is not None:
        # the token leaves the subprotocol list, so nothing downstream (the handshake's logs) sees it
        headers = {**request.headers, "Sec-WebSocket-Protocol": SUBPROTOCOL}
        if "Authorization" not in request.headers:
            headers["Authorization"] = f"Bearer {token}"
        request = request.clone(headers=headers)
        request[OFFERED] = True
    return await handler(request)


async def answer_subprotocol(request: web.Request, response: web.StreamResponse) -> None:
    if response.status == 101 and request.get(OFFERED) and "Sec-WebSocket-Protocol" not in response.headers:
        response.headers["Sec-WebSocket-Protocol"] = SUBPROTOCOL


def install(app: web.Application) -> None:
    """Run ``carry_token`` just before authentication, and answer the subprotocol on upgrades."""
    middlewares = list(app.middlewares)
    app.middlewares.insert(middlewares.index(authenticate) if authenticate in middlewares else 0, carry_token)
    app.on_response_prepare.append(answer_subprotocol)
