"""Bad input gets a clear error and loses nothing (on the real broker and PostgreSQL): a recording without
decodable audio, or a truncated one, is refused alike by both upload paths and nothing is kept; a silent one
fails its own job; text PostgreSQL cannot store and numbers beyond its columns are a 400 on every parameter and
body field; poison events go to dead-letter topics, and everything else keeps flowing."""

from __future__ import annotations

import asyncio
import struct
import uuid
import wave
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from foundation.events import AudioChunk
from streams.kafka.clients import publisher_producer
from streams.kafka.schema_registry import make_registry
from streams.kafka.serde import AvroSerde
from streams.kafka.topics import (
    ASR_SEGMENTS,
    AUDIO_CHUNKS,
    AUDIO_SPEECH,
    INGEST_REQUESTS,
    JOBS_EVENTS,
    TRANSCRIPTS,
)
from streamscribe.client import ApiError
from tests.integration.conftest import Stack
from tests.integration.dead_letters import read_dead_letters
from tests.recordings import FORMATS, convert, cut, in_every_container

pytestmark = [pytest.mark.integration, pytest.mark.embedded]


def _png(path: Path) -> None:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\x80\x80\x80" * 8 for _ in range(8))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def _silence(path: Path, seconds: float) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\x00\x00" * int(16000 * seconds))


def _zeros(path: Path, size: int) -> Path:
    with open(path, "wb") as fh:
        fh.truncate(size)
    return path


def _undecodable(tmp_path: Path, speech: Path) -> dict[Path, str]:
    """Files without decodable audio, and the reason each is refused for."""
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"\x00\x01garbage" * 300)  # fixed bytes: random ones are sometimes probed as audio
    header_only = tmp_path / "header-only.flac"
    header_only.write_bytes((speech / "read" / "jfk.flac").read_bytes()[:60])
    text = tmp_path / "notes.txt"
    text.write_text("this is a text file, not a recording\n" * 50)
    image = tmp_path / "picture.png"
    _png(image)
    truncated = cut(convert(speech / "read" / "LJ001-0001.wav", tmp_path / "speech.mp3", *FORMATS["mp3"]), 0.5)
    return {empty: "empty file", garbage: "unsupported or corrupt", header_only: "", text: "no audio stream",
            image: "no audio stream", _zeros(tmp_path / "zeros.wav", 16 * 1024 * 1024): "unsupported or corrupt",
            truncated: "truncated"}


async def test_bad_files_are_refused_silent_ones_fail_their_own_jobs_and_others_complete(
        stack: Stack, speech: Path, tmp_path: Path) -> None:
    silent = tmp_path / "silent.wav"
    _silence(silent, 8.0)
    good = speech / "read" / "LJ001-0003.wav"
    bad = _undecodable(tmp_path, speech)
    results = await asyncio.gather(*(stack.transcribe(p) for p in [silent, good]),
                                   *(stack.transcribe(p) for p in bad), return_exceptions=True)
    (silent_job, _), (good_job, transcript), *refused = results
    assert silent_job["status"] == "failed" and "no speech detected" in silent_job["error"], silent_job
    assert good_job["status"] == "completed", good_job
    assert "chinese" in transcript["text"].lower()
    for (path, reason), error in zip(bad.items(), refused, strict=True):
        assert isinstance(error, ApiError) and error.status == 422, (path.name, error)
        assert error.body["detail"].startswith("the file has no decodable audio") and reason in error.body["detail"]


async def test_failed_job_transcript_is_409_and_cli_exits_nonzero(stack: Stack, tmp_path: Path) -> None:
    silent = tmp_path / "silent.mp3"
    _silence(silent, 6.0)  # a WAV under another name: decodable, holds no speech
    out = stack.cli("transcribe", str(silent))
    assert out.returncode != 0
    assert "failed" in out.stderr and "no speech detected" in out.stderr
    assert out.stdout == ""
    empty = tmp_path / "empty.mp3"
    empty.write_bytes(b"")
    out = stack.cli("transcribe", str(empty))
    assert out.returncode != 0 and "422" in out.stderr and "empty file (0 bytes)" in out.stderr


def _kept(stack: Stack) -> set[Path]:
    """Every stored object and spooled upload of the stack."""
    roots = [stack.home / "objects", stack.home / "tmp"]
    return {p for root in roots if root.exists() for p in root.rglob("*") if p.is_file()}


