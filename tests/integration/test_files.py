"""Files on the real stack: upload with probed metadata, encrypted at rest, byte-identical download, list with
cursor, organization isolation, refusal of files without audio, deletion; jobs made from stored files, every
job upload recorded as a file, job tags and priority."""

from __future__ import annotations

import asyncio
import json
import uuid
import wave
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration


async def _call(stack: Stack, token: str | None, method: str, path: str, **kw: Any) -> tuple[int, Any, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession(headers=headers) as http, http.request(method, stack.url + path, **kw) as resp:
        data = await resp.read()
        if resp.content_type in ("application/json", "application/problem+json"):
            return resp.status, json.loads(data), resp.headers
        return resp.status, data, resp.headers


@pytest.fixture(scope="module")
async def orgs(stack: Stack) -> dict[str, str]:
    """Two fresh organizations: "a" with an org_admin and a user, "b" with a user (tokens)."""
    out: dict[str, str] = {}
    for label, roles in (("a", ("org_admin", "user")), ("b", ("user",))):
        status, org, _ = await _call(stack, stack.admin_key, "POST", "/v1/organizations",
                                     json={"name": f"files {label}"})
        assert status == 201, org
        out[f"org_{label}"] = org["id"]
        for role in roles:
            email = f"files.{role}.{label}.{uuid.uuid4().hex[:6]}@example.com"
            status, user, _ = await _call(stack, stack.admin_key, "POST", "/v1/users", json={
                "org_id": org["id"], "email": email, "password": "a long password", "role": role})
            assert status == 201, user
            status, tok, _ = await _call(stack, None, "POST", "/v1/auth/token",
                                         json={"email": email, "password": "a long password"})
            assert status == 200, tok
            out[f"{role}.{label}"] = tok["access_token"]
    return out


def _form(path: Path | None = None, content_type: str | None = "audio/wav", data: bytes | None = None,
          filename: str | None = None, **fields: str) -> aiohttp.FormData:
    """multipart/form-data, also when it has no file"""
    form = aiohttp.FormData(default_to_multipart=True)
    for k, v in fields.items():
        form.add_field(k, v)
    if path is not None or data is not None:
        form.add_field("file", data if data is not None else path.read_bytes(),  # type: ignore[union-attr]
                       filename=filename or (path.name if path else "upload.bin"), content_type=content_type)
    return form


async def _upload_file(stack: Stack, token: str, path: Path, content_type: str = "audio/wav") -> dict[str, Any]:
    status, body, headers = await _call(stack, token, "POST", "/v1/files", data=_form(path, content_type))
    assert status == 201, body
    assert headers["Location"] == f"/v1/files/{body['file_id']}"
    return dict(body)


async def _wait(stack: Stack, token: str, job_id: str) -> dict[str, Any]:
    for _ in range(1500):
        status, job, _ = await _call(stack, token, "GET", f"/v1/jobs/{job_id}")
        if status == 200 and job["status"] in ("completed", "failed", "cancelled"):
            return dict(job)
        await asyncio.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish")


def _wav_seconds(path: Path) -> float:
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


def _objects(stack: Stack, prefix: str) -> set[Path]:
    root = stack.home / "objects" / prefix
    return {p for p in root.rglob("*") if p.is_file()} if root.exists() else set()


async def _audit(stack: Stack, token: str) -> list[dict[str, Any]]:
    status, log, _ = await _call(stack, token, "GET", "/v1/audit?limit=200")
    assert status == 200, log
    return list(log["entries"])


async def test_upload_probes_metadata_stores_encrypted_and_downloads_identically(
        stack: Stack, orgs: dict[str, str], speech: Path) -> None:
    user = orgs["user.a"]
    stereo = speech / "calls" / "stereo_two_party.wav"
    f = await _upload_file(stack, user, stereo)
    assert f["org_id"] == orgs["org_a"] and f["filename"] == "stereo_two_party.wav"
    assert (f["codec"], f["container"], f["sample_rate"], f["channels"]) == ("pcm_s16le", "wav", 16000, 2)
    assert abs(f["duration"] - _wav_seconds(stereo)) <= 0.05, f
    assert f["size_bytes"] == stereo.stat().st_size and f["probe_error"] is None
    status, got, _ = await _call(stack, user, "GET", f"/v1/files/{f['file_id']}")
    assert status == 200 and got == f

    mono = speech / "read" / "LJ001-0001.wav"
    m = await _upload_file(stack, user, mono)
    assert (m["codec"], m["sample_rate"], m["channels"]) == ("pcm_s16le", 22050, 1)
    assert abs(m["duration"] - _wav_seconds(mono)) <= 0.05, m

    # encrypted at rest: the stored object is not the recording, and no run of its samples appears in it
    stored = _objects(stack, f"files/{f['file_id']}")
    assert len(stored) == 1
    raw, plain = next(iter(stored)).read_bytes(), stereo.read_bytes()
    assert raw != plain and plain[:12] not in raw and plain[20_000:20_064] not in raw

    status, data, headers = await _call(stack, user, "GET", f"/v1/files/{f['file_id']}/content")
    assert status == 200 and data == plain
    assert headers["Content-Type"] == "audio/wav"
    assert 'filename="stereo_two_party.wav"' in headers["Content-Disposition"]
    assert headers["Content-Disposition"].startswith("attachment")
    entries = await _audit(stack, orgs["org_admin.a"])
    assert any(e["action"] == "file.download" and e["resource"] == f"file:{f['file_id']}" for e in entries)
    assert any(e["action"] == "file.create" and e["resource"] == f"file:{f['file_id']}" for e in entries)


async def test_list_walks_every_file_once_newest_first(stack: Stack, orgs: dict[str, str], speech: Path) -> None:
    user = orgs["user.a"]
    for name in ("LJ001-0002.wav", "LJ001-0004.wav"):
        await _upload_file(stack, user, speech / "read" / name)
    status, everything, _ = await _call(stack, user, "GET", "/v1/files?limit=200")
    assert status == 200 and everything["next_cursor"] is None
    files = everything["files"]
    assert len(files) >= 4 and {x["org_id"] for x in files} == {orgs["org_a"]}
    assert [x["created_at"] for x in files] == sorted((x["created_at"] for x in files), reverse=True)
    seen: list[str] = []
    cursor = None
    while True:
        status, page, _ = await _call(stack, user, "GET", "/v1/files?limit=2" + (f"&cursor={cursor}" if cursor else ""))
        assert status == 200 and len(page["files"]) <= 2
        seen += [x["file_id"] for x in page["files"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [x["file_id"] for x in files]
    assert (await _call(stack, user, "GET", "/v1/files?cursor=garbage"))[0] == 400
    assert (await _call(stack, user, "GET", "/v1/files?limit=many"))[0] == 400
    # the other organization sees none of them
    status, theirs, _ = await _call(stack, orgs["user.b"], "GET", "/v1/files?limit=200")
    assert status == 200 and not {x["file_id"] for x in theirs["files"]} & set(seen)


async def test_another_organization_gets_404(stack: Stack, orgs: dict[str, str], speech: Path) -> None:
    f = await _upload_file(stack, orgs["user.a"], speech / "read" / "LJ001-0005.wav")
    other = orgs["user.b"]
    for method, path in (("GET", f"/v1/files/{f['file_id']}"), ("GET", f"/v1/files/{f['file_id']}/content"),
                         ("DELETE", f"/v1/files/{f['file_id']}")):
        status, body, headers = await _call(stack, other, method, path)
        assert status == 404, (method, path, body)
        assert headers["Content-Type"].startswith("application/problem+json")
        assert body["detail"] == f"no file {f['file_id']!r}"  # the same as a file that does not exist
    status, body, _ = await _call(stack, other, "GET", "/v1/files/does-not-exist")
    assert status == 404 and body["detail"] == "no file 'does-not-exist'"
    status, body, _ = await _call(stack, other, "POST", "/v1/jobs", data={"file_id": f["file_id"]})
    assert status == 404, body
    # still there for its own organization
    assert (await _call(stack, orgs["user.a"], "GET", f"/v1/files/{f['file_id']}"))[0] == 200


async def test_a_file_without_audio_is_refused_and_nothing_is_stored(stack: Stack, orgs: dict[str, str],
                                                                     tmp_path: Path, speech: Path) -> None:
    user = orgs["user.a"]
    conn = await stack.db()
    try:
        before = await conn.fetchval("SELECT count(*) FROM files WHERE org_id = $1", orgs["org_a"])
        objects = _objects(stack, "files")
        text = tmp_path / "notes.txt"
        text.write_text("this is a text file, not a recording\n" * 50)
        truncated = (speech / "read" / "jfk.flac").read_bytes()[:60]
        for form, reason in ((_form(text), "no audio stream"),
                             (_form(data=truncated, filename="cut.flac", content_type="audio/flac"), ""),
                             (_form(data=b"", filename="empty.wav"), "empty file")):
            status, body, headers = await _call(stack, user, "POST", "/v1/files", data=form)
            assert status == 422, body
            assert headers["Content-Type"].startswith("application/problem+json")
            assert body["detail"].startswith("the file has no decodable audio") and reason in body["detail"], body
        status, body, _ = await _call(stack, user, "POST", "/v1/files", data=_form(**{"name": "x"}))
        assert status == 400 and "'file'" in body["detail"]
        status, body, _ = await _call(stack, user, "POST", "/v1/files", json={})
        assert status == 415
        assert await conn.fetchval("SELECT count(*) FROM files WHERE org_id = $1", orgs["org_a"]) == before
        assert _objects(stack, "files") <= objects
        assert not list((stack.home / "tmp").rglob("upload-*"))
    finally:
        await conn.close()


async def test_delete_removes_the_row_and_the_object(stack: Stack, orgs: dict[str, str], speech: Path) -> None:
    user = orgs["user.a"]
    f = await _upload_file(stack, user, speech / "read" / "LJ001-0006.wav")
    assert len(_objects(stack, f"files/{f['file_id']}")) == 1
    status, body, _ = await _call(stack, user, "DELETE", f"/v1/files/{f['file_id']}")
    assert status == 204, body
    assert (await _call(stack, user, "GET", f"/v1/files/{f['file_id']}"))[0] == 404
    assert (await _call(stack, user, "GET", f"/v1/files/{f['file_id']}/content"))[0] == 404
    assert (await _call(stack, user, "DELETE", f"/v1/files/{f['file_id']}"))[0] == 404
    assert _objects(stack, f"files/{f['file_id']}") == set()
    conn = await stack.db()
    try:
        assert await conn.fetchval("SELECT count(*) FROM files WHERE file_id = $1", f["file_id"]) == 0
    finally:
        await conn.close()
    entries = await _audit(stack, orgs["org_admin.a"])
    assert any(e["action"] == "file.delete" and e["resource"] == f"file:{f['file_id']}" for e in entries)


async def test_jobs_from_a_stored_file_share_it_without_a_copy(stack: Stack, orgs: dict[str, str],
                                                               speech: Path) -> None:
    user = orgs["user.a"]
    f = await _upload_file(stack, user, speech / "read" / "LJ001-0003.wav")
    # as a form field (urlencoded here; a multipart field works the same) and as a query parameter
    status, first, _ = await _call(stack, user, "POST", "/v1/jobs",
                                   data={"file_id": f["file_id"], "diarize": "off", "tags": "from-file,batch:7",
                                         "priority": "high"})
    assert status == 202, first
    assert first["file_id"] == f["file_id"] and first["tags"] == ["from-file", "batch:7"]
    status, second, _ = await _call(stack, user, "POST", f"/v1/jobs?file_id={f['file_id']}&diarize=off",
                                    data=_form(tags="from-file"))
    assert status == 202, second
    jobs = [await _wait(stack, user, j["job_id"]) for j in (first, second)]
    for job in jobs:
        assert job["status"] == "completed", job
        assert job["file_id"] == f["file_id"] and job["filename"] == "LJ001-0003.wav" and job["audio_stored"]
        assert _objects(stack, f"uploads/{job['job_id']}") == set()  # no copy
        status, t, _ = await _call(stack, user, "GET", f"/v1/jobs/{job['job_id']}/transcript")
        assert status == 200 and "chinese" in t["text"].lower(), t
    assert (jobs[0]["tags"], jobs[0]["priority"]) == (["from-file", "batch:7"], "high")
    assert (jobs[1]["tags"], jobs[1]["priority"]) == (["from-file"], "normal")
    # processing the jobs left the shared recording in place
    status, data, _ = await _call(stack, user, "GET", f"/v1/files/{f['file_id']}/content")
    assert status == 200 and data == (speech / "read" / "LJ001-0003.wav").read_bytes()
    status, listed, _ = await _call(stack, user, "GET", f"/v1/jobs?file_id={f['file_id']}")
    assert {j["job_id"] for j in listed["jobs"]} == {first["job_id"], second["job_id"]}

    # a file and a form together, or neither: refused
    status, body, _ = await _call(stack, user, "POST", "/v1/jobs",
                                  data=_form(speech / "read" / "LJ001-0003.wav", file_id=f["file_id"]))
    assert status == 400 and "not both" in body["detail"]
    assert (await _call(stack, user, "POST", "/v1/jobs", data=_form(diarize="off")))[0] == 400
    assert (await _call(stack, user, "POST", "/v1/jobs", data={"file_id": "no-such-file"}))[0] == 404

    # erasing one of the jobs leaves the stored file (its own resource) and the other job whole
    status, body, _ = await _call(stack, user, "DELETE", f"/v1/jobs/{second['job_id']}")
    assert status in (200, 204), body
    status, data, _ = await _call(stack, user, "GET", f"/v1/files/{f['file_id']}/content")
    assert status == 200 and data == (speech / "read" / "LJ001-0003.wav").read_bytes()
    status, job, _ = await _call(stack, user, "GET", f"/v1/jobs/{first['job_id']}")
    assert status == 200 and job["file_id"] == f["file_id"] and job["audio_stored"]

    # deleting the file: the jobs keep their transcripts, without stored audio
    assert (await _call(stack, user, "DELETE", f"/v1/files/{f['file_id']}"))[0] == 204
    status, job, _ = await _call(stack, user, "GET", f"/v1/jobs/{first['job_id']}")
    assert status == 200 and job["file_id"] is None and not job["audio_stored"]
    assert (await _call(stack, user, "GET", f"/v1/jobs/{first['job_id']}/transcript"))[0] == 200
    assert (await _call(stack, user, "POST", "/v1/jobs", data={"file_id": f["file_id"]}))[0] == 404


async def test_every_job_upload_is_a_file_and_jobs_carry_tags_and_priority(
        stack: Stack, orgs: dict[str, str], speech: Path, tmp_path: Path) -> None:
    user = orgs["user.a"]
    stereo = speech / "calls" / "stereo_two_party.wav"
    status, created, _ = await _call(stack, user, "POST", "/v1/jobs",
                                     data=_form(stereo, tags="support, q3", priority="low"))
    assert status == 202, created
    job_id, file_id = created["job_id"], created["file_id"]
    assert file_id and created["tags"] == ["support", "q3"] and created["priority"] == "low"
    status, f, _ = await _call(stack, user, "GET", f"/v1/files/{file_id}")
    assert status == 200 and f["channels"] == 2 and f["codec"] == "pcm_s16le" and f["sample_rate"] == 16000
    assert abs(f["duration"] - _wav_seconds(stereo)) <= 0.05
    conn = await stack.db()
    try:
        row = await conn.fetchrow("SELECT j.file_id, j.tags, j.priority, f.object_key AS file_key, j.object_key "
                                  "FROM jobs j JOIN files f USING (file_id) WHERE j.job_id = $1", job_id)
        assert row is not None and row["file_id"] == file_id and row["file_key"] == row["object_key"]
        assert row["object_key"].startswith(f"uploads/{job_id}/")
        assert list(row["tags"]) == ["support", "q3"] and row["priority"] == "low"
    finally:
        await conn.close()
    job = await _wait(stack, user, job_id)
    assert job["status"] == "completed" and job["file_id"] == file_id
    assert (job["tags"], job["priority"]) == (["support", "q3"], "low")

    async def tagged(tag: str) -> set[str]:
        status, page, _ = await _call(stack, user, "GET", f"/v1/jobs?tag={tag}&limit=200")
        assert status == 200
        return {j["job_id"] for j in page["jobs"]}

    assert job_id in await tagged("support") and job_id in await tagged("q3")
    assert job_id not in await tagged("escalated")
    status, page, _ = await _call(stack, user, "GET", "/v1/jobs?priority=low&limit=200")
    assert status == 200 and job_id in {j["job_id"] for j in page["jobs"]}
    assert {j["priority"] for j in page["jobs"]} == {"low"}
    assert (await _call(stack, user, "GET", "/v1/jobs?priority=urgent"))[0] == 400

    # PATCH: tags and priority, validated
    status, patched, _ = await _call(stack, user, "PATCH", f"/v1/jobs/{job_id}",
                                     json={"tags": ["escalated", "team:billing"], "priority": "high"})
    assert status == 200, patched
    assert patched["tags"] == ["escalated", "team:billing"] and patched["priority"] == "high"
    assert job_id in await tagged("escalated") and job_id not in await tagged("support")
    status, patched, _ = await _call(stack, user, "PATCH", f"/v1/jobs/{job_id}", json={"priority": "normal"})
    assert status == 200 and patched["priority"] == "normal" and patched["tags"] == ["escalated", "team:billing"]
    for bad in ({"priority": "urgent"}, {"tags": ["two words"]}, {"tags": "a,b"}, {"tags": ["x" * 65]},
                {"tags": [f"t{i}" for i in range(21)]}, {"status": "completed"}, {}, [], "text"):
        status, body, headers = await _call(stack, user, "PATCH", f"/v1/jobs/{job_id}", json=bad)
        assert status == 400, (bad, body)
        assert headers["Content-Type"].startswith("application/problem+json")
    status, body, _ = await _call(stack, user, "PATCH", f"/v1/jobs/{job_id}", data=b"{not json",
                                  headers={"Content-Type": "application/json"})
    assert status == 400
    status, body, _ = await _call(stack, orgs["user.b"], "PATCH", f"/v1/jobs/{job_id}", json={"priority": "low"})
    assert status == 404 and body["detail"] == f"no job {job_id!r}"
    status, job, _ = await _call(stack, user, "GET", f"/v1/jobs/{job_id}")
    assert (job["tags"], job["priority"]) == (["escalated", "team:billing"], "normal")

    # bad tags or priority at creation: refused, nothing kept
    conn = await stack.db()
    try:
        before = await conn.fetchval("SELECT count(*) FROM files WHERE org_id = $1", orgs["org_a"])
        uploads = _objects(stack, "uploads")
        for fields in ({"tags": "no spaces allowed"}, {"priority": "urgent"},
                       {"tags": ",".join(f"t{i}" for i in range(21))}):
            status, body, _ = await _call(stack, user, "POST", "/v1/jobs", data=_form(stereo, **fields))
            assert status == 400, (fields, body)
        assert await conn.fetchval("SELECT count(*) FROM files WHERE org_id = $1", orgs["org_a"]) == before
        assert _objects(stack, "uploads") <= uploads
    finally:
        await conn.close()

    # an upload without audio is refused exactly as POST /v1/files refuses it: 422 with the reason, nothing kept
    text = tmp_path / "notes.txt"
    text.write_text("not a recording\n" * 50)
    conn = await stack.db()
    try:
        before = await conn.fetchval("SELECT count(*) FROM files WHERE org_id = $1", orgs["org_a"])
        uploads = _objects(stack, "uploads")
        status, body, _ = await _call(stack, user, "POST", "/v1/jobs", data=_form(text, "text/plain"))
        assert status == 422 and "no audio stream" in body["detail"], body
        assert await conn.fetchval("SELECT count(*) FROM files WHERE org_id = $1", orgs["org_a"]) == before
        assert _objects(stack, "uploads") <= uploads
    finally:
        await conn.close()


async def test_an_uploaded_recording_stays_while_another_job_uses_it(stack: Stack, orgs: dict[str, str],
                                                                      speech: Path) -> None:
    user = orgs["user.a"]
    wav = speech / "read" / "LJ001-0005.wav"
    status, first, _ = await _call(stack, user, "POST", "/v1/jobs", data=_form(wav, diarize="off"))
    assert status == 202, first
    status, second, _ = await _call(stack, user, "POST", "/v1/jobs", data={"file_id": first["file_id"],
                                                                           "diarize": "off"})
    assert status == 202, second
    for job in (first, second):
        assert (await _wait(stack, user, job["job_id"]))["status"] == "completed"
    assert (await _call(stack, user, "DELETE", f"/v1/jobs/{first['job_id']}"))[0] == 204
    status, data, _ = await _call(stack, user, "GET", f"/v1/files/{first['file_id']}/content")
    assert status == 200 and data == wav.read_bytes()
    status, job, _ = await _call(stack, user, "GET", f"/v1/jobs/{second['job_id']}")
    assert status == 200 and job["audio_stored"] and job["file_id"] == first["file_id"]

    # once the last job that uses it is erased, the uploaded recording goes too
    assert (await _call(stack, user, "DELETE", f"/v1/jobs/{second['job_id']}"))[0] == 204
    assert (await _call(stack, user, "GET", f"/v1/files/{first['file_id']}"))[0] == 404
    assert _objects(stack, f"uploads/{first['job_id']}") == set()
