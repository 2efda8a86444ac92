"""Webhook endpoints: an organization's subscriptions to job events, their delivery log, and test pings.

    POST   /v1/webhooks                        {url, events, secret?, description?, active?, org_id? (admin)}
    GET    /v1/webhooks                        ?org_id= (admin)
    GET    /v1/webhooks/{id}
    PATCH  /v1/webhooks/{id}                   {url?, events?, active?, description?}
    DELETE /v1/webhooks/{id}
    GET    /v1/webhooks/{id}/deliveries        ?limit=&status=&event_type=&job_id=
    POST   /v1/webhooks/{id}/deliveries/{delivery_id}/redeliver
    POST   /v1/webhooks/{id}/test              a signed ``ping`` event, through the same delivery loop

All need ``webhooks:manage`` (org_admin, admin). A subscription of another organization answers 404, like
one that does not exist. The secret is returned once, by the POST that creates the subscription; it is kept
encrypted (``connectors.webhooks.sealing``) and shown afterwards only as a hint. Deliveries are made by the
webhooks worker (``streams/stages/webhooks.py``); the contract for receivers is docs/webhooks.md.
"""

from __future__ import annotations

import re
import uuid
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from connectors.storage.crypto import Keyring
from connectors.storage.factory import parse_keyring
from connectors.webhooks.events import EVENT_TYPES, PING, ping
from connectors.webhooks.sealing import generate_secret, hint, seal
from connectors.webhooks.targets import TargetError, check_url
from gateway.auth.audit import audit
from gateway.auth.middleware import caller
from gateway.auth.permissions import add_route, needs
from gateway.auth.principal import Principal
from gateway.params import parse_limit
from gateway.problems import Problem
from gateway.refs import SETTINGS, WEBHOOKS
from gateway.validation import json_object
from repositories.db import MissingReference
from repositories.webhooks import WebhookStore

SCOPE = "webhooks:manage"
KEYRING = web.AppKey("webhook_keyring", Keyring)
STATUSES = ("pending", "delivered", "failed", "gave_up")
MIN_SECRET, MAX_SECRET = 16, 256
MAX_DESCRIPTION = 500
PATCHABLE = ("url", "events", "active", "description")
SUBSCRIPTION_ID = re.compile(r"wh_[0-9a-f]{24}")
DELIVERY_ID = re.compile(r"dlv_[0-9a-f]{24}")


def _store(request: web.Request) -> WebhookStore:
    return request.app[WEBHOOKS]


def _url(request: web.Request, value: Any) -> str:
    try:
        return check_url(value, allow_private=request.app[SETTINGS].webhooks.allow_private_targets)
    except TargetError as exc:
        raise Problem(400, "Bad Request", f"url: {exc}") from None


def _events(value: Any) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(e, str) for e in value):
        raise Problem(400, "Bad Request", f"events must be a non-empty list of: {', '.join(EVENT_TYPES)}",
                      event_types=list(EVENT_TYPES))
    unknown = sorted(set(value) - set(EVENT_TYPES))
    if unknown:
        raise Problem(400, "Bad Request", f"unknown event types: {', '.join(unknown)}; known: "
                      f"{', '.join(EVENT_TYPES)}", event_types=list(EVENT_TYPES))
    return list(dict.fromkeys(value))