async def _rows(stack: Stack) -> tuple[int, int]:
    conn = await stack.db()
    try:
        return (await conn.fetchval("SELECT count(*) FROM files"), await conn.fetchval("SELECT count(*) FROM jobs"))
    finally:
        await conn.close()


async def test_both_upload_paths_refuse_what_holds_no_audio_alike_and_keep_nothing(
        stack: Stack, speech: Path, tmp_path: Path) -> None:
    """POST /v1/jobs validates exactly like POST /v1/files (and the OpenAI-compatible endpoint like both, in
    OpenAI's terms: a 400 invalid_file_format): the same refusal with the same reason, and no file, job, stored
    object or spooled copy is left behind."""
    bad = _undecodable(tmp_path, speech)
    rows, kept = await _rows(stack), _kept(stack)
    async with aiohttp.ClientSession(headers=stack.auth) as http:
        for path, reason in bad.items():
            details = []
            for endpoint in ("/v1/files", "/v1/jobs", "/v1/audio/transcriptions"):
                form = aiohttp.FormData()
                form.add_field("file", path.read_bytes(), filename=path.name, content_type="audio/wav")
                async with http.post(stack.url + endpoint, data=form) as resp:
                    body = await resp.json(content_type=None)
                    expected = 400 if endpoint.startswith("/v1/audio/") else 422
                    assert resp.status == expected, (path.name, endpoint, resp.status, body)
                    details.append(body["error"]["message"] if endpoint.startswith("/v1/audio/") else body["detail"])
            assert reason in details[0] and details[0] == details[1] == details[2], (path.name, details)
    assert await _rows(stack) == rows
    assert _kept(stack) == kept


async def test_truncated_recordings_are_refused_alike_in_every_container(stack: Stack, speech: Path,
                                                                         tmp_path: Path) -> None:
    """One policy for every container: a recording cut short is refused by both upload paths with a reason that
    says it is truncated; the whole recording is accepted."""
    whole = in_every_container(speech / "read" / "LJ001-0001.wav", tmp_path)
    rows, kept = await _rows(stack), _kept(stack)
    async with aiohttp.ClientSession(headers=stack.auth) as http:
        async def post(endpoint: str, path: Path) -> tuple[int, Any]:
            form = aiohttp.FormData()
            form.add_field("file", path.read_bytes(), filename=path.name)
            async with http.post(stack.url + endpoint, data=form) as resp:
                return resp.status, await resp.json(content_type=None)

        for name, path in whole.items():
            for endpoint in ("/v1/files", "/v1/jobs"):
                status, body = await post(endpoint, cut(path, 0.6))
                assert status == 422 and "truncated" in body["detail"], (name, endpoint, status, body)
        assert await _rows(stack) == rows and _kept(stack) == kept
        for name, path in whole.items():
            status, body = await post("/v1/files", path)
            assert status == 201 and abs(body["duration"] - 9.66) < 0.1, (name, status, body)


# -- one validation for every parameter and body field ----------------------------------------------------
def _fill(path: str, op: dict[str, Any], **values: str) -> str:
    for param in op.get("parameters", []):
        if param["in"] == "path":
            pattern = param["schema"].get("pattern", "")
            default = "wh_" + "0" * 24 if pattern.startswith("^wh_") else (
                "dlv_" + "0" * 24 if pattern.startswith("^dlv_") else "zz-no-such-thing")
            path = path.replace("{" + param["name"] + "}", values.get(param["name"], default))
    return path


def _body_schema(doc: dict[str, Any], op: dict[str, Any]) -> dict[str, Any] | None:
    schema = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    if schema and "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _kinds(schema: dict[str, Any]) -> set[str]:
    kind = schema.get("type")
    return set(kind) if isinstance(kind, list) else {kind} if kind else set()


def _parameter_cases(path: str, method: str, op: dict[str, Any]) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    for param in op.get("parameters", []):
        name, where = param["name"], param["in"]
        if where == "path":
            yield method, _fill(path, op, **{name: "a%00b"}), f"path.{name}", {}
        elif where == "query":
            yield method, f"{_fill(path, op)}?{name}=a%00b", f"query.{name}", {}
            if "integer" in _kinds(param["schema"]):
                for value in (param["schema"]["maximum"] + 1, 2**63, -(2**63) - 1):
                    yield method, f"{_fill(path, op)}?{name}={value}", f"query.{name}", {}


