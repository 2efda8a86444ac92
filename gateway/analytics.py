"""Conversation analytics endpoints (docs/analytics.md):

    GET    /v1/jobs/{id}/analytics         ?revision=   a call's metrics (the newest revision that has them)
    GET    /v1/analytics                   ?from=&to=&speaker=&granularity=hour|day[&org_id= (admin)]
    GET    /v1/analytics/phrases           the organization's phrase lists
    POST   /v1/analytics/phrases           {phrase, kind: required|watched, speaker?, threshold?, org_id? (admin)}
    GET    /v1/analytics/phrases/{id}
    PATCH  /v1/analytics/phrases/{id}      {phrase?, kind?, speaker?, threshold?}
    DELETE /v1/analytics/phrases/{id}

Reading needs ``analytics:read`` (and the job's organization), phrase lists ``analytics:manage`` to change.
Per-call metrics come from ``analytics_calls``; the aggregates from ``analytics_windows``, the live hourly and
daily windows the analytics stage keeps in its faust tables; rates and averages are derived here.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.access import visible_job
from gateway.auth.audit import audit
from gateway.auth.middleware import caller
from gateway.auth.permissions import add_route, needs
from gateway.auth.principal import Principal
from gateway.openapi import DATE_TIME, ID
from gateway.params import parse_time
from gateway.problems import Problem
from gateway.refs import ANALYTICS
from gateway.validation import json_object
from processors.analytics.phrases import DEFAULT_THRESHOLD, normalize
from repositories.db import AlreadyExists, MissingReference

READ, MANAGE = "analytics:read", "analytics:manage"
GRANULARITIES = ("hour", "day")
KINDS = ("required", "watched")
MAX_PHRASE, MAX_SPEAKER = 200, 100
COUNTS = ("calls", "audio_ms", "speech_ms", "talk_ms", "talk_share_bp", "interruptions", "interrupted",
          "overlap_ms", "silence_ms", "words", "required_missing")


def _org(request: web.Request, principal: Principal, value: Any = None) -> str:
    """The organization a request acts on: the caller's, or (platform admin only) the one it names."""
    named = value if value is not None else request.query.get("org_id")
    if named in (None, "") or named == principal.org_id:
        return principal.org_id
    if not isinstance(named, str) or "\x00" in named or not principal.sees(named):
        raise Problem(403, "Forbidden", "you may only act within your own organization")
    return named


# -- one call --------------------------------------------------------------------------------------------
async def job_analytics(request: web.Request) -> web.Response:
    job_id = request.match_info["job_id"]
    revision = request.query.get("revision")
    if revision is not None and not (revision.isdigit() and int(revision) > 0):
        raise Problem(400, "Bad Request", "revision must be a positive integer")
    principal, job = await visible_job(request, job_id)
    store = request.app[ANALYTICS]
    found = await store.call(job_id, int(revision) if revision else None)
    if found is None:
        raise Problem(404, "Not Found", f"no analytics for job {job_id!r}"
                      + (f" revision {revision}" if revision else " yet") + f" (the job is {job['status']})",
                      job_id=job_id, job_status=job["status"])
    await audit(request, principal, "analytics.read", f"job:{job_id}", {"revision": found["revision"]},
                org_id=job["org_id"])
    return web.json_response({**found, "revisions": await store.revisions(job_id)})


# -- aggregates ------------------------------------------------------------------------------------------
def derived(c: dict[str, Any], speaker: bool) -> dict[str, Any]:
    """What a window's counts mean: averages per call and rates."""
    calls = c["calls"]
    per_call = (lambda v: round(v / calls, 3)) if calls else (lambda _v: None)
    out: dict[str, Any] = {
        "calls": calls, "audio_minutes": round(c["audio_ms"] / 60_000, 3),
        "average_handle_time": per_call(c["audio_ms"] / 1000),
        "talk_minutes": round(c["talk_ms"] / 60_000, 3),
        "interruptions": c["interruptions"], "interruptions_per_call": per_call(c["interruptions"]),
        "overlap_seconds": round(c["overlap_ms"] / 1000, 3), "silence_seconds": round(c["silence_ms"] / 1000, 3),
        "words": c["words"], "required_missing_calls": c["required_missing"],
        "required_missing_rate": per_call(c["required_missing"]),
        "phrase_hits": dict(c["phrase_hits"]),
        "phrase_hit_rates": {k: per_call(v) for k, v in c["phrase_hits"].items()},
    }
    if speaker:
        out["mean_talk_share"] = per_call(c["talk_share_bp"] / 10_000)
        out["interrupted"] = c["interrupted"]
    return out


