"""Identity and access on the real gateway: every endpoint x role x own/other organization, tokens, keys,
rate limits and security headers."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration

ROLES = ("org_admin", "user", "api_client")


@dataclass
class Actor:
    name: str
    org: str
    role: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def _call(stack: Stack, actor: Actor | None, method: str, path: str, **kw: Any) -> tuple[int, Any]:
    headers = actor.headers if actor else {}
    async with aiohttp.ClientSession(headers=headers) as http, http.request(method, stack.url + path, **kw) as resp:
        data = await resp.read()
        try:
            import json

            return resp.status, json.loads(data) if data else None
        except ValueError:  # not JSON (a transcript in another format, a recording)
            return resp.status, data.decode(errors="replace")


@pytest.fixture(scope="module")
async def world(stack: Stack, speech: Path) -> dict[str, Any]:
    """Two organizations, each with an org_admin, a user and an API client; a finished job, a voice profile
    and a stored file in the first one."""
    admin = Actor("admin", "default", "admin", stack.admin_key)

    async def build() -> dict[str, Any]:
        actors: dict[str, Actor] = {"admin": admin}
        orgs = {}
        for label in ("a", "b"):
            status, org = await _call(stack, admin, "POST", "/v1/organizations", json={"name": f"org {label}"})
            assert status == 201, org
            orgs[label] = org["id"]
            for role in ("org_admin", "user"):
                email = f"{role}.{label}.{uuid.uuid4().hex[:6]}@example.com"
                status, user = await _call(stack, admin, "POST", "/v1/users",
                                           json={"org_id": org["id"], "email": email, "password": "correct horse 1",
                                                 "role": role})
                assert status == 201, user
                status, tokens = await _call(stack, None, "POST", "/v1/auth/token",
                                             json={"email": email, "password": "correct horse 1"})
                assert status == 200, tokens
                actors[f"{role}.{label}"] = Actor(f"{role}.{label}", org["id"], role, tokens["access_token"])
            status, key = await _call(stack, actors[f"org_admin.{label}"], "POST", "/v1/keys",
                                      json={"name": "client", "role": "api_client"})
            assert status == 201, key
            actors[f"api_client.{label}"] = Actor(f"api_client.{label}", org["id"], "api_client", key["key"])
        # a finished job and a voice profile in org a, made by its user
        form = aiohttp.FormData()
        form.add_field("file", (speech / "read" / "LJ001-0002.wav").read_bytes(), filename="a.wav")
        form.add_field("diarize", "acoustic")
        status, job = await _call(stack, actors["user.a"], "POST", "/v1/jobs", data=form)
        assert status == 202, job
        for _ in range(600):
            status, j = await _call(stack, actors["user.a"], "GET", f"/v1/jobs/{job['job_id']}")
            if j["status"] in ("completed", "failed"):
                break
            await asyncio.sleep(0.2)
        assert j["status"] == "completed", j
        form = aiohttp.FormData()
        form.add_field("name", "Reader")
        form.add_field("file", (speech / "read" / "LJ001-0001.wav").read_bytes(), filename="r.wav")
        status, profile = await _call(stack, actors["user.a"], "POST", "/v1/speakers", data=form)
        assert status == 202, profile
        status, stored = await _call(stack, actors["user.a"], "POST", "/v1/files",
                                     data=_file_form(speech / "read" / "LJ001-0001.wav"))
        assert status == 201, stored
        return {"actors": actors, "orgs": orgs, "job": job["job_id"], "profile": profile["id"],
                "file": stored["file_id"]}

    return await build()


def _file_form(path: Path) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("file", path.read_bytes(), filename=path.name, content_type="audio/wav")
    return form


def _actors(world: dict[str, Any]) -> list[tuple[str, Actor]]:
    return [(name, a) for name, a in world["actors"].items()]


def _expect(actor: Actor, world: dict[str, Any], own_ok: int, allowed_roles: tuple[str, ...] = ROLES) -> int:
    """What a request on org a's resource should answer: 404 across organizations (nothing leaks), 403 for a
    role without the scope in its own organization, ``own_ok`` otherwise; the platform admin sees all."""
    if actor.role == "admin":
        return own_ok
    if actor.org != world["orgs"]["a"]:
        return 404
    return own_ok if actor.role in allowed_roles else 403


JOB_READS = ["/v1/jobs/{job}", "/v1/jobs/{job}/transcript", "/v1/jobs/{job}/transcript?format=srt",
             "/v1/jobs/{job}/revisions", "/v1/jobs/{job}/compare?a=1&b=1"]


@pytest.mark.parametrize("path", JOB_READS)
async def test_job_reads_across_roles_and_organizations(stack: Stack, world: dict[str, Any], path: str) -> None:
    url = path.format(job=world["job"])
    for name, actor in _actors(world):
        status, body = await _call(stack, actor, "GET", url)
        assert status == _expect(actor, world, 200), (name, url, status, body)
        if status == 404:  # indistinguishable from a job that does not exist
            assert body["detail"] == f"no job {world['job']!r}", body


async def test_job_writes_across_roles_and_organizations(stack: Stack, world: dict[str, Any]) -> None:
    job = world["job"]
    for name, actor in _actors(world):
        status, body = await _call(stack, actor, "PATCH", f"/v1/jobs/{job}/speakers/SPEAKER_01",
                                   json={"name": f"named by {name}"})
        assert status == _expect(actor, world, 200), (name, status, body)
        # a replay asking for what exists already: authorised callers get the existing revision back
        status, body = await _call(stack, actor, "POST", "/v1/replays", json={"job_ids": [job], "model": "tiny.en"})
        assert status == 202, (name, body)
        item = body["jobs"][0]
        if _expect(actor, world, 200) == 200:
            assert item.get("revision") == 1 and item.get("created") is False, (name, item)
        else:
            assert item == {"job_id": job, "error": "no such job"}, (name, item)


async def test_every_role_may_submit_and_lists_are_scoped(stack: Stack, world: dict[str, Any]) -> None:
    for name, actor in _actors(world):
        status, _ = await _call(stack, actor, "POST", "/v1/jobs", json={})  # authorised: reaches validation
        assert status == 415, name
        status, body = await _call(stack, actor, "GET", "/v1/jobs?limit=200")
        assert status == 200
        ids = {j["job_id"] for j in body["jobs"]}
        orgs = {j["org_id"] for j in body["jobs"]}
        if actor.role == "admin":
            assert world["job"] in ids
        else:
            assert orgs <= {actor.org}, (name, orgs)
            assert (world["job"] in ids) == (actor.org == world["orgs"]["a"]), name


FILE_READS = ["/v1/files/{file}", "/v1/files/{file}/content"]


@pytest.mark.parametrize("path", FILE_READS)
async def test_file_reads_across_roles_and_organizations(stack: Stack, world: dict[str, Any], path: str) -> None:
    url = path.format(file=world["file"])
    for name, actor in _actors(world):
        status, body = await _call(stack, actor, "GET", url)
        assert status == _expect(actor, world, 200), (name, url, status, body)
        if status == 404:  # indistinguishable from a file that does not exist
            assert body["detail"] == f"no file {world['file']!r}", body


async def test_file_writes_and_lists_across_roles_and_organizations(stack: Stack, world: dict[str, Any],
                                                                     speech: Path) -> None:
    owner = world["actors"]["user.a"]
    recording = speech / "read" / "LJ001-0001.wav"
    for name, actor in _actors(world):
        status, stored = await _call(stack, actor, "POST", "/v1/files", data=_file_form(recording))
        assert status == 201 and stored["org_id"] == actor.org, (name, status, stored)
        # a job from org a's file: visibility is checked first (an unknown model then stops short of a job)
        status, body = await _call(stack, actor, "POST", f"/v1/jobs?file_id={world['file']}&model=no-such-model")
        assert status == (404 if _expect(actor, world, 400) == 404 else 400), (name, status, body)
        # tags and priority of org a's job
        status, body = await _call(stack, actor, "PATCH", f"/v1/jobs/{world['job']}",
                                   json={"tags": [f"by-{actor.role}"], "priority": "normal"})
        assert status == _expect(actor, world, 200), (name, status, body)
        # deleting a file of org a's user: the uploader, org admins (jobs:delete) and the platform admin may
        status, victim = await _call(stack, owner, "POST", "/v1/files", data=_file_form(recording))
        assert status == 201
        status, body = await _call(stack, actor, "DELETE", f"/v1/files/{victim['file_id']}")
        assert status == _expect(actor, world, 204, ("org_admin", "user")), (name, status, body)
        if status != 204:
            assert (await _call(stack, owner, "DELETE", f"/v1/files/{victim['file_id']}"))[0] == 204
        # lists are scoped to the organization
        status, body = await _call(stack, actor, "GET", "/v1/files?limit=200")
        assert status == 200, (name, body)
        orgs = {f["org_id"] for f in body["files"]}
        if actor.role == "admin":
            assert world["file"] in {f["file_id"] for f in body["files"]}
        else:
            assert orgs == {actor.org}, (name, orgs)
            assert (world["file"] in {f["file_id"] for f in body["files"]}) == (actor.org == world["orgs"]["a"])


async def test_speaker_profiles_are_isolated(stack: Stack, world: dict[str, Any]) -> None:
    pid = world["profile"]
    for name, actor in _actors(world):
        visible = actor.role == "admin" or actor.org == world["orgs"]["a"]
        status, body = await _call(stack, actor, "GET", f"/v1/speakers/{pid}")
        assert status == (200 if visible else 404), (name, status, body)
        status, body = await _call(stack, actor, "GET", "/v1/speakers")
        assert status == 200 and (pid in {p["id"] for p in body["speakers"]}) == visible, name
        status, body = await _call(stack, actor, "PATCH", f"/v1/speakers/{pid}", json={"name": "Reader"})
        expected = 403 if actor.role == "api_client" else 200 if visible else 404  # api keys may not edit voices
        assert status == expected, (name, status, body)


@pytest.mark.parametrize("method, path, body, scope_roles, created", [
    ("POST", "/v1/keys", {"name": "k", "role": "api_client"}, ("org_admin",), 201),
    ("GET", "/v1/keys", None, ("org_admin",), 200),
    ("POST", "/v1/users", {"email": "new.{n}@example.com", "password": "long enough pw", "role": "user"},
     ("org_admin",), 201),
    ("GET", "/v1/users", None, ("org_admin",), 200),
    ("GET", "/v1/audit", None, ("org_admin",), 200),
    ("POST", "/v1/organizations", {"name": "x"}, (), 201),
])
async def test_identity_endpoints_by_role(stack: Stack, world: dict[str, Any], method: str, path: str,
                                          body: dict[str, Any] | None, scope_roles: tuple[str, ...],
                                          created: int) -> None:
    for name, actor in _actors(world):
        payload = None
        if body is not None:
            payload = {k: (v.format(n=uuid.uuid4().hex[:8]) if isinstance(v, str) else v) for k, v in body.items()}
        status, answer = await _call(stack, actor, method, path, json=payload)
        expected = created if actor.role == "admin" or actor.role in scope_roles else 403
        assert status == expected, (name, method, path, status, answer)
        if status == 200 and actor.role != "admin":
            rows = next(iter(v for v in answer.values() if isinstance(v, list)))
            assert all(r.get("org_id") in (None, actor.org) for r in rows), (name, path)


async def test_org_admin_cannot_act_in_another_organization(stack: Stack, world: dict[str, Any]) -> None:
    b_admin = world["actors"]["org_admin.b"]
    for path, body in (("/v1/keys", {"name": "k", "org_id": world["orgs"]["a"]}),
                       ("/v1/users", {"email": f"x{uuid.uuid4().hex[:6]}@example.com", "password": "long enough pw",
                                      "org_id": world["orgs"]["a"]})):
        status, _ = await _call(stack, b_admin, "POST", path, json=body)
        assert status == 403, path
    status, _ = await _call(stack, b_admin, "POST", "/v1/keys", json={"name": "k", "role": "admin"})
    assert status == 403  # nobody grants more than they hold


async def test_authentication_is_required_and_keys_revoke(stack: Stack, world: dict[str, Any]) -> None:
    for path in ("/v1/jobs", f"/v1/jobs/{world['job']}", "/v1/speakers", "/v1/models", "/v1/keys", "/v1/me",
                 "/v1/files", f"/v1/files/{world['file']}", f"/v1/files/{world['file']}/content"):
        status, body = await _call(stack, None, "GET", path)
        assert status == 401 and body["title"] == "Unauthorized", path
        status, _ = await _call(stack, Actor("x", "", "", "ssk_nope_nope"), "GET", path)
        assert status == 401, path
    status, _ = await _call(stack, None, "GET", "/health")
    assert status in (200, 503)
    admin_a = world["actors"]["org_admin.a"]
    status, key = await _call(stack, admin_a, "POST", "/v1/keys", json={"name": "temp"})
    temp = Actor("temp", key["org_id"], "api_client", key["key"])
    assert (await _call(stack, temp, "GET", "/v1/me"))[0] == 200
    assert (await _call(stack, admin_a, "DELETE", f"/v1/keys/{key['id']}"))[0] == 204
    assert (await _call(stack, temp, "GET", "/v1/me"))[0] == 401
    # a narrowed key cannot do more than its scopes
    status, key = await _call(stack, admin_a, "POST", "/v1/keys", json={"name": "ro", "scopes": ["jobs:read"]})
    ro = Actor("ro", key["org_id"], "api_client", key["key"])
    assert (await _call(stack, ro, "GET", f"/v1/jobs/{world['job']}"))[0] == 200
    assert (await _call(stack, ro, "POST", "/v1/jobs", json={}))[0] == 403


async def test_access_and_refresh_tokens(stack: Stack, world: dict[str, Any]) -> None:
    email = f"rt.{uuid.uuid4().hex[:6]}@example.com"
    await _call(stack, world["actors"]["org_admin.a"], "POST", "/v1/users",
                json={"email": email, "password": "correct horse 2", "role": "user"})
    status, tokens = await _call(stack, None, "POST", "/v1/auth/token", json={"email": email, "password": "wrong"})
    assert status == 401
    status, tokens = await _call(stack, None, "POST", "/v1/auth/token",
                                 json={"email": email, "password": "correct horse 2"})
    assert status == 200 and tokens["token_type"] == "Bearer" and tokens["expires_in"] > 0
    status, me = await _call(stack, Actor("u", "", "", tokens["access_token"]), "GET", "/v1/me")
    assert status == 200 and me["role"] == "user" and me["org_id"] == world["orgs"]["a"]
    status, second = await _call(stack, None, "POST", "/v1/auth/refresh",
                                 json={"refresh_token": tokens["refresh_token"]})
    assert status == 200 and second["refresh_token"] != tokens["refresh_token"]
    # the spent refresh token presented again: refused, and the whole session family ends
    status, _ = await _call(stack, None, "POST", "/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert status == 401
    status, _ = await _call(stack, None, "POST", "/v1/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert status == 401
    tampered = tokens["access_token"][:-3] + ("AAA" if not tokens["access_token"].endswith("AAA") else "BBB")
    assert (await _call(stack, Actor("t", "", "", tampered), "GET", "/v1/me"))[0] == 401


async def test_live_sessions_authenticate(stack: Stack, world: dict[str, Any]) -> None:
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            async with http.ws_connect(f"{stack.url}/v1/live"):
                pass
        assert err.value.status == 401
        key = world["actors"]["api_client.b"].token
        async with http.ws_connect(f"{stack.url}/v1/live?access_token={key}") as ws:
            await ws.send_json({"type": "start", "sample_rate": 16000})
            started = await ws.receive_json()
            assert started["type"] == "started"
            await ws.send_json({"type": "stop"})
            await ws.receive_json()
    status, job = await _call(stack, world["actors"]["org_admin.b"], "GET", f"/v1/jobs/{started['job_id']}")
    assert status == 200 and job["org_id"] == world["orgs"]["b"] and job["source"] == "live"


async def test_rate_limit_answers_429_with_retry_after(stack: Stack, world: dict[str, Any]) -> None:
    admin_b = world["actors"]["org_admin.b"]
    status, key = await _call(stack, admin_b, "POST", "/v1/keys", json={"name": "burst"})
    assert status == 201
    actor = Actor("burst", key["org_id"], "api_client", key["key"])
    async with aiohttp.ClientSession(headers=actor.headers) as http:
        async def one() -> tuple[int, str | None]:
            async with http.get(f"{stack.url}/v1/me") as resp:
                return resp.status, resp.headers.get("Retry-After")

        results = await asyncio.gather(*(one() for _ in range(450)))
    limited = [r for r in results if r[0] == 429]
    assert limited and all(r[1] and int(r[1]) >= 1 for r in limited)
    assert sum(1 for r in results if r[0] == 200) >= 200  # the burst went through
    # another caller is not affected
    assert (await _call(stack, world["actors"]["api_client.b"], "GET", "/v1/me"))[0] == 200


async def test_security_headers(stack: Stack, world: dict[str, Any]) -> None:
    async with aiohttp.ClientSession() as http, http.get(f"{stack.url}/health") as resp:
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