def _body_cases(path: str, method: str, op: dict[str, Any],
                schema: dict[str, Any] | None) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    for field, inner in (schema or {}).get("properties", {}).items():
        target = _fill(path, op)
        kinds = _kinds(inner) | ({"string"} if "enum" in inner else set())
        if "string" in kinds:
            yield method, target, f"body.{field}", {"json": {field: "a\x00b"}}
            yield method, target, f"body.{field}", {"data": f'{{"{field}": "\\ud800"}}',
                                                    "headers": {"Content-Type": "application/json"}}
        if "integer" in kinds:
            for value in (inner["maximum"] + 1, 470545276266864, 2**63):
                yield method, target, f"body.{field}", {"json": {field: value}}


def _unstorable_cases(doc: dict[str, Any]) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    """(method, url, the parameter that is wrong, request options) for every parameter and JSON field."""
    for path, item in doc["paths"].items():
        for method, op in item.items():
            yield from _parameter_cases(path, method.upper(), op)
            yield from _body_cases(path, method.upper(), op, _body_schema(doc, op))
    # the issue's own cases, by name
    for url, name in (("/v1/search?q=%00", "query.q"), ("/v1/search?q=a&speaker=%00", "query.speaker"),
                      ("/v1/search?q=a&job_id=%00", "query.job_id"), ("/v1/jobs/%00", "path.job_id"),
                      ("/v1/jobs/%00/transcript", "path.job_id"), ("/v1/jobs/%00/revisions", "path.job_id"),
                      ("/v1/speakers/%00", "path.profile_id")):
        yield "GET", url, name, {}
    yield "POST", "/v1/organizations", "body.retention_days", {"json": {"name": "kept too long",
                                                                        "retention_days": 470545276266864}}


async def test_text_postgresql_cannot_store_and_numbers_beyond_its_columns_are_a_400_everywhere(
        stack: Stack) -> None:
    """Walks /openapi.json: every path and query parameter with a NUL character, every integer parameter and
    JSON field beyond its bound (and beyond a 64-bit integer), every text JSON field with a NUL or a lone
    surrogate, is a 400 problem naming that parameter, never a server error, and changes nothing."""
    rows = await _rows(stack)
    async with aiohttp.ClientSession(headers=stack.auth) as http:
        async with http.get(stack.url + "/openapi.json") as resp:
            doc = await resp.json()
        checked = 0
        for method, url, name, options in _unstorable_cases(doc):
            for _ in range(20):
                async with http.request(method, stack.url + url, **options) as resp:
                    if resp.status == 429:  # pace the walk: this is not a rate-limit test
                        await asyncio.sleep(float(resp.headers.get("Retry-After", "1")))
                        continue
                    body = await resp.json(content_type=None)
                    assert resp.status == 400, (method, url, name, resp.status, body)
                    assert resp.content_type == "application/problem+json", (method, url)
                    assert name in [p["name"] for p in body["invalid_params"]], (method, url, name, body)
                    checked += 1
                    break
        assert checked >= 200  # every parameter and field of the document (209 cases when this was written)
    assert await _rows(stack) == rows


async def test_an_enrollment_name_the_document_refuses_is_a_400_and_keeps_no_sample(stack: Stack,
                                                                                      speech: Path) -> None:
    """A voice profile's name is checked as it was sent against the document's ``name`` field (text PostgreSQL
    can keep, 1 to 200 characters, not blank), whether it comes before or after the recordings: a 400 naming
    ``form.name``, and neither a profile nor a stored sample is left. A name that spells a number is text like
    any other in a form (schemathesis once counted "-1.07e+272" as a number the API should have refused)."""
    recording = (speech / "read" / "LJ001-0001.wav").read_bytes()
    kept = _kept(stack)
    async with aiohttp.ClientSession(headers=stack.auth) as http:
        async with http.get(stack.url + "/v1/speakers") as resp:
            before = [p["id"] for p in (await resp.json())["speakers"]]
        for name, file_first in (("Lin\x00da", False), ("   ", True), (" " + "L" * 200, True), ("L" * 201, False)):
            form = aiohttp.FormData()
            parts = [("name", name, None), ("file", recording, "LJ001-0001.wav")]
            for field, value, filename in (parts[::-1] if file_first else parts):
                form.add_field(field, value, filename=filename)
            async with http.post(stack.url + "/v1/speakers", data=form) as resp:
                problem = await resp.json(content_type=None)
                assert resp.status == 400, (name, resp.status, problem)
                assert [p["name"] for p in problem["invalid_params"]] == ["form.name"], problem
        async with http.get(stack.url + "/v1/speakers") as resp:
            assert [p["id"] for p in (await resp.json())["speakers"]] == before
        assert _kept(stack) == kept
        form = aiohttp.FormData()
        form.add_field("name", "-1.07e+272")
        form.add_field("file", recording, filename="LJ001-0001.wav")
        async with http.post(stack.url + "/v1/speakers", data=form) as resp:
            profile = await resp.json()
            assert resp.status == 202 and profile["name"] == "-1.07e+272", profile
        async with http.delete(f"{stack.url}/v1/speakers/{profile['id']}") as resp:
            assert resp.status == 204