def _total(windows: list[dict[str, Any]]) -> dict[str, Any]:
    total: dict[str, Any] = {name: sum(w[name] for w in windows) for name in COUNTS}
    hits: dict[str, int] = {}
    for w in windows:
        for k, v in w["phrase_hits"].items():
            hits[k] = hits.get(k, 0) + v
    total["phrase_hits"] = hits
    return total


async def aggregates(request: web.Request) -> web.Response:
    principal = caller(request)
    org = _org(request, principal)
    granularity = request.query.get("granularity", "hour")
    if granularity not in GRANULARITIES:
        raise Problem(400, "Bad Request", f"granularity must be one of {', '.join(GRANULARITIES)}")
    since, until = parse_time(request.query.get("from"), "from"), parse_time(request.query.get("to"), "to")
    if since and until and since >= until:
        raise Problem(400, "Bad Request", "from must be before to")
    speaker = request.query.get("speaker") or ""  # NUL and other unstorable text: refused before any handler
    store = request.app[ANALYTICS]
    windows = await store.windows(org, granularity, speaker, since, until)
    phrases = {p["id"]: {"phrase": p["phrase"], "kind": p["kind"], "speaker": p["speaker"]}
               for p in await store.phrases(org)}
    return web.json_response({
        "org_id": org, "granularity": granularity, "speaker": speaker or None,
        "from": request.query.get("from"), "to": request.query.get("to"),
        "speakers": await store.speakers(org), "phrases": phrases,
        "windows": [{"start": w["start"], "end": w["end"], **derived(w, bool(speaker))} for w in windows],
        "totals": derived(_total(windows), bool(speaker)),
    })


# -- phrase lists ----------------------------------------------------------------------------------------
def _phrase_text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_PHRASE:
        raise Problem(400, "Bad Request", f"phrase must be text of 1 to {MAX_PHRASE} characters")
    if not normalize(value):
        raise Problem(400, "Bad Request", "phrase must contain a word (letters or digits)")
    return " ".join(value.split())


def _kind(value: Any) -> str:
    if value not in KINDS:
        raise Problem(400, "Bad Request", f"kind must be one of {', '.join(KINDS)}")
    return str(value)


