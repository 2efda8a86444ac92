"""Speaker endpoints: enrolled voice profiles, and the speakers of a transcript."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from aiohttp import web

from foundation.events import SpeakerEnrollment
from gateway.access import visible_job
from gateway.auth.audit import audit
from gateway.auth.middleware import caller
from gateway.auth.permissions import add_route, needs
from gateway.auth.principal import Principal
from gateway.problems import Problem
from gateway.refs import JOBS, PROFILES, PUBLISHER, SETTINGS, STORE
from gateway.uploads import form_text, multipart_parts, spool_to_store
from gateway.validation import check_form, invalid, json_object
from streams.kafka.topics import SPEAKER_ENROLLMENTS

MAX_NAME = 200
MAX_SAMPLE_BYTES = 200 * 1024 * 1024


def _org(p: Principal) -> str | None:
    """The organization a caller's queries are confined to (None: the platform admin sees all)."""
    return None if p.is_admin else p.org_id


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_NAME:
        raise Problem(400, "Bad Request", f"name must be a non-empty string of at most {MAX_NAME} characters")
    return value.strip()


async def _receive_samples(request: web.Request, profile_id: str, keys: list[str]) -> str:
    """Store each ``file`` part of an enrollment (its key added to ``keys`` once stored) and return its name, as
    sent: text the document's ``name`` field accepts (else a 400 problem naming ``form.name``)."""
    names: list[str] = []
    async for part in multipart_parts(request, "'name' and 'file' parts"):
        if part.name == "name":
            names.append(await form_text(part, strip=False))
        elif part.name == "file":
            key = f"speakers/{profile_id}/{len(keys)}{Path(part.filename or '').suffix.lower()[:10]}"
            await spool_to_store(part, request.app[STORE], key, request.app[SETTINGS], limit=MAX_SAMPLE_BYTES)
            keys.append(key)
        else:
            await part.release()
    check_form(request, [("name", name) for name in names])
    if not names:
        raise invalid([("form.name", "is required")])
    if not keys:
        raise Problem(400, "Bad Request", "at least one 'file' part with a recording of the speaker is needed")
    return names[-1]


async def enroll(request: web.Request) -> web.Response:
    """multipart: name, and one or more ``file`` parts with recordings of the person. A request refused keeps
    none of its samples."""
    p = caller(request)
    profile_id = uuid.uuid4().hex
    keys: list[str] = []
    try:
        name = (await _receive_samples(request, profile_id, keys)).strip()
    except BaseException:
        for key in keys:
            await request.app[STORE].delete(key)
        raise
    await request.app[PROFILES].create(profile_id, p.org_id, name, keys)
    await request.app[PUBLISHER].publish(SPEAKER_ENROLLMENTS, SpeakerEnrollment(
        profile_id=profile_id, org_id=p.org_id, name=name, object_keys=keys))
    await audit(request, p, "speaker.enroll", f"speaker:{profile_id}", {"samples": len(keys)})
    return web.json_response({"id": profile_id, "name": name, "status": "pending", "samples": len(keys)},
                             status=202, headers={"Location": f"/v1/speakers/{profile_id}"})


async def list_profiles(request: web.Request) -> web.Response:
    p = caller(request)
    return web.json_response({"speakers": await request.app[PROFILES].profiles(_org(p))})


async def get_profile(request: web.Request) -> web.Response:
    p = caller(request)
    profile = await request.app[PROFILES].get(_org(p), request.match_info["profile_id"])
    if profile is None:
        raise Problem(404, "Not Found", f"no speaker profile {request.match_info['profile_id']!r}")
    return web.json_response(profile)


async def rename_profile(request: web.Request) -> web.Response:
    p = caller(request)
    name = _name((await json_object(request)).get("name"))
    pid = request.match_info["profile_id"]
    if not await request.app[PROFILES].rename(_org(p), pid, name):
        raise Problem(404, "Not Found", f"no speaker profile {pid!r}")
    return web.json_response(await request.app[PROFILES].get(_org(p), pid))


async def delete_profile(request: web.Request) -> web.Response:
    p = caller(request)
    pid = request.match_info["profile_id"]
    keys = await request.app[PROFILES].delete(_org(p), pid)
    if keys is None:
        raise Problem(404, "Not Found", f"no speaker profile {pid!r}")
    for key in keys:
        await request.app[STORE].delete(key)
    await audit(request, p, "speaker.delete", f"speaker:{pid}")
    return web.Response(status=204)


async def rename_transcript_speaker(request: web.Request) -> web.Response:
    """PATCH /v1/jobs/{job_id}/speakers/{speaker_id} {"name": "Alice"} (null restores the label)."""
    body = await json_object(request)
    name = None if body.get("name") is None else _name(body.get("name"))
    job_id, speaker_id = request.match_info["job_id"], request.match_info["speaker_id"]
    jobs = request.app[JOBS]
    _, job = await visible_job(request, job_id)
    revision = int(request.query.get("revision") or job["revision"])
    if not await jobs.rename_speaker(job_id, revision, speaker_id, name):
        raise Problem(404, "Not Found", f"job {job_id} revision {revision} has no speaker {speaker_id!r}")
    return web.json_response({"speakers": await jobs.speakers(job_id, revision)})


def add_routes(app: web.Application) -> None:
    add_route(app, "POST", "/v1/speakers", enroll, needs("speakers:write"))
    add_route(app, "GET", "/v1/speakers", list_profiles, needs("speakers:read"))
    add_route(app, "GET", "/v1/speakers/{profile_id}", get_profile, needs("speakers:read"))
    add_route(app, "PATCH", "/v1/speakers/{profile_id}", rename_profile, needs("speakers:write"))
    add_route(app, "DELETE", "/v1/speakers/{profile_id}", delete_profile, needs("speakers:write"))
    add_route(app, "PATCH", "/v1/jobs/{job_id}/speakers/{speaker_id}", rename_transcript_speaker, needs("jobs:write"))
