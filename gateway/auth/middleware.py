"""Authentication, authorization (from the routes' declared access, ``gateway.auth.permissions``), rate
limiting and security headers for every request."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from gateway.auth.accounts import principal_for_key, principal_for_user
from gateway.auth.credentials import KEY_PREFIX, TokenError, decode_access
from gateway.auth.permissions import access_for
from gateway.auth.principal import Principal
from gateway.auth.ratelimit import RateLimiter
from gateway.problems import Problem
from gateway.refs import IDENTITY

PRINCIPAL = "principal"
LIMITER = web.AppKey("limiter", RateLimiter)
JWT_SECRET = web.AppKey("jwt_secret", str)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    # Browsers cannot set headers on a WebSocket; telephony platforms put credentials in the URL.
    if request.headers.get("Upgrade", "").lower() == "websocket":
        return request.query.get("access_token") or request.query.get("key")
    return None


def _unauthorized(detail: str) -> Problem:
    problem = Problem(401, "Unauthorized", detail)
    problem.headers["WWW-Authenticate"] = 'Bearer realm="streamscribe"'
    return problem


async def resolve(request: web.Request, token: str) -> Principal:
    if token.startswith(KEY_PREFIX + "_"):
        principal = await principal_for_key(request.app[IDENTITY], token)
        if principal is None:
            raise _unauthorized("unknown or revoked API key")
        return principal
    try:
        claims = decode_access(request.app[JWT_SECRET], token)
    except TokenError as exc:
        raise _unauthorized(f"invalid access token: {exc}") from None
    user = await request.app[IDENTITY].user(claims["sub"])
    if user is None or user["disabled"]:  # deleted or disabled accounts lose access at once, not at expiry
        raise _unauthorized("the account no longer exists or is disabled")
    return principal_for_user(user)


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Who calls (401 without valid credentials), whether the route lets them (403, from its declared access),
    and whether they are within their rate (429); public routes, CORS preflights and paths no route matches (the
    router answers those 404 or 405) pass without credentials."""
    access = access_for(request)
    if request.method == "OPTIONS" or access is None or access.public:
        return await handler(request)
    token = _bearer(request)
    if token is None:
        raise _unauthorized("send Authorization: Bearer <access token or API key>")
    principal = await resolve(request, token)
    wait = request.app[LIMITER].take(principal.actor)
    if wait > 0:
        problem = Problem(429, "Too Many Requests", f"rate limit exceeded; retry in {wait:.1f} s")
        problem.headers["Retry-After"] = str(max(1, math.ceil(wait)))
        raise problem
    missing = [scope for scope in access.scopes if not principal.can(scope)]
    if missing:
        what = "act as the platform administrator" if missing[0] == "*" else missing[0]
        raise Problem(403, "Forbidden", f"{_who(principal)} may not {what}", missing_scopes=missing)
    request[PRINCIPAL] = principal
    # every log line of this request names who made it (cleared by the observability middleware)
    structlog.contextvars.bind_contextvars(org_id=principal.org_id, actor=principal.actor)
    return await handler(request)


def _who(principal: Principal) -> str:
    if principal.key_scopes:
        return f"an API key with role {principal.role} and scopes {', '.join(sorted(principal.key_scopes))}"
    return f"role {principal.role}"


def caller(request: web.Request) -> Principal:
    """The authenticated caller of a route that is not public."""
    principal: Principal = request[PRINCIPAL]
    return principal


SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "microphone=(self), camera=(), geolocation=()",
    "Content-Security-Policy": "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' "
                               "'unsafe-inline'; connect-src 'self' ws: wss:; frame-ancestors 'none'",
}


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.secure:
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