def _speaker(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > MAX_SPEAKER or "\x00" in value:
        raise Problem(400, "Bad Request", f"speaker must be a speaker's name of at most {MAX_SPEAKER} characters, "
                      "or null for anyone")
    return value.strip()


def _threshold(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 50 <= value <= 100:
        raise Problem(400, "Bad Request", "threshold must be an integer from 50 to 100 (fuzzy similarity)")
    return value


async def list_phrases(request: web.Request) -> web.Response:
    principal = caller(request)
    org = _org(request, principal)
    return web.json_response({"org_id": org, "phrases": await request.app[ANALYTICS].phrases(org)})


async def create_phrase(request: web.Request) -> web.Response:
    principal = caller(request)
    body = await json_object(request)
    unknown = sorted(set(body) - {"phrase", "kind", "speaker", "threshold", "org_id"})
    if unknown:
        raise Problem(400, "Bad Request", f"unknown fields: {', '.join(unknown)}")
    org = _org(request, principal, body.get("org_id"))
    try:
        created = await request.app[ANALYTICS].create_phrase(
            org, _phrase_text(body.get("phrase")), _kind(body.get("kind", "watched")), _speaker(body.get("speaker")),
            _threshold(body.get("threshold", DEFAULT_THRESHOLD)))
    except AlreadyExists as exc:
        raise Problem(409, "Conflict", str(exc)) from None
    except MissingReference as exc:
        raise Problem(404, "Not Found", str(exc)) from None
    await audit(request, principal, "analytics.phrase.create", f"phrase:{created['id']}",
                {"kind": created["kind"]}, org_id=org)
    return web.json_response(created, status=201)


async def _visible_phrase(request: web.Request) -> tuple[Principal, dict[str, Any]]:
    principal = caller(request)
    phrase_id = request.match_info["phrase_id"]
    found = await request.app[ANALYTICS].phrase(None, phrase_id) if phrase_id.startswith("phr_") else None
    if found is None or not principal.sees(found["org_id"]):
        raise Problem(404, "Not Found", f"no phrase {phrase_id!r}")
    return principal, found


async def get_phrase(request: web.Request) -> web.Response:
    _principal, found = await _visible_phrase(request)
    return web.json_response(found)


async def update_phrase(request: web.Request) -> web.Response:
    principal, found = await _visible_phrase(request)
    body = await json_object(request)
    checks = {"phrase": _phrase_text, "kind": _kind, "speaker": _speaker, "threshold": _threshold}
    unknown = sorted(set(body) - set(checks))
    if unknown or not body:
        raise Problem(400, "Bad Request", f"change at least one of {', '.join(checks)}"
                      + (f"; unknown fields: {', '.join(unknown)}" if unknown else ""))
    changes = {k: checks[k](v) for k, v in body.items()}
    store = request.app[ANALYTICS]
    try:
        await store.update_phrase(found["org_id"], found["id"], changes)
    except AlreadyExists as exc:
        raise Problem(409, "Conflict", str(exc)) from None
    await audit(request, principal, "analytics.phrase.update", f"phrase:{found['id']}", {"fields": sorted(changes)},
                org_id=found["org_id"])
    return web.json_response(await store.phrase(found["org_id"], found["id"]))


async def delete_phrase(request: web.Request) -> web.Response:
    principal, found = await _visible_phrase(request)
    await request.app[ANALYTICS].delete_phrase(found["org_id"], found["id"])
    await audit(request, principal, "analytics.phrase.delete", f"phrase:{found['id']}", org_id=found["org_id"])
    return web.Response(status=204)


# -- OpenAPI (merged into /openapi.json, like the webhooks') -----------------------------------------------
def openapi_paths() -> dict[str, Any]:
    s, n, i = {"type": "string"}, {"type": "number"}, {"type": "integer"}
    ns, nn = {"type": ["string", "null"]}, {"type": ["number", "null"]}
    problem = {"content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}

    def responses(code: int, schema: dict[str, Any] | None, *errors: int) -> dict[str, Any]:
        out: dict[str, Any] = {str(code): {"description": "OK"} if schema is None else {
            "description": "OK", "content": {"application/json": {"schema": schema}}}}
        for e in (*errors, 401, 429):
            out[str(e)] = {"description": "Error", **problem}
        return out

    def q(name: str, schema: dict[str, Any], description: str = "") -> dict[str, Any]:
        return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}

    def obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
        return {"type": "object", "properties": props, **({"required": required} if required else {})}

    def body(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
        schema = {**obj(props, required), "additionalProperties": False, "minProperties": 1}
        return {"required": True, "content": {"application/json": {"schema": schema}}}

    gap = obj({"start": n, "end": n})
    speaker = obj({"id": s, "label": s, "name": ns, "channel": {"type": ["integer", "null"]}, "talk_time": n,
                   "talk_share": n, "turns": i, "longest_monologue": n, "overlap_time": n, "interruptions_made": i,
                   "interrupted": i, "words": i, "words_per_minute": nn, "sentiment": nn})
    hit = obj({"phrase_id": s, "phrase": s, "kind": s, "speaker": s, "start": n, "end": n, "text": s, "score": n})
    call = obj({
        "job_id": ns, "stream_id": s, "revision": i, "org_id": s, "duration": n, "timing": {"enum": [
            "turns", "segments"]}, "speech_time": n, "overlap_time": n, "silence_total": n,
        "longest_silence": {"oneOf": [gap, {"type": "null"}]}, "silences": {"type": "array", "items": gap},
        "silence_threshold": n, "turns": i, "longest_monologue": {"type": ["object", "null"]},
        "interruptions": {"type": "array", "items": obj({"at": n, "by": s, "of": s})}, "words": i,
        "words_per_minute": nn, "sentiment": nn, "speakers": {"type": "array", "items": speaker},
        "phrase_hits": {"type": "array", "items": hit},
        "required_missing": {"type": "array", "items": obj({"phrase_id": s, "phrase": s, "speaker": ns})},
        "segments": {"type": "array", "items": obj({"segment_id": s, "start": n, "end": n, "speaker": ns,
                                                    "sentiment": n})},
        "revisions": {"type": "array", "items": i}}, ["revision", "duration", "speakers"])
    counts = obj({"calls": i, "audio_minutes": n, "average_handle_time": nn, "talk_minutes": n,
                  "mean_talk_share": nn, "interruptions": i, "interruptions_per_call": nn, "interrupted": i,
                  "overlap_seconds": n, "silence_seconds": n, "words": i, "required_missing_calls": i,
                  "required_missing_rate": nn, "phrase_hits": {"type": "object"},
                  "phrase_hit_rates": {"type": "object"}})
    phrase = obj({"id": s, "org_id": s, "phrase": s, "kind": {"enum": list(KINDS)}, "speaker": ns,
                  "threshold": i, "created_at": s, "updated_at": s})
    editable = {"phrase": {"type": "string", "minLength": 1, "maxLength": MAX_PHRASE}, "kind": {"enum": list(KINDS)},
                "speaker": {"type": ["string", "null"], "maxLength": MAX_SPEAKER},
                "threshold": {"type": "integer", "minimum": 50, "maximum": 100}}
    pid = {"name": "phrase_id", "in": "path", "required": True, "schema": ID}  # an unknown id: 404
    job = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string",
                                                                       "pattern": "^[A-Za-z0-9_.:-]{1,200}$"}}
    tag = {"tags": ["analytics"]}
    return {
        "/v1/jobs/{job_id}/analytics": {"get": {
            **tag, "summary": "A call's conversation analytics: talk time and share, turns, monologues, interruptions, "
                              "overlap, silences, speaking rate, phrase hits, sentiment (docs/analytics.md)",
            "parameters": [job, q("revision", {"type": "string", "pattern": "^[1-9][0-9]{0,8}$"},
                                   "default: the newest revision analysed")],
            "responses": responses(200, call, 400, 403, 404)}},
        "/v1/analytics": {"get": {
            **tag, "summary": "Live aggregates of the organization (or one named speaker) per hour or day: calls, "
                              "audio minutes, average handle time, mean talk share, interruptions, phrase-hit rates",
            "parameters": [q("from", DATE_TIME), q("to", DATE_TIME),
                           q("speaker", {"type": "string", "maxLength": MAX_SPEAKER},
                             "a named speaker (a channel name such as agent, or an enrolled voice)"),
                           q("granularity", {"enum": list(GRANULARITIES)}, "default hour"),
                           q("org_id", ID, "platform admin only")],
            "responses": responses(200, obj({"org_id": s, "granularity": s, "speaker": ns,
                                             "speakers": {"type": "array", "items": s}, "phrases": {"type": "object"},
                                             "windows": {"type": "array", "items": counts}, "totals": counts}),
                                   400, 403)}},
        "/v1/analytics/phrases": {
            "get": {**tag, "summary": "The organization's phrase lists (required and watched phrases)",
                    "parameters": [q("org_id", ID, "platform admin only")],
                    "responses": responses(200, obj({"org_id": s, "phrases": {"type": "array", "items": phrase}}),
                                           403)},
            "post": {**tag, "summary": "List a phrase: required (a call without it is flagged, a webhook can fire) "
                                       "or watched; optionally only when a named speaker says it",
                     "requestBody": body({**editable, "org_id": ID}, ["phrase"]),
                     "responses": responses(201, phrase, 400, 403, 404, 409)},
        },
        "/v1/analytics/phrases/{phrase_id}": {
            "get": {**tag, "summary": "A listed phrase", "parameters": [pid], "responses": responses(200, phrase, 403,
                                                                                                      404)},
            "patch": {**tag, "summary": "Change a listed phrase", "parameters": [pid], "requestBody": body(editable),
                      "responses": responses(200, phrase, 400, 403, 404, 409)},
            "delete": {**tag, "summary": "Remove a listed phrase (calls already analyzed keep their hits)",
                       "parameters": [pid], "responses": responses(204, None, 403, 404)},
        },
    }


def add_routes(app: web.Application) -> None:
    add_route(app, "GET", "/v1/jobs/{job_id}/analytics", job_analytics, needs(READ))
    add_route(app, "GET", "/v1/analytics", aggregates, needs(READ))
    add_route(app, "GET", "/v1/analytics/phrases", list_phrases, needs(READ))
    add_route(app, "POST", "/v1/analytics/phrases", create_phrase, needs(MANAGE))
    add_route(app, "GET", "/v1/analytics/phrases/{phrase_id}", get_phrase, needs(READ))
    add_route(app, "PATCH", "/v1/analytics/phrases/{phrase_id}", update_phrase, needs(MANAGE))
    add_route(app, "DELETE", "/v1/analytics/phrases/{phrase_id}", delete_phrase, needs(MANAGE))
