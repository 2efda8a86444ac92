"""Identity and access on the real gateway: every documented operation x role x scope against the access the
routes declare (and publish in /openapi.json), every endpoint x role x own/other organization, tokens, keys,
login throttling, rate limits, request ids and security headers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gateway.app import create_app
from gateway.auth.principal import ROLE_SCOPES as ROLE_SCOPES_OF_ROLE
from gateway.auth.principal import ROLES as ALL_ROLES
from streamscribe.stack.ports import free_port
from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration

ROLES = ("org_admin", "user", "api_client")
assert set(ROLES) | {"admin"} == set(ALL_ROLES)


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
        # a replay asking for what exists already: as documented, only administrators replay (the replay
        # scope); they get the existing revision back, or "no such job" for another organization's job
        status, body = await _call(stack, actor, "POST", "/v1/replays", json={"job_ids": [job], "model": "tiny.en"})
        if actor.role not in ("admin", "org_admin"):
            assert status == 403 and body["missing_scopes"] == ["replay"], (name, status, body)
            continue
        assert status == 202, (name, body)
        item = body["jobs"][0]
        if _expect(actor, world, 200) == 200:
            assert item.get("revision") == 1 and item.get("created") is False, (name, item)
        else:
            assert item == {"job_id": job, "error": "no such job"}, (name, item)


async def test_replays_are_for_the_replay_scope(stack: Stack, world: dict[str, Any]) -> None:
    """The docs reserve replays for org_admin and the replay scope: an api_client key cannot replay, an
    org_admin key narrowed to ``replay`` can (and can do nothing else)."""
    admin_a, job = world["actors"]["org_admin.a"], world["job"]
    replay = {"job_ids": [job], "model": "tiny.en"}
    assert (await _call(stack, world["actors"]["api_client.a"], "POST", "/v1/replays", json=replay))[0] == 403
    for role, scopes, expected in (("org_admin", ["replay"], 202), ("api_client", ["replay"], 403),
                                   ("org_admin", ["jobs:write"], 403)):
        status, key = await _call(stack, admin_a, "POST", "/v1/keys", json={"name": "r", "role": role,
                                                                             "scopes": scopes})
        assert status == 201, key
        scoped = Actor("scoped", key["org_id"], role, key["key"])
        status, body = await _call(stack, scoped, "POST", "/v1/replays", json=replay)
        assert status == expected, (role, scopes, status, body)
        if expected == 202:
            assert body["jobs"][0]["revision"] == 1
            assert (await _call(stack, scoped, "GET", f"/v1/jobs/{job}"))[0] == 403  # nothing else


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
        # a job from org a's file with an unknown model: refused by validation before anything is looked up, the
        # same answer for every caller (it tells nothing about the file); visibility is checked by the next request
        status, body = await _call(stack, actor, "POST", f"/v1/jobs?file_id={world['file']}&model=no-such-model")
        assert status == 400 and body["invalid_params"][0]["name"] == "query.model", (name, status, body)
        status, body = await _call(stack, actor, "GET", f"/v1/files/{world['file']}")
        assert status == _expect(actor, world, 200), (name, status, body)
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


# -- login hardening -------------------------------------------------------------------------------------------
@contextlib.asynccontextmanager
async def _own_gateway(stack: Stack, **auth: Any) -> AsyncIterator[str]:
    """A gateway of this test's own (its throttling state and settings), on the stack's PostgreSQL and Kafka."""
    settings = stack.settings()
    settings = settings.model_copy(update={"auth": settings.auth.model_copy(update=auth)})
    runner = web.AppRunner(create_app(settings))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_a_loop_of_wrong_passwords_gets_429_with_a_growing_retry_after(stack: Stack,
                                                                            world: dict[str, Any]) -> None:
    """Per account (5 free attempts by default), known or not: then 429 with Retry-After before any password is
    checked, the wait growing with each failure; the right password works again once the wait is over. (On a
    gateway of the test's own, with the default settings: the stack's gateway keeps its address's record clean
    for the other tests.)"""
    email = f"throttled.{uuid.uuid4().hex[:6]}@example.com"
    status, _ = await _call(stack, world["actors"]["org_admin.a"], "POST", "/v1/users",
                            json={"email": email, "password": "correct horse 3", "role": "user"})
    assert status == 201
    async with _own_gateway(stack) as url, aiohttp.ClientSession() as http:
        async def attempt(who: str, password: str) -> tuple[int, str | None]:
            async with http.post(f"{url}/v1/auth/token", json={"email": who, "password": password}) as resp:
                return resp.status, resp.headers.get("Retry-After")

        for who in (email, f"nobody.{uuid.uuid4().hex[:6]}@example.com"):  # the same for an unknown account
            answers = [await attempt(who, "wrong password") for _ in range(7)]
            assert [s for s, _ in answers] == [401] * 6 + [429], (who, answers)
            first_wait = int(answers[-1][1] or 0)
            assert first_wait >= 1
            await asyncio.sleep(first_wait + 0.2)
            assert (await attempt(who, "wrong password"))[0] == 401
            status, retry = await attempt(who, "correct horse 3")  # during the wait, even the right one waits
            assert status == 429 and int(retry or 0) > first_wait, (who, status, retry)  # and it has grown
        await asyncio.sleep(int(retry or 0) + 0.2)
        assert (await attempt(email, "correct horse 3"))[0] == 200


async def test_failed_logins_from_one_address_are_throttled_across_accounts(stack: Stack,
                                                                           world: dict[str, Any]) -> None:
    email = f"victim.{uuid.uuid4().hex[:6]}@example.com"
    status, _ = await _call(stack, world["actors"]["org_admin.a"], "POST", "/v1/users",
                            json={"email": email, "password": "correct horse 4", "role": "user"})
    assert status == 201
    async with _own_gateway(stack, login_free_per_address=3, login_free_per_account=100) as url, \
            aiohttp.ClientSession() as http:
        async def attempt(who: str, password: str) -> tuple[int, str | None]:
            async with http.post(f"{url}/v1/auth/token", json={"email": who, "password": password}) as resp:
                return resp.status, resp.headers.get("Retry-After")

        answers = [await attempt(f"guess{i}.{uuid.uuid4().hex[:4]}@example.com", "pw") for i in range(4)]
        assert [s for s, _ in answers] == [401] * 4
        status, retry = await attempt(email, "correct horse 4")  # a real account, from the same address
        assert status == 429 and retry is not None and int(retry) >= 1


async def test_health_answers_while_logins_are_checked(stack: Stack, world: dict[str, Any]) -> None:
    """Password hashing runs off the event loop: while a dozen logins are being checked (each an argon2
    verification), /health keeps answering, many times over. (With hashing on the loop, each answer had to wait
    for a verification, so at most about one answer fitted between two of them.)"""
    logins = 12
    emails = [f"busy{i}.{uuid.uuid4().hex[:6]}@example.com" for i in range(logins)]
    for email in emails:
        status, _ = await _call(stack, world["actors"]["org_admin.a"], "POST", "/v1/users",
                                json={"email": email, "password": "correct horse 5", "role": "user"})
        assert status == 201
    async with aiohttp.ClientSession() as http:
        in_flight = logins

        async def login(email: str) -> int:
            nonlocal in_flight
            try:
                async with http.post(f"{stack.url}/v1/auth/token",
                                     json={"email": email, "password": "correct horse 5"}) as resp:
                    return resp.status
            finally:
                in_flight -= 1

        async def ping_while_logging_in() -> int:
            answered = 0
            while in_flight:
                async with http.get(f"{stack.url}/health") as resp:
                    assert resp.status == 200
                if in_flight:
                    answered += 1
            return answered

        pinger = asyncio.create_task(ping_while_logging_in())
        statuses = await asyncio.gather(*(login(e) for e in emails))
        answered = await pinger
    assert statuses == [200] * logins
    assert answered > 2 * logins, f"/health answered {answered} times while {logins} logins were checked"


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
    # on a gateway of the test's own with a small rate (1/s, bursts of 20), so that the outcome does not depend
    # on how fast this machine serves the requests
    async with _own_gateway(stack, rate_per_s=1.0, rate_burst=20) as url:
        async with aiohttp.ClientSession(headers=actor.headers) as http:
            async def one() -> tuple[int, str | None]:
                async with http.get(f"{url}/v1/me") as resp:
                    return resp.status, resp.headers.get("Retry-After")

            results = await asyncio.gather(*(one() for _ in range(120)))
        limited = [r for r in results if r[0] == 429]
        assert limited and all(r[1] and int(r[1]) >= 1 for r in limited)
        assert sum(1 for r in results if r[0] == 200) >= 20  # the burst went through
        # another caller is not affected
        other = world["actors"]["api_client.b"]
        async with aiohttp.ClientSession(headers=other.headers) as http, http.get(f"{url}/v1/me") as resp:
            assert resp.status == 200


# -- every documented operation x role x scope, against the access it declares -------------------------------
def _fill_path(path: str, op: dict[str, Any]) -> str:
    """A path whose parameters name nothing that exists, but that the document accepts (a request that gets
    past authorization then ends as a 404, a 400 for a missing body or a 415, never doing anything)."""
    for param in op.get("parameters", []):
        if param["in"] == "path":
            pattern = param["schema"].get("pattern", "")
            prefix = "wh_" if pattern.startswith("^wh_") else "dlv_" if pattern.startswith("^dlv_") else ""
            value = prefix + "0" * 24 if prefix else "zz-no-such-thing"
            path = path.replace("{" + param["name"] + "}", value)
    return path


async def _status(http: aiohttp.ClientSession, method: str, url: str, headers: dict[str, str]) -> tuple[int, Any]:
    for _ in range(20):  # this walk is not a rate-limit test: wait out a 429 and ask again
        async with http.request(method, url, headers=headers, timeout=aiohttp.ClientTimeout(total=30)) as resp:
            if resp.status == 429:
                await asyncio.sleep(float(resp.headers.get("Retry-After", "1")))
                continue
            if resp.content_type == "text/event-stream":  # the job feed streams on: its status is enough
                return resp.status, None
            data = await resp.read()
            return resp.status, json.loads(data) if resp.content_type.endswith("json") and data else None
    raise AssertionError(f"{method} {url} stayed rate limited")


async def test_every_operation_role_and_scope_matches_the_published_access(stack: Stack,
                                                                           world: dict[str, Any]) -> None:
    """Walks /openapi.json: every operation, called as every role and as API keys narrowed to each single
    scope, is refused (403, naming the missing scope) exactly when its declared access (``x-scopes``, from the
    routes' table) says so, never asks public callers for credentials, and lets everyone else through to
    validation or the handler. Any drift between the table, the document and what the gateway enforces fails."""
    async with aiohttp.ClientSession() as http, http.get(f"{stack.url}/openapi.json") as resp:
        doc = await resp.json()
    roles = dict(ROLE_SCOPES_OF_ROLE)
    callers: list[tuple[str, str, frozenset[str], str]] = [  # (name, role, key scopes, token)
        (name, actor.role, frozenset(), actor.token) for name, actor in _actors(world)
        if name in ("admin", "org_admin.a", "user.a", "api_client.a")]
    scopes = doc["paths"]["/v1/keys"]["post"]["requestBody"]["content"]["application/json"]["schema"][
        "properties"]["scopes"]["items"]["enum"]
    for scope in scopes:  # keys narrowed to one scope, made by the platform admin in org a
        role = "admin" if scope == "*" else "org_admin"
        status, key = await _call(stack, world["actors"]["admin"], "POST", "/v1/keys",
                                  json={"name": f"only {scope}", "role": role, "scopes": [scope],
                                        "org_id": world["orgs"]["a"]})
        assert status == 201, key
        callers.append((f"{role} key scoped {scope}", role, frozenset({scope}), key["key"]))

    def may(role: str, key_scopes: frozenset[str], needed: list[str]) -> bool:
        granted = roles[role]
        return all(("*" in granted or s in granted) and (not key_scopes or s in key_scopes or "*" in key_scopes)
                   for s in needed)

    checked = 0
    async with aiohttp.ClientSession() as http:
        for path, item in doc["paths"].items():
            for method, op in item.items():
                url = stack.url + _fill_path(path, op)
                public = op.get("security") == []
                assert public or "x-scopes" in op, f"{method.upper()} {path} declares no access"
                for name, role, key_scopes, token in callers:
                    status, body = await _status(http, method.upper(), url, {"Authorization": f"Bearer {token}"})
                    allowed = public or may(role, key_scopes, op["x-scopes"])
                    where = (method.upper(), path, name, status, body)
                    if not public and not key_scopes:  # the roles the document lists are the ones let in
                        assert allowed == (role in op["x-roles"]), where
                    if allowed:
                        assert status not in (401, 403), where
                    else:
                        assert status == 403, where
                        if path.startswith("/v1/audio/"):  # the OpenAI-compatible path answers in OpenAI's shape
                            assert body["error"]["message"], where
                        else:
                            assert body["missing_scopes"] and set(body["missing_scopes"]) <= set(op["x-scopes"]), where
                    checked += 1
                if public:
                    status, _ = await _status(http, method.upper(), url, {})
                    assert status not in (401, 403), (method.upper(), path, "anonymous", status)
    assert checked >= 60 * len(callers)


# -- request ids ------------------------------------------------------------------------------------------
async def test_every_answer_names_its_request(stack: Stack, world: dict[str, Any]) -> None:
    """X-Request-ID on every response, errors included; a caller's own id only when it is short and plain."""
    admin = world["actors"]["admin"]
    async with aiohttp.ClientSession() as http:
        cases = [("GET", "/v1/jobs/some-job", {}, 401), ("GET", "/v1/jobs/no-such-job", admin.headers, 404),
                 ("GET", "/no/such/route", {}, 404), ("GET", "/v1/jobs/%00", admin.headers, 400),
                 ("DELETE", "/v1/models", admin.headers, 405), ("GET", "/health", {}, 200),
                 ("GET", "/v1/me", {"Authorization": "Bearer ssk_nope_nope"}, 401)]
        for method, path, headers, expected in cases:
            for given, kept in (("caller-1.a:b_C", True), ("x" * 65, False), ("x" * 5000, False),
                                ("two words", False), ("tab\there", False), (None, False)):
                sent = {**headers, **({"X-Request-ID": given} if given else {})}
                async with http.request(method, stack.url + path, headers=sent) as resp:
                    assert resp.status == expected, (method, path, resp.status)
                    rid = resp.headers.get("X-Request-ID", "")
                    assert re.fullmatch(r"[A-Za-z0-9._:-]{1,64}", rid), (method, path, given, rid)
                    assert (rid == given) == kept, (method, path, given, rid)
                    if resp.status >= 400:
                        assert resp.content_type == "application/problem+json", (method, path)


async def test_security_headers(stack: Stack, world: dict[str, Any]) -> None:
    async with aiohttp.ClientSession() as http, http.get(f"{stack.url}/health") as resp:
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
