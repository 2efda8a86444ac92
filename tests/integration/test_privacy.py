"""Privacy and data management on the real stack: PII redaction with originals only for allowed roles,
erasure of a job / a user / an organization, retention, full-text search, usage, cancel and retry."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from foundation.events import AsrSegment
from streams.kafka.clients import publisher_producer
from streams.kafka.schema_registry import make_registry
from streams.kafka.serde import AvroSerde
from streams.kafka.topics import ASR_SEGMENTS
from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration


async def _call(stack: Stack, token: str | None, method: str, path: str, **kw: Any) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession(headers=headers) as http, http.request(method, stack.url + path, **kw) as resp:
        text = await resp.text()
        try:
            return resp.status, json.loads(text) if text else None
        except ValueError:
            return resp.status, text


@pytest.fixture(scope="module")
async def org(stack: Stack) -> dict[str, str]:
    """A fresh organization with an org_admin and a user (tokens), for this module."""
    admin = stack.admin_key
    status, o = await _call(stack, admin, "POST", "/v1/organizations", json={"name": "privacy"})
    assert status == 201
    out = {"org_id": o["id"]}
    for role in ("org_admin", "user"):
        email = f"{role}.{uuid.uuid4().hex[:6]}@example.com"
        status, user = await _call(stack, admin, "POST", "/v1/users", json={
            "org_id": o["id"], "email": email, "password": "a long password", "role": role})
        assert status == 201, user
        status, tok = await _call(stack, None, "POST", "/v1/auth/token",
                                  json={"email": email, "password": "a long password"})
        out[role] = tok["access_token"]
        out[f"{role}_id"] = user["id"]
    return out


async def _upload(stack: Stack, token: str, path: Path, **fields: str) -> str:
    form = aiohttp.FormData()
    for k, v in fields.items():
        form.add_field(k, v)
    form.add_field("file", path.read_bytes(), filename=path.name)
    status, job = await _call(stack, token, "POST", "/v1/jobs", data=form)
    assert status == 202, job
    return str(job["job_id"])


async def _wait(stack: Stack, token: str, job_id: str) -> dict[str, Any]:
    for _ in range(900):
        status, job = await _call(stack, token, "GET", f"/v1/jobs/{job_id}")
        if status == 200 and job["status"] in ("completed", "failed", "cancelled"):
            return dict(job)
        await asyncio.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish")


def _words(text: str, start: float) -> list[dict[str, Any]]:
    return [{"start": start + i * 0.4, "end": start + i * 0.4 + 0.35, "word": f" {w}", "probability": 0.9}
            for i, w in enumerate(text.split())]


async def test_redaction_hides_pii_from_roles_without_pii_read(stack: Stack, org: dict[str, str]) -> None:
    """Recognised text carrying a card number and an email enters post-processing on asr.segments (as the ASR
    stage would publish it); the stored transcript is redacted, the original only for pii:read."""
    settings = stack.settings()
    serde = AvroSerde(make_registry("", settings.schema_registry_file))
    stream = f"pii-{uuid.uuid4().hex[:8]}"
    said = "my card is 4111 1111 1111 1111 and my email is jane.doe@example.com thanks"
    base: dict[str, Any] = {
        "stream_id": stream, "language": "en", "language_probability": 1.0, "avg_logprob": -0.1,
        "no_speech_prob": 0.01, "model": "tiny.en", "pipeline_version": "test", "processing_seconds": 0.1,
        "options": {"redact": "all", "diarize": "off", "org_id": org["org_id"]}}
    producer = publisher_producer(settings.kafka, "test-privacy")
    producer.produce(ASR_SEGMENTS, key=stream.encode(), value=serde.serialize(ASR_SEGMENTS, AsrSegment(
        **base, kind="FINAL", segment_id=f"{stream}:m:000000000", index=0, start=0.0, end=8.0, text=said,
        words=_words(said, 0.0))))
    producer.produce(ASR_SEGMENTS, key=stream.encode(), value=serde.serialize(ASR_SEGMENTS, AsrSegment(
        **base, kind="END", segment_id=f"{stream}:end", index=1, start=8.0, end=8.0, segment_count=1,
        duration=8.0)))
    assert producer.flush(30) == 0

    admin = stack.admin_key
    for _ in range(300):
        status, job = await _call(stack, admin, "GET", f"/v1/jobs/{stream}")
        if status == 200 and job["status"] == "completed":
            break
        await asyncio.sleep(0.2)
    status, t = await _call(stack, admin, "GET", f"/v1/jobs/{stream}/transcript")
    assert status == 200, t
    assert t["redacted"] and t["redactions"] == 2
    assert "[CARD]" in t["text"] and "[EMAIL]" in t["text"]
    assert "4111" not in json.dumps(t) and "jane.doe" not in json.dumps(t)
    status, original = await _call(stack, admin, "GET", f"/v1/jobs/{stream}/transcript?original=true")
    assert status == 200 and "4111 1111 1111 1111" in original["text"] and not original["redacted"]
    # search indexes the redacted text only
    status, found = await _call(stack, admin, "GET", "/v1/search?q=4111")
    assert status == 200 and all(h["job_id"] != stream for h in found["hits"])
    # the audit log records reading the original
    status, log = await _call(stack, admin, "GET", "/v1/audit?limit=50")
    assert any(e["action"] == "transcript.read" and e["resource"] == f"job:{stream}" and e["details"]["original"]
               for e in log["entries"])


async def test_original_transcript_needs_pii_read(stack: Stack, org: dict[str, str], speech: Path) -> None:
    job_id = await _upload(stack, org["user"], speech / "read" / "LJ001-0002.wav", redact="all", diarize="off")
    assert (await _wait(stack, org["user"], job_id))["status"] == "completed"
    assert (await _call(stack, org["user"], "GET", f"/v1/jobs/{job_id}/transcript"))[0] == 200
    assert (await _call(stack, org["user"], "GET", f"/v1/jobs/{job_id}/transcript?original=true"))[0] == 403
    assert (await _call(stack, org["org_admin"], "GET", f"/v1/jobs/{job_id}/transcript?original=true"))[0] == 200


async def test_search_ranks_highlights_and_filters(stack: Stack, org: dict[str, str], speech: Path) -> None:
    token = org["user"]
    a = await _upload(stack, token, speech / "read" / "LJ001-0003.wav", diarize="off")  # ...Chinese took impressions
    b = await _upload(stack, token, speech / "read" / "LJ001-0004.wav", diarize="off")  # ...the block books
    for job in (a, b):
        assert (await _wait(stack, token, job))["status"] == "completed"
    status, res = await _call(stack, token, "GET", "/v1/search?q=chinese impressions")
    assert status == 200 and res["hits"] and res["hits"][0]["job_id"] == a
    assert "<mark>" in res["hits"][0]["snippet"].lower() and "chinese" in res["hits"][0]["snippet"].lower()
    status, res = await _call(stack, token, "GET", f"/v1/search?q=block books&job_id={a}")
    assert status == 200 and res["hits"] == []
    status, res = await _call(stack, token, "GET", "/v1/search?q=block books&from=2999-01-01T00:00:00Z")
    assert status == 200 and res["hits"] == []
    status, res = await _call(stack, token, "GET", "/v1/search?q=block books")
    assert [h["job_id"] for h in res["hits"]][:1] == [b]
    # another organization's search never sees these
    status, res = await _call(stack, stack.admin_key, "GET", "/v1/search?q=block books")
    assert any(h["job_id"] == b for h in res["hits"])  # the platform admin sees all
    status, _bad = await _call(stack, token, "GET", "/v1/search?q=")
    assert status == 400


async def test_usage_counts_audio_seconds(stack: Stack, org: dict[str, str]) -> None:
    status, usage = await _call(stack, org["user"], "GET", "/v1/usage")
    assert status == 200
    mine = {o["org_id"]: o for o in usage["organizations"]}
    assert set(mine) == {org["org_id"]}
    assert mine[org["org_id"]]["audio_seconds"] > 5 and mine[org["org_id"]]["jobs"].get("completed", 0) >= 2


async def test_cancel_and_retry(stack: Stack, org: dict[str, str], speech: Path) -> None:
    token = org["user"]
    job_id = await _upload(stack, token, speech / "calls" / "call_center_phone_call.mp3")
    status, job = await _call(stack, token, "POST", f"/v1/jobs/{job_id}/cancel")
    assert status == 200 and job["status"] == "cancelled"
    await asyncio.sleep(15)  # the pipeline finishes its in-flight work; none of it is kept
    status, job = await _call(stack, token, "GET", f"/v1/jobs/{job_id}")
    assert job["status"] == "cancelled"
    status, _ = await _call(stack, token, "GET", f"/v1/jobs/{job_id}/transcript")
    assert status == 409
    assert (await _call(stack, token, "POST", f"/v1/jobs/{job_id}/cancel"))[0] == 409
    status, body = await _call(stack, token, "POST", f"/v1/jobs/{job_id}/retry")
    assert status == 202 and body["revision"] == 2 and body["created"]
    job = await _wait(stack, token, job_id)
    assert job["status"] == "completed" and job["revision"] == 2
    status, t = await _call(stack, token, "GET", f"/v1/jobs/{job_id}/transcript")
    assert status == 200 and t["revision"] == 2 and "scarf" in t["text"].lower()


async def test_a_job_deleted_in_flight_stays_deleted(stack: Stack, org: dict[str, str], speech: Path) -> None:
    """Deleted while the pipeline works on it: what it still sends is dropped, and the job does not come back. (The
    materializer makes a job of a stream it does not know, for streams produced straight to Kafka; it used to make
    one of a deleted job's later results too, a running "producer" job with part of the transcript, found by the
    OpenAPI fuzzing.) A twin of the job, uploaded beside it, sets how long to wait: once it is done, so is the
    pipeline's work on the deleted one."""
    token = org["user"]
    meeting = speech / "meetings" / "ami_dev00.flac"
    deleted = await _upload(stack, token, meeting)
    twin = await _upload(stack, token, meeting)
    for _ in range(600):
        _, job = await _call(stack, token, "GET", f"/v1/jobs/{deleted}")
        if job["status"] == "running" and any(st["state"] == "completed" for st in job["stages"].values()):
            break
        await asyncio.sleep(0.1)
    assert job["status"] == "running", job  # in flight: its first stage is done, the rest is still to come
    assert (await _call(stack, token, "DELETE", f"/v1/jobs/{deleted}"))[0] == 204
    assert (await _wait(stack, token, twin))["status"] == "completed"
    await asyncio.sleep(5)  # the materializer's last batch
    db = await stack.db()
    try:
        for table in ("jobs", "revisions", "transcripts", "transcript_segments", "job_stages"):
            assert await db.fetchval(f"SELECT count(*) FROM {table} WHERE job_id = $1", deleted) == 0, table
        assert await db.fetchval("SELECT count(*) FROM deleted_jobs WHERE job_id = $1", deleted) == 1
    finally:
        await db.close()