def _description(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_DESCRIPTION:
        raise Problem(400, "Bad Request", f"description must be a string of at most {MAX_DESCRIPTION} characters")
    return value.strip()


def _secret(value: Any) -> str:
    if value is None:
        return generate_secret()
    if (not isinstance(value, str) or not MIN_SECRET <= len(value) <= MAX_SECRET
            or not all(33 <= ord(c) < 127 for c in value)):
        raise Problem(400, "Bad Request", f"secret must be {MIN_SECRET} to {MAX_SECRET} printable ASCII characters "
                      "without spaces (or omitted: one is generated)")
    return value


async def _visible(request: web.Request) -> tuple[Principal, dict[str, Any]]:
    """The caller and the subscription named in the path, if the caller may manage webhooks and the
    subscription is in its organization; else 403 or 404."""
    principal = caller(request)
    sid = request.match_info["subscription_id"]
    sub = await _store(request).subscription(sid) if SUBSCRIPTION_ID.fullmatch(sid) else None
    if sub is None or not principal.sees(sub["org_id"]):
        raise Problem(404, "Not Found", f"no webhook subscription {sid!r}")
    return principal, sub


async def create_subscription(request: web.Request) -> web.Response:
    p = caller(request)
    body = await json_object(request)
    org_id = body.get("org_id") or p.org_id
    if not isinstance(org_id, str) or not p.sees(org_id):
        raise Problem(403, "Forbidden", "you may only act within your own organization")
    url = _url(request, body.get("url"))
    events = _events(body.get("events"))
    secret = _secret(body.get("secret"))
    description = _description(body.get("description"))
    active = body.get("active", True)
    if not isinstance(active, bool):
        raise Problem(400, "Bad Request", "active must be true or false")
    store = _store(request)
    limit = request.app[SETTINGS].webhooks.max_subscriptions_per_org
    if await store.count(org_id) >= limit:
        raise Problem(409, "Conflict", f"the organization has {limit} webhook subscriptions, the most allowed")
    sid = "wh_" + uuid.uuid4().hex[:24]
    try:
        sub = await store.create(subscription_id=sid, org_id=org_id, url=url, events=events,
                                 sealed=seal(request.app[KEYRING], secret, sid), hint=hint(secret),
                                 description=description, created_by=p.actor)
    except MissingReference:
        raise Problem(404, "Not Found", f"no organization {org_id!r}") from None
    if not active:
        sub = await store.update(sid, active=False) or sub
    await audit(request, p, "webhook.create", f"webhook:{sid}",
                {"host": urlsplit(url).hostname, "events": events}, org_id=org_id)
    return web.json_response({**sub, "secret": secret}, status=201, headers={"Location": f"/v1/webhooks/{sid}"})


async def list_subscriptions(request: web.Request) -> web.Response:
    p = caller(request)
    org = request.query.get("org_id") if p.is_admin else p.org_id
    return web.json_response({"webhooks": await _store(request).subscriptions(org)})


async def get_subscription(request: web.Request) -> web.Response:
    _, sub = await _visible(request)
    return web.json_response(sub)


async def update_subscription(request: web.Request) -> web.Response:
    p, sub = await _visible(request)
    body = await json_object(request)
    unknown = sorted(set(body) - set(PATCHABLE))
    if unknown:
        raise Problem(400, "Bad Request", f"cannot change {', '.join(unknown)}; changeable: {', '.join(PATCHABLE)}"
                      " (to change the secret, create a new subscription and delete this one)")
    if not body:
        raise Problem(400, "Bad Request", f"nothing to change; changeable: {', '.join(PATCHABLE)}")
    active = body.get("active")
    if active is not None and not isinstance(active, bool):
        raise Problem(400, "Bad Request", "active must be true or false")
    updated = await _store(request).update(
        sub["id"], url=_url(request, body["url"]) if "url" in body else None,
        events=_events(body["events"]) if "events" in body else None, active=active,
        description=_description(body.get("description")))
    if updated is None:
        raise Problem(404, "Not Found", f"no webhook subscription {sub['id']!r}")
    await audit(request, p, "webhook.update", f"webhook:{sub['id']}", {"fields": sorted(body)},
                org_id=sub["org_id"])
    return web.json_response(updated)


async def delete_subscription(request: web.Request) -> web.Response:
    p, sub = await _visible(request)
    await _store(request).delete(sub["id"])
    await audit(request, p, "webhook.delete", f"webhook:{sub['id']}", {"host": urlsplit(sub["url"]).hostname},
                org_id=sub["org_id"])
    return web.Response(status=204)


async def list_deliveries(request: web.Request) -> web.Response:
    _, sub = await _visible(request)
    q = request.query
    limit = parse_limit(q)
    status = q.get("status")
    if status is not None and status not in STATUSES:
        raise Problem(400, "Bad Request", f"status must be one of {', '.join(STATUSES)}")
    event_type = q.get("event_type")
    if event_type is not None and event_type not in (*EVENT_TYPES, PING):
        raise Problem(400, "Bad Request", f"event_type must be one of {', '.join((*EVENT_TYPES, PING))}")
    deliveries = await _store(request).deliveries(sub["id"], limit=limit, status=status, event_type=event_type,
                                                  job_id=request.query.get("job_id"))
    return web.json_response({"subscription_id": sub["id"], "deliveries": deliveries})


async def redeliver(request: web.Request) -> web.Response:
    _, sub = await _visible(request)
    delivery_id = request.match_info["delivery_id"]
    if not DELIVERY_ID.fullmatch(delivery_id) or not await _store(request).redeliver(sub["id"], delivery_id):
        raise Problem(404, "Not Found", f"no delivery {delivery_id!r} for webhook subscription {sub['id']!r}")
    return web.json_response({"delivery_id": delivery_id, "status": "pending"}, status=202)


async def send_test(request: web.Request) -> web.Response:
    _, sub = await _visible(request)
    if not sub["active"]:
        raise Problem(409, "Conflict", "the subscription is inactive; activate it to send a test event")
    event_id, payload = ping(sub["id"], sub["org_id"])
    delivery_id = await _store(request).enqueue(sub["id"], sub["org_id"], event_id, PING, payload)
    return web.json_response({"subscription_id": sub["id"], "delivery_id": delivery_id, "event_id": event_id,
                              "status": "pending", "links": {"deliveries": f"/v1/webhooks/{sub['id']}/deliveries"}},
                             status=202)


# -- OpenAPI (merged into /openapi.json at startup, when the gateway serves one) -----------------------------
def _schema_problem() -> dict[str, Any]:
    return {"type": "object", "properties": {"type": {"type": "string"}, "title": {"type": "string"},
                                             "status": {"type": "integer"}, "detail": {"type": "string"}}}


def _responses(ok_code: int, ok: dict[str, Any] | None, *errors: int) -> dict[str, Any]:
    out: dict[str, Any] = {str(ok_code): {"description": "OK"} if ok is None else
                           {"description": "OK", "content": {"application/json": {"schema": ok}}}}
    for code in (*errors, 401, 429):
        out[str(code)] = {"description": "Error",
                          "content": {"application/problem+json": {"schema": _schema_problem()}}}
    return out


def openapi_paths() -> dict[str, Any]:
    s, b, i = {"type": "string"}, {"type": "boolean"}, {"type": "integer"}
    nullable_s, nullable_i = {"type": ["string", "null"]}, {"type": ["integer", "null"]}
    types = {"type": "array", "minItems": 1, "items": {"enum": list(EVENT_TYPES)}}
    sub_props: dict[str, Any] = {
        "id": s, "org_id": s, "url": s, "events": {"type": "array", "items": s}, "active": b,
        "description": nullable_s, "secret_hint": s, "created_by": nullable_s, "created_at": s, "updated_at": s}
    sub = {"type": "object", "properties": sub_props}
    created = {"type": "object", "properties": {**sub_props, "secret": s}}
    delivery = {"type": "object", "properties": {
        "id": s, "subscription_id": s, "event_id": s, "event_type": s, "job_id": nullable_s, "revision": nullable_i,
        "status": {"enum": list(STATUSES)}, "attempts": i, "last_status": nullable_i, "last_error": nullable_s,
        "next_attempt_at": nullable_s, "created_at": s, "updated_at": s, "delivered_at": nullable_s,
        "payload": {"type": "object"}, "attempt_log": {"type": "array", "items": {"type": "object"}}}}
    sid = {"name": "subscription_id", "in": "path", "required": True,
           "schema": {"type": "string", "pattern": "^wh_[0-9a-f]{24}$"}}
    did = {"name": "delivery_id", "in": "path", "required": True,
           "schema": {"type": "string", "pattern": "^dlv_[0-9a-f]{24}$"}}

    def q(name: str, schema: dict[str, Any]) -> dict[str, Any]:
        return {"name": name, "in": "query", "required": False, "schema": schema}

    def body(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False,
                                  "minProperties": 1}
        if required:
            schema["required"] = required
        return {"required": True, "content": {"application/json": {"schema": schema}}}

    def op(summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {"summary": summary, "tags": ["webhooks"], "responses": responses, **extra}

    ident = {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,200}$"}
    editable = {"url": {"type": "string", "format": "uri", "maxLength": 2048}, "events": types, "active": b,
                "description": {"type": ["string", "null"], "maxLength": MAX_DESCRIPTION}}
    secret = {"type": "string", "pattern": f"^[!-~]{{{MIN_SECRET},{MAX_SECRET}}}$",
              "description": "printable ASCII without spaces; omitted: one is generated"}
    return {
        "/v1/webhooks": {
            "post": op("Subscribe an endpoint to job events (the secret is returned once; docs/webhooks.md)",
                       _responses(201, created, 400, 403, 404, 409, 413),
                       requestBody=body({**editable, "secret": secret, "org_id": ident}, ["url", "events"])),
            "get": op("The organization's webhook subscriptions", _responses(200, {"type": "object", "properties": {
                "webhooks": {"type": "array", "items": sub}}}, 400, 403), parameters=[q("org_id", ident)]),
        },
        "/v1/webhooks/{subscription_id}": {
            "get": op("A webhook subscription", _responses(200, sub, 403, 404), parameters=[sid]),
            "patch": op("Change a webhook subscription's url, events, active flag or description",
                        _responses(200, sub, 400, 403, 404, 413), parameters=[sid], requestBody=body(editable)),
            "delete": op("Delete a webhook subscription and its delivery log", _responses(204, None, 403, 404),
                         parameters=[sid]),
        },
        "/v1/webhooks/{subscription_id}/deliveries": {
            "get": op("The delivery log: every delivery with its attempts, newest first", _responses(
                200, {"type": "object", "properties": {"subscription_id": s,
                                                       "deliveries": {"type": "array", "items": delivery}}},
                400, 403, 404), parameters=[sid, q("limit", {"type": "integer", "minimum": 1, "maximum": 200}),
                                            q("status", {"enum": list(STATUSES)}),
                                            q("event_type", {"enum": [*EVENT_TYPES, PING]}), q("job_id", ident)]),
        },
        "/v1/webhooks/{subscription_id}/deliveries/{delivery_id}/redeliver": {
            "post": op("Send a delivery once more, now", _responses(202, {"type": "object"}, 403, 404),
                       parameters=[sid, did]),
        },
        "/v1/webhooks/{subscription_id}/test": {
            "post": op("Send a signed ping event to the subscription", _responses(202, {"type": "object"}, 403, 404,
                                                                                   409), parameters=[sid]),
        },
    }


def add_routes(app: web.Application) -> None:
    app[KEYRING] = parse_keyring(*app[SETTINGS].storage_keys())
    add_route(app, "POST", "/v1/webhooks", create_subscription, needs(SCOPE))
    add_route(app, "GET", "/v1/webhooks", list_subscriptions, needs(SCOPE))
    add_route(app, "GET", "/v1/webhooks/{subscription_id}", get_subscription, needs(SCOPE))
    add_route(app, "PATCH", "/v1/webhooks/{subscription_id}", update_subscription, needs(SCOPE))
    add_route(app, "DELETE", "/v1/webhooks/{subscription_id}", delete_subscription, needs(SCOPE))
    add_route(app, "GET", "/v1/webhooks/{subscription_id}/deliveries", list_deliveries, needs(SCOPE))
    add_route(app, "POST", "/v1/webhooks/{subscription_id}/deliveries/{delivery_id}/redeliver", redeliver, needs(SCOPE))
    add_route(app, "POST", "/v1/webhooks/{subscription_id}/test", send_test, needs(SCOPE))
