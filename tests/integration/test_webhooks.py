"""Outbound webhooks on the real stack: signed deliveries of job events to a real receiver, retries with
growing delays, the delivery log, tenant isolation and the subscription API.

The stack of this session is started with short retry delays and private targets allowed (the receiver
listens on loopback), set here before the session's ``stack`` fixture starts it.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from connectors.webhooks.signing import sign, verify
from streamscribe.stack.ports import free_port
from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration

# Read by every process of the stack (the session fixture passes the environment on when it starts it).


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool
    at: float

    @property
    def payload(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.body)
        return result


@dataclass
class Receiver:
    """A webhook receiver on loopback: verifies every delivery's signature with the receiver-side ``verify``
    and answers 401 to a bad one; ``/flaky`` fails each delivery's first two attempts; ``/down`` fails until
    ``down_ok`` is set."""

    port: int
    secrets: dict[str, str] = field(default_factory=dict)  # path -> the subscription's secret
    log: list[Received] = field(default_factory=list)
    tries: dict[str, int] = field(default_factory=dict)
    down_ok: bool = False

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        secret = self.secrets.get(request.path, "")
        ok = verify(secret, request.headers.get("X-Streamscribe-Timestamp"), body,
                    request.headers.get("X-Streamscribe-Signature"))
        self.log.append(Received(request.path, dict(request.headers), body, ok, time.monotonic()))
        if not ok:
            return web.Response(status=401, text="bad signature")
        delivery = request.headers["X-Streamscribe-Delivery"]
        self.tries[delivery] = self.tries.get(delivery, 0) + 1
        if request.path == "/flaky" and self.tries[delivery] <= 2:
            return web.Response(status=500, text="try again later")
        if request.path == "/down" and not self.down_ok:
            return web.Response(status=500, text="down")
        return web.Response(status=204)

    def got(self, path: str, event_type: str | None = None, job_id: str | None = None) -> list[Received]:
        return [r for r in self.log if r.path == path and r.verified
                and (event_type is None or r.payload["type"] == event_type)
                and (job_id is None or r.payload["data"].get("job_id") == job_id)]


@pytest_asyncio.fixture(scope="module")
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver(free_port())
    app = web.Application()
    app.router.add_post("/{tail:.*}", rec.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", rec.port).start()
    try:
        yield rec
    finally:
        await runner.cleanup()


async def call(stack: Stack, token: str, method: str, path: str, **kw: Any) -> tuple[int, Any, str]:
    async with (aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http,
                http.request(method, stack.url + path, **kw) as resp):
        text = await resp.text()
        return resp.status, json.loads(text) if text else None, resp.content_type


async def wait_for(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = await check()
        if result:
            return result
        await asyncio.sleep(0.25)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@dataclass
class World:
    admin: str
    org_b: str
    org_admin_b: str
    user_b: str
    subs: dict[str, dict[str, Any]] = field(default_factory=dict)


@pytest_asyncio.fixture(scope="module")
async def world(stack: Stack, receiver: Receiver) -> World:
    admin = stack.admin_key
    status, org, _ = await call(stack, admin, "POST", "/v1/organizations", json={"name": "webhooks b"})
    assert status == 201, org
    tokens = {}
    for role in ("org_admin", "user"):
        email = f"wh.{role}.{uuid.uuid4().hex[:6]}@example.com"
        status, user, _ = await call(stack, admin, "POST", "/v1/users", json={
            "org_id": org["id"], "email": email, "password": "correct horse 1", "role": role})
        assert status == 201, user
        async with aiohttp.ClientSession() as http, http.post(stack.url + "/v1/auth/token", json={
                "email": email, "password": "correct horse 1"}) as resp:
            tokens[role] = (await resp.json())["access_token"]
    return World(admin, org["id"], tokens["org_admin"], tokens["user"])


async def subscribe(stack: Stack, receiver: Receiver, token: str, path: str, events: list[str],
                    **extra: Any) -> dict[str, Any]:
    status, sub, _ = await call(stack, token, "POST", "/v1/webhooks",
                                json={"url": receiver.url(path), "events": events, **extra})
    assert status == 201, sub
    receiver.secrets[path] = sub["secret"]
    return dict(sub)


async def deliveries(stack: Stack, token: str, sub_id: str, **query: str) -> list[dict[str, Any]]:
    status, body, _ = await call(stack, token, "GET", f"/v1/webhooks/{sub_id}/deliveries", params=query)
    assert status == 200, body
    result: list[dict[str, Any]] = body["deliveries"]
    return result


async def test_subscriptions_api_validation_and_isolation(stack: Stack, receiver: Receiver, world: World) -> None:
    a = await subscribe(stack, receiver, world.admin, "/a", ["job.completed", "transcript.completed", "job.failed"],
                        description="org default")
    world.subs["a"] = a
    assert a["secret"].startswith("whsec_") and a["org_id"] == "default" and a["active"] is True
    assert a["secret_hint"].endswith(a["secret"][-4:])
    b = await subscribe(stack, receiver, world.org_admin_b, "/b",
                        ["job.completed", "job.failed", "job.running", "transcript.completed"])
    world.subs["b"] = b
    assert b["org_id"] == world.org_b

    status, got, _ = await call(stack, world.admin, "GET", f"/v1/webhooks/{a['id']}")
    assert status == 200 and "secret" not in got and "secret_sealed" not in json.dumps(got)
    # the secret is given once; the admin (platform) sees every organization's subscriptions
    status, listed, _ = await call(stack, world.admin, "GET", "/v1/webhooks")
    assert {a["id"], b["id"]} <= {s["id"] for s in listed["webhooks"]}

    # another organization's subscription is 404 for every verb, like one that does not exist
    status, listed, _ = await call(stack, world.org_admin_b, "GET", "/v1/webhooks")
    assert [s["id"] for s in listed["webhooks"]] == [b["id"]]
    for method, path, kw in (("GET", "", {}), ("PATCH", "", {"json": {"active": False}}), ("DELETE", "", {}),
                             ("GET", "/deliveries", {}), ("POST", "/test", {})):
        status, body, ctype = await call(stack, world.org_admin_b, method, f"/v1/webhooks/{a['id']}{path}", **kw)
        assert status == 404 and ctype == "application/problem+json", (method, path, status, body)
    # users may not manage webhooks
    status, body, _ = await call(stack, world.user_b, "GET", "/v1/webhooks")
    assert status == 403, body
    status, body, _ = await call(stack, world.user_b, "POST", "/v1/webhooks",
                                 json={"url": receiver.url("/x"), "events": ["job.completed"]})
    assert status == 403, body
    # an org_admin cannot create in another organization
    status, body, _ = await call(stack, world.org_admin_b, "POST", "/v1/webhooks", json={
        "url": receiver.url("/x"), "events": ["job.completed"], "org_id": "default"})
    assert status == 403, body

    for bad in ({"url": "ftp://example.com/x", "events": ["job.completed"]},
                {"url": "https://user:pw@example.com/", "events": ["job.completed"]},
                {"url": "not a url", "events": ["job.completed"]},
                {"url": "https://example.com/h", "events": []},
                {"url": "https://example.com/h", "events": ["job.exploded"]},
                {"url": "https://example.com/h", "events": ["job.completed"], "secret": "short"}):
        status, body, ctype = await call(stack, world.admin, "POST", "/v1/webhooks", json=bad)
        assert status == 400 and ctype == "application/problem+json", (bad, body)

    status, body, _ = await call(stack, world.admin, "PATCH", f"/v1/webhooks/{a['id']}", json={"secret": "x" * 20})
    assert status == 400, body
    status, body, _ = await call(stack, world.admin, "PATCH", f"/v1/webhooks/{a['id']}", json={"active": False})
    assert status == 200 and body["active"] is False
    status, body, _ = await call(stack, world.admin, "POST", f"/v1/webhooks/{a['id']}/test")
    assert status == 409, body
    status, body, _ = await call(stack, world.admin, "PATCH", f"/v1/webhooks/{a['id']}",
                                 json={"active": True, "events": ["job.completed", "transcript.completed",
                                                                  "job.failed", "job.completed"]})
    assert status == 200 and body["active"] is True
    assert body["events"] == ["job.completed", "transcript.completed", "job.failed"]

    # a test ping arrives signed, through the delivery loop, and is logged
    status, ping, _ = await call(stack, world.admin, "POST", f"/v1/webhooks/{a['id']}/test")
    assert status == 202, ping
    got_ping = await wait_for(lambda: _async(receiver.got("/a", "ping")), 30, "the ping")
    assert got_ping[0].headers["X-Streamscribe-Delivery"] == ping["delivery_id"]
    assert got_ping[0].payload["id"] == ping["event_id"]
    logged = await wait_for(lambda: _delivered(stack, world.admin, a["id"], "ping"), 15, "the logged ping")
    assert logged[0]["attempts"] == 1 and logged[0]["last_status"] == 204


async def _async(value: Any) -> Any:
    return value


async def _delivered(stack: Stack, token: str, sub_id: str, event_type: str) -> list[dict[str, Any]]:
    return [d for d in await deliveries(stack, token, sub_id, event_type=event_type) if d["status"] == "delivered"]


async def test_job_events_are_delivered_signed_once_with_retries(stack: Stack, receiver: Receiver, world: World,
                                                                 speech: Path) -> None:
    a, b = world.subs["a"], world.subs["b"]
    flaky = await subscribe(stack, receiver, world.admin, "/flaky", ["job.completed"])
    progress = await subscribe(stack, receiver, world.admin, "/progress", ["job.running"])

    final, _ = await stack.transcribe(speech / "read" / "LJ001-0002.wav")
    assert final["status"] == "completed", final
    job_id = final["job_id"]

    done = await wait_for(lambda: _async(receiver.got("/a", "job.completed", job_id)), 30, "job.completed at /a")
    await wait_for(lambda: _async(receiver.got("/a", "transcript.completed", job_id)), 30, "transcript.completed")
    flaky_log = await wait_for(lambda: _delivered(stack, world.admin, flaky["id"], "job.completed"), 60,
                               "the flaky receiver's delivery to succeed")
    await asyncio.sleep(2)  # room for any duplicate to show up

    # exactly one signed job.completed, with the job's id and no transcript text
    done = receiver.got("/a", "job.completed", job_id)
    assert len(done) == 1, [r.payload for r in done]
    event = done[0].payload
    assert event["type"] == "job.completed" and event["id"].startswith("evt_")
    assert event["data"]["job_id"] == job_id and event["data"]["org_id"] == "default"
    assert event["data"]["status"] == "completed" and event["data"]["revision"] == 1
    assert event["data"]["links"] == {"job": f"/v1/jobs/{job_id}", "transcript": f"/v1/jobs/{job_id}/transcript"}
    assert set(event["data"]) == {"job_id", "stream_id", "org_id", "revision", "status", "error", "links"}
    assert done[0].headers["X-Streamscribe-Event"] == "job.completed"
    assert not [r for r in receiver.log if not r.verified]

    log = await deliveries(stack, world.admin, a["id"], job_id=job_id, event_type="job.completed")
    assert len(log) == 1
    assert log[0]["id"] == done[0].headers["X-Streamscribe-Delivery"] and log[0]["event_id"] == event["id"]
    assert (log[0]["status"], log[0]["attempts"], log[0]["last_status"]) == ("delivered", 1, 204)
    assert [x["http_status"] for x in log[0]["attempt_log"]] == [204]
    assert log[0]["payload"] == event

    # the flaky receiver: 500, 500, then 204, each retry later than the one before; every attempt logged
    assert (flaky_log[0]["attempts"], flaky_log[0]["last_status"]) == (3, 204)
    assert [x["http_status"] for x in flaky_log[0]["attempt_log"]] == [500, 500, 204]
    assert flaky_log[0]["attempt_log"][0]["error"].startswith("HTTP 500")
    times = [r.at for r in receiver.log if r.path == "/flaky"
             and r.headers["X-Streamscribe-Delivery"] == flaky_log[0]["id"]]
    assert len(times) == 3
    first_gap, second_gap = times[1] - times[0], times[2] - times[1]
    assert 0.8 <= first_gap < 2.0 and 2.6 <= second_gap < 5.0 and second_gap > first_gap, (first_gap, second_gap)
    assert len(receiver.got("/flaky", "job.completed", job_id)) == 3  # the same delivery, tried three times

    # stage progress goes only to job.running subscribers, one per stage start and finish
    running = receiver.got("/progress", "job.running", job_id)
    keys = [(r.payload["data"]["stage"], r.payload["data"]["stage_status"]) for r in running]
    assert ("asr", "running") in keys and ("post", "completed") in keys
    assert len(keys) == len(set(keys)), keys
    progress_log = await deliveries(stack, world.admin, progress["id"], job_id=job_id)
    assert len(progress_log) == len(keys) and {d["event_type"] for d in progress_log} == {"job.running"}
    assert not receiver.got("/a", "job.running")

    # the other organization's subscription heard nothing of this org's job
    assert not [r for r in receiver.log if r.path == "/b"]
    assert await deliveries(stack, world.org_admin_b, b["id"]) == []

    # receiver side: verify rejects tampering and the wrong secret
    r = done[0]
    ts, sig = r.headers["X-Streamscribe-Timestamp"], r.headers["X-Streamscribe-Signature"]
    assert verify(a["secret"], ts, r.body, sig)
    assert not verify(a["secret"], ts, r.body.replace(job_id.encode(), b"0" * len(job_id)), sig)
    assert not verify(b["secret"], ts, r.body, sig)
    assert not verify(a["secret"], str(int(ts) + 1), r.body, sig)
    assert not verify(a["secret"], str(int(ts) - 3600), r.body, sign(a["secret"], int(ts) - 3600, r.body))
    # ... and a forged request to the receiver is turned away
    async with aiohttp.ClientSession() as http, http.post(receiver.url("/a"), data=r.body, headers={
            **{k: v for k, v in r.headers.items() if k.startswith("X-Streamscribe")},
            "X-Streamscribe-Signature": sign(b["secret"], ts, r.body)}) as resp:
        assert resp.status == 401


async def test_failed_job_is_delivered_once(stack: Stack, receiver: Receiver, world: World, tmp_path: Path) -> None:
    a = world.subs["a"]
    # a file with no decodable audio is refused at upload (nothing kept, no job); a silent one fails its own job
    silent = tmp_path / "silent.wav"
    with wave.open(str(silent), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(b"\x00\x00" * 16000 * 3)
    final, _ = await stack.transcribe(silent)
    assert final["status"] == "failed", final
    job_id = final["job_id"]
    failed = await wait_for(lambda: _async(receiver.got("/a", "job.failed", job_id)), 30, "job.failed")
    await asyncio.sleep(2)
    # the stage's FAILED report and the transcript's FAILED event are the same webhook event
    failed = receiver.got("/a", "job.failed", job_id)
    assert len(failed) == 1, [r.payload for r in failed]
    assert failed[0].payload["data"]["status"] == "failed" and failed[0].payload["data"]["error"]
    assert not receiver.got("/a", "job.completed", job_id)
    log = await deliveries(stack, world.admin, a["id"], job_id=job_id)
    assert [(d["event_type"], d["status"]) for d in log] == [("job.failed", "delivered")]


async def test_retries_give_up_and_manual_redelivery(stack: Stack, receiver: Receiver, world: World) -> None:
    down = await subscribe(stack, receiver, world.admin, "/down", ["job.failed"])
    status, ping, _ = await call(stack, world.admin, "POST", f"/v1/webhooks/{down['id']}/test")
    assert status == 202

    async def gave_up() -> list[dict[str, Any]]:
        return [d for d in await deliveries(stack, world.admin, down["id"]) if d["status"] == "gave_up"]

    log = await wait_for(gave_up, 30, "the delivery to give up")
    assert log[0]["attempts"] == 3 and log[0]["next_attempt_at"] is None
    assert [x["http_status"] for x in log[0]["attempt_log"]] == [500, 500, 500]

    receiver.down_ok = True
    status, body, _ = await call(stack, world.admin, "POST",
                                 f"/v1/webhooks/{down['id']}/deliveries/{ping['delivery_id']}/redeliver")
    assert status == 202, body
    log = await wait_for(lambda: _delivered(stack, world.admin, down["id"], "ping"), 30, "the redelivery")
    assert log[0]["attempts"] == 4 and [x["http_status"] for x in log[0]["attempt_log"]] == [500, 500, 500, 204]

    # delete: gone for good, and audited
    status, _, _ = await call(stack, world.admin, "DELETE", f"/v1/webhooks/{down['id']}")
    assert status == 204
    status, _, _ = await call(stack, world.admin, "GET", f"/v1/webhooks/{down['id']}")
    assert status == 404
    status, audit, _ = await call(stack, world.admin, "GET", "/v1/audit", params={"limit": "200"})
    actions = {(e["action"], e["resource"]) for e in audit["entries"]}
    assert ("webhook.create", f"webhook:{down['id']}") in actions
    assert ("webhook.delete", f"webhook:{down['id']}") in actions