async def test_an_edit_naming_what_the_revision_lacks_is_a_404_and_makes_no_revision(stack: Stack,
                                                                                     speech: Path) -> None:
    job, transcript = await stack.transcribe(speech / "read" / "LJ001-0003.wav")
    assert job["status"] == "completed", job
    segment = transcript["segments"][0]
    edits = f"{stack.url}/v1/jobs/{job['job_id']}/edits"
    async with aiohttp.ClientSession(headers=stack.auth) as http:
        for word, reason in (({"segment_id": "no-such-segment", "index": 0}, "has no segment"),
                             ({"segment_id": segment["id"], "index": len(segment["words"])}, "has no word")):
            async with http.post(edits, json={"words": [{**word, "word": "x"}]}) as resp:
                problem = await resp.json(content_type=None)
                assert resp.status == 404 and reason in problem["detail"], (resp.status, problem)
        async with http.get(f"{stack.url}/v1/jobs/{job['job_id']}/revisions") as resp:
            assert [r["revision"] for r in (await resp.json())["revisions"]] == [transcript["revision"]]
        async with http.post(edits, json={"words": [{"segment_id": segment["id"], "index": 0, "word": "x"}]}) as resp:
            assert resp.status == 201, await resp.text()


async def test_poison_events_are_dead_lettered_and_stages_keep_going(stack: Stack, speech: Path) -> None:
    settings = stack.settings()
    serde = AvroSerde(make_registry("", settings.schema_registry_file))
    producer = publisher_producer(settings.kafka, "test-poison")
    topics = [INGEST_REQUESTS, AUDIO_CHUNKS, AUDIO_SPEECH, ASR_SEGMENTS, TRANSCRIPTS, JOBS_EVENTS]
    sent: dict[str, dict[str, bytes]] = {}
    for topic in topics:
        not_avro = f"poison-{uuid.uuid4().hex}"
        unknown_schema = f"poison-{uuid.uuid4().hex}"
        sent[topic] = {not_avro: b"{\"json\": \"is not the contract\"}",
                       unknown_schema: b"\x00\x00\x0f\x42\x40" + b"\x02\x04\x06"}
    # a well-formed event whose content a stage cannot handle: PCM with an odd byte count
    odd_pcm_key = f"poison-{uuid.uuid4().hex}"
    sent[AUDIO_CHUNKS][odd_pcm_key] = serde.serialize(AUDIO_CHUNKS, AudioChunk(
        stream_id=odd_pcm_key, seq=0, start_sample=0, sample_rate=16000, channels=1, data=b"\x01\x02\x03"))
    for topic, events in sent.items():
        for key, value in events.items():
            producer.produce(topic, key=key.encode(), value=value)
    assert producer.flush(30) == 0

    # the pipeline keeps flowing past the poison
    job, transcript = await stack.transcribe(speech / "read" / "LJ001-0004.wav")
    assert job["status"] == "completed", job
    assert "block books" in transcript["text"].lower()

    for topic, events in sent.items():
        found = read_dead_letters(stack, topic, set(events))
        assert set(found) == set(events), f"{topic}: dead letters missing for {set(events) - set(found)}"
        for key, letter in found.items():
            assert letter["topic"] == topic and letter["value"] == events[key]
            assert letter["error"] and letter["error_type"] and letter["stage"].startswith("streamscribe-")
    odd = read_dead_letters(stack, AUDIO_CHUNKS, {odd_pcm_key})[odd_pcm_key]
    assert odd["stage"] == "streamscribe-vad" and "even byte count" in odd["error"]