async def test_cursor_pagination_walks_every_job_once(stack: Stack, org: dict[str, str]) -> None:
    seen: list[str] = []
    cursor = None
    while True:
        path = "/v1/jobs?limit=2" + (f"&cursor={cursor}" if cursor else "")
        status, page = await _call(stack, org["org_admin"], "GET", path)
        assert status == 200
        seen += [j["job_id"] for j in page["jobs"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    status, everything = await _call(stack, org["org_admin"], "GET", "/v1/jobs?limit=200")
    assert seen == [j["job_id"] for j in everything["jobs"]] and len(seen) >= 4
    assert (await _call(stack, org["org_admin"], "GET", "/v1/jobs?cursor=garbage"))[0] == 400


async def test_erasing_a_job_removes_it_everywhere(stack: Stack, org: dict[str, str], speech: Path) -> None:
    token = org["user"]
    job_id = await _upload(stack, token, speech / "read" / "LJ001-0005.wav", diarize="off")
    assert (await _wait(stack, token, job_id))["status"] == "completed"
    objects = stack.home / "objects" / "uploads" / job_id
    assert objects.exists()
    assert (await _call(stack, token, "DELETE", f"/v1/jobs/{job_id}"))[0] == 204
    assert (await _call(stack, token, "GET", f"/v1/jobs/{job_id}"))[0] == 404
    assert not objects.exists() or not any(objects.iterdir())
    _status, res = await _call(stack, token, "GET", "/v1/search?q=movable metal letters")
    assert all(h["job_id"] != job_id for h in res["hits"])
    conn = await stack.db()
    try:
        for table in ("jobs", "transcripts", "transcript_segments", "revisions", "job_stages"):
            assert await conn.fetchval(f"SELECT count(*) FROM {table} WHERE job_id = $1", job_id) == 0, table
    finally:
        await conn.close()


async def test_retention_and_user_erasure(stack: Stack, org: dict[str, str], speech: Path) -> None:
    token = org["user"]
    old = await _upload(stack, token, speech / "read" / "LJ001-0006.wav", diarize="off")
    assert (await _wait(stack, token, old))["status"] == "completed"
    status, _ = await _call(stack, org["org_admin"], "PATCH", f"/v1/organizations/{org['org_id']}",
                            json={"retention_days": 30})
    assert status == 200
    conn = await stack.db()
    try:
        await conn.execute("UPDATE jobs SET created_at = now() - interval '31 days' WHERE job_id = $1", old)
        # a job deleted long ago is forgotten (its id no longer needed to drop its late results), a recent one not
        await conn.execute("INSERT INTO deleted_jobs (job_id, deleted_at) VALUES ('deleted-long-ago', now() - "
                           "interval '36 days'), ('deleted-lately', now() - interval '34 days')")
        out = stack.cli("maintenance", "--once")
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)[org["org_id"]]["jobs"] >= 1
        assert await conn.fetchval("SELECT count(*) FROM jobs WHERE job_id = $1", old) == 0
        assert await conn.fetchval("SELECT count(*) FROM transcript_segments WHERE job_id = $1", old) == 0
        assert await conn.fetchval("SELECT count(*) FROM deleted_jobs WHERE job_id = $1", old) == 1
        assert [r["job_id"] for r in await conn.fetch(
            "SELECT job_id FROM deleted_jobs WHERE job_id LIKE 'deleted-%'")] == ["deleted-lately"]
        assert not (stack.home / "objects" / "uploads" / old).exists() or not any(
            (stack.home / "objects" / "uploads" / old).iterdir())

        # GDPR erasure of the user: their recordings, transcripts, voice profiles and account
        mine = await conn.fetch("SELECT job_id FROM jobs WHERE user_id = $1", org["user_id"])
        assert mine
        status, body = await _call(stack, org["org_admin"], "POST", f"/v1/users/{org['user_id']}/erase")
        assert status == 200 and body["erased"]["jobs"] == len(mine) and body["erased"]["users"] == 1
        assert await conn.fetchval("SELECT count(*) FROM jobs WHERE user_id = $1", org["user_id"]) == 0
        assert await conn.fetchval("SELECT count(*) FROM users WHERE user_id = $1", org["user_id"]) == 0
        assert (await _call(stack, token, "GET", "/v1/me"))[0] == 401  # an erased account's tokens stop at once
    finally:
        await conn.close()


async def test_the_only_admin_cannot_be_removed(stack: Stack) -> None:
    admin = stack.admin_key
    status, me = await _call(stack, admin, "GET", "/v1/me")
    assert status == 200 and me["role"] == "admin"
    for method, path in (("POST", f"/v1/users/{me['user_id']}/erase"), ("DELETE", f"/v1/users/{me['user_id']}")):
        status, body = await _call(stack, admin, method, path)
        assert status == 409 and "only administrator" in body["detail"], (method, status, body)
    assert (await _call(stack, admin, "GET", "/v1/me"))[0] == 200

    # with a second administrator, the first may go (here: the second one goes, so the session keeps its admin)
    email = f"admin.{uuid.uuid4().hex[:6]}@example.com"
    status, second = await _call(stack, admin, "POST", "/v1/users", json={
        "org_id": "default", "email": email, "password": "a long password", "role": "admin"})
    assert status == 201, second
    status, _ = await _call(stack, admin, "DELETE", f"/v1/users/{second['id']}")
    assert status == 204
