"""Identity endpoints: tokens, the caller, organisations, users, API keys and the audit log."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from gateway.auth import accounts
from gateway.auth.audit import audit
from gateway.auth.credentials import encode_access
from gateway.auth.middleware import JWT_SECRET, caller
from gateway.auth.permissions import PLATFORM, PUBLIC, SIGNED_IN, Access, add_route, needs
from gateway.auth.principal import ROLE_SCOPES, ROLES, Principal
from gateway.auth.throttle import LoginThrottle
from gateway.problems import Problem
from gateway.refs import AUDIT, IDENTITY, SETTINGS
from gateway.validation import json_object
from repositories.db import AlreadyExists, MissingReference

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
ROLE_RANK = {"admin": 3, "org_admin": 2, "user": 1, "api_client": 0}
THROTTLE = web.AppKey("login_throttle", LoginThrottle)


def _too_many(detail: str, retry_after: str) -> Problem:
    problem = Problem(429, "Too Many Requests", detail)
    problem.headers["Retry-After"] = retry_after
    return problem


def _str(body: dict[str, Any], name: str, *, max_len: int = 200, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > max_len:
        raise Problem(400, "Bad Request", f"{name} must be a non-empty string of at most {max_len} characters")
    return value.strip()


async def _tokens(request: web.Request, user: dict[str, Any], family: str | None = None) -> dict[str, Any]:
    auth = request.app[SETTINGS].auth
    access = encode_access(request.app[JWT_SECRET], {"sub": user["id"], "org": user["org_id"], "role": user["role"]},
                           auth.access_ttl_s)
    refresh = await accounts.issue_refresh(request.app[IDENTITY], user["id"], auth.refresh_ttl_s, family)
    return {"access_token": access, "token_type": "Bearer", "expires_in": auth.access_ttl_s, "refresh_token": refresh}


async def token(request: web.Request) -> web.Response:
    """POST /v1/auth/token {"email", "password"} -> access and refresh tokens; failures are throttled per
    account and per client address (429 with Retry-After)."""
    body = await json_object(request)
    email, password = _str(body, "email") or "", _str(body, "password", max_len=500) or ""
    throttle, address = request.app[THROTTLE], request.remote or "unknown"
    wait = throttle.begin(email, address)
    if wait > 0:
        raise _too_many(f"too many failed logins; retry in {wait:.0f} s", throttle.retry_after(wait))
    try:
        user = await accounts.login(request.app[IDENTITY], email, password)
    except accounts.HashingBusy:
        throttle.abandoned(email, address)
        raise _too_many("too many logins are being checked; retry in a moment", "1") from None
    except BaseException:
        throttle.abandoned(email, address)
        raise
    if user is None:
        throttle.failed(email, address)
        await audit(request, None, "auth.failed", f"user:{email}")
        raise Problem(401, "Unauthorized", "wrong email or password")
    throttle.succeeded(email, address)
    return web.json_response(await _tokens(request, user))


async def refresh(request: web.Request) -> web.Response:
    """POST /v1/auth/refresh {"refresh_token"} -> a new pair; the old refresh token is spent."""
    body = await json_object(request)
    identity = request.app[IDENTITY]
    used = await accounts.use_refresh(identity, _str(body, "refresh_token", max_len=500) or "")
    if used is None:
        raise Problem(401, "Unauthorized", "the refresh token is invalid, expired or already used")
    user = await identity.user(used[0])
    if user is None or user["disabled"]:
        raise Problem(401, "Unauthorized", "the account no longer exists")
    return web.json_response(await _tokens(request, user, family=used[1]))


async def logout(request: web.Request) -> web.Response:
    body = await json_object(request)
    await accounts.revoke_refresh(request.app[IDENTITY], _str(body, "refresh_token", max_len=500) or "")
    return web.Response(status=204)


async def me(request: web.Request) -> web.Response:
    p = caller(request)
    scopes = sorted(p.key_scopes or ROLE_SCOPES.get(p.role, frozenset()))
    return web.json_response({"org_id": p.org_id, "role": p.role, "user_id": p.user_id, "key_id": p.key_id,
                              "scopes": scopes})


# -- organisations ---------------------------------------------------------------------------------
async def create_org(request: web.Request) -> web.Response:
    p = caller(request)
    body = await json_object(request)
    retention = body.get("retention_days")
    if retention is not None and (not isinstance(retention, int) or retention < 1):
        raise Problem(400, "Bad Request", "retention_days must be a positive integer or null")
    org = await request.app[IDENTITY].create_org(_str(body, "name") or "", retention)
    await audit(request, p, "org.create", f"org:{org['id']}", org_id=org["id"])
    return web.json_response(org, status=201)


async def list_orgs(request: web.Request) -> web.Response:
    p = caller(request)
    identity = request.app[IDENTITY]
    orgs = await identity.orgs() if p.is_admin else [o for o in [await identity.org(p.org_id)] if o]
    return web.json_response({"organizations": orgs})


async def update_org(request: web.Request) -> web.Response:
    p = caller(request)
    org_id = request.match_info["org_id"]
    if not p.sees(org_id) or await request.app[IDENTITY].org(org_id) is None:
        raise Problem(404, "Not Found", f"no organization {org_id!r}")
    body = await json_object(request)
    retention = body.get("retention_days")
    if retention is not None and (not isinstance(retention, int) or retention < 1):
        raise Problem(400, "Bad Request", "retention_days must be a positive integer or null")
    await request.app[IDENTITY].set_retention(org_id, retention)
    await audit(request, p, "org.retention", f"org:{org_id}", {"retention_days": retention}, org_id=org_id)
    return web.json_response(await request.app[IDENTITY].org(org_id))


def _target_org(p: Principal, body: dict[str, Any]) -> str:
    org_id = body.get("org_id") or p.org_id
    if not isinstance(org_id, str) or not p.sees(org_id):
        raise Problem(403, "Forbidden", "you may only act within your own organization")
    return org_id


def _grantable(p: Principal, role: str) -> None:
    if role not in ROLES:
        raise Problem(400, "Bad Request", f"role must be one of {', '.join(ROLES)}")
    if ROLE_RANK[role] > ROLE_RANK[p.role]:
        raise Problem(403, "Forbidden", f"a {p.role} cannot grant the role {role}")


# -- users -----------------------------------------------------------------------------------------
async def create_user(request: web.Request) -> web.Response:
    p = caller(request)
    body = await json_object(request)
    org_id = _target_org(p, body)
    email = _str(body, "email") or ""
    if not EMAIL.match(email):
        raise Problem(400, "Bad Request", "email is not an email address")
    password = _str(body, "password", max_len=500) or ""
    if len(password) < 10:
        raise Problem(400, "Bad Request", "password must have at least 10 characters")
    role = str(body.get("role") or "user")
    if role == "api_client":
        raise Problem(400, "Bad Request", "api_client is a role for API keys, not users")
    _grantable(p, role)
    try:
        user = await accounts.create_user(request.app[IDENTITY], org_id, email, password, role)
    except accounts.HashingBusy:
        raise _too_many("too many passwords are being hashed; retry in a moment", "1") from None
    except AlreadyExists:
        raise Problem(409, "Conflict", f"a user with email {email} exists") from None
    except MissingReference:
        raise Problem(404, "Not Found", f"no organization {org_id!r}") from None
    await audit(request, p, "user.create", f"user:{user['id']}", {"role": role}, org_id=org_id)
    return web.json_response(user, status=201)


async def list_users(request: web.Request) -> web.Response:
    p = caller(request)
    return web.json_response({"users": await request.app[IDENTITY].users(None if p.is_admin else p.org_id)})


async def delete_user(request: web.Request) -> web.Response:
    p = caller(request)
    user = await request.app[IDENTITY].user(request.match_info["user_id"])
    if user is None or not p.sees(user["org_id"]):
        raise Problem(404, "Not Found", "no such user")
    if await request.app[IDENTITY].is_last_admin(user["id"]):
        raise Problem(409, "Conflict", "this is the only administrator; create another admin before removing it")
    await request.app[IDENTITY].delete_user(user["id"])
    await audit(request, p, "user.delete", f"user:{user['id']}", org_id=user["org_id"])
    return web.Response(status=204)


# -- API keys --------------------------------------------------------------------------------------
async def create_key(request: web.Request) -> web.Response:
    """POST /v1/keys {"name", "role" (default api_client), "scopes": [...], "org_id"} -> the key, shown once."""
    p = caller(request)
    body = await json_object(request)
    org_id = _target_org(p, body)
    role = str(body.get("role") or "api_client")
    _grantable(p, role)
    scopes = body.get("scopes") or []
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        raise Problem(400, "Bad Request", "scopes must be a list of strings")
    unknown = set(scopes) - set().union(*ROLE_SCOPES.values())
    if unknown:
        raise Problem(400, "Bad Request", f"unknown scopes: {', '.join(sorted(unknown))}")
    try:
        secret, key = await accounts.create_key(request.app[IDENTITY], org_id=org_id, name=_str(body, "name") or "",
                                                role=role, scopes=scopes, user_id=p.user_id)
    except MissingReference:
        raise Problem(404, "Not Found", f"no organization {org_id!r}") from None
    await audit(request, p, "key.create", f"key:{key['id']}", {"role": role, "scopes": scopes},
                org_id=org_id)
    return web.json_response({**key, "key": secret}, status=201)


async def list_keys(request: web.Request) -> web.Response:
    p = caller(request)
    return web.json_response({"keys": await request.app[IDENTITY].keys(None if p.is_admin else p.org_id)})


async def revoke_key(request: web.Request) -> web.Response:
    p = caller(request)
    key = await request.app[IDENTITY].key(request.match_info["key_id"])
    if key is None or not p.sees(key["org_id"]):
        raise Problem(404, "Not Found", "no such key")
    await request.app[IDENTITY].revoke_key(key["id"])
    await audit(request, p, "key.revoke", f"key:{key['id']}", org_id=key["org_id"])
    return web.Response(status=204)


async def audit_log(request: web.Request) -> web.Response:
    p = caller(request)
    try:
        limit = min(1000, max(1, int(request.query.get("limit", "100"))))
    except ValueError:
        raise Problem(400, "Bad Request", "limit must be an integer") from None
    entries = await request.app[AUDIT].entries(None if p.is_admin else p.org_id, limit)
    return web.json_response({"entries": entries})


async def _warm_up(_app: web.Application) -> None:
    await accounts.warm_up()


def add_routes(app: web.Application) -> None:
    auth = app[SETTINGS].auth
    app[THROTTLE] = LoginThrottle(free_per_account=auth.login_free_per_account,
                                  free_per_address=auth.login_free_per_address, backoff_s=auth.login_backoff_s,
                                  max_backoff_s=auth.login_max_backoff_s)
    app.on_startup.append(_warm_up)
    add_route(app, "POST", "/v1/auth/token", token, PUBLIC)
    add_route(app, "POST", "/v1/auth/refresh", refresh, PUBLIC)
    add_route(app, "POST", "/v1/auth/logout", logout, SIGNED_IN)
    add_route(app, "GET", "/v1/me", me, SIGNED_IN)
    add_route(app, "POST", "/v1/organizations", create_org, needs(PLATFORM))
    add_route(app, "GET", "/v1/organizations", list_orgs, Access(also="the caller's own organization; every one "
                                                                     "for the platform administrator"))
    add_route(app, "PATCH", "/v1/organizations/{org_id}", update_org, needs("org:manage"))
    add_route(app, "POST", "/v1/users", create_user, needs("users:manage", also="nobody grants a role above "
                                                                                 "their own"))
    add_route(app, "GET", "/v1/users", list_users, needs("users:manage"))
    add_route(app, "DELETE", "/v1/users/{user_id}", delete_user, needs("users:manage"))
    add_route(app, "POST", "/v1/keys", create_key, needs("keys:manage", also="nobody grants a role above their own"))
    add_route(app, "GET", "/v1/keys", list_keys, needs("keys:manage"))
    add_route(app, "DELETE", "/v1/keys/{key_id}", revoke_key, needs("keys:manage"))
    add_route(app, "GET", "/v1/audit", audit_log, needs("audit:read"))
