"""Requests are validated in one place, against the OpenAPI document: text PostgreSQL cannot store and numbers
beyond its columns are a 400 before any handler runs, and the document states bounds for everything it takes.

The middlewares run here in the real application (without its database: these requests never get past them)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from foundation.settings import Settings
from gateway.app import create_app
from gateway.openapi import DOCUMENT, INT4_MAX
from gateway.problems import Problem
from gateway.validation import BIGINT, check_text, storable_json, unstorable


def test_what_postgresql_cannot_store_is_named() -> None:
    assert unstorable("fine, even ünïcödé") is None
    assert "NUL" in (unstorable("a\x00b") or "")
    assert "Unicode" in (unstorable("\udcff") or "")  # a byte that is not UTF-8, kept by surrogateescape
    with pytest.raises(Problem) as exc:
        check_text("x\x00", "form.language")
    assert exc.value.status == 400 and "form.language" in json.loads(exc.value.text or "{}")["detail"]


@pytest.mark.parametrize("body, where", [
    ({"options": ["x", {"language": "en\x00"}]}, "body.options[1].language"),
    ({"na\x00me": 1}, "body (a field name)"),
    ({"job_ids": ["\ud800"]}, "body.job_ids[0]"),
    ({"retention_days": 2**63}, "body.retention_days"),
    ({"a": [[-(2**63) - 1]]}, "body.a[0][0]"),
    ({"x": float("inf")}, "body.x"),
])
def test_unstorable_json_is_found_at_any_depth(body: dict[str, Any], where: str) -> None:
    found = storable_json(body)
    assert found and found[0][0] == where


def teststorable_json_passes() -> None:
    assert storable_json({"a": [1, 2.5, None, True, {"b": "ok", "c": BIGINT[1], "d": BIGINT[0]}]}) == []


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    app = create_app(Settings(home=tmp_path_factory.mktemp("home")))
    doc: dict[str, Any] = json.loads(json.dumps(app[DOCUMENT]))
    return doc


def _request_schemas(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema a request carries: parameters and bodies, nested properties and items included."""
    def walk(where: str, schema: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
        if "$ref" in schema:
            schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
        yield where, schema
        for name, inner in schema.get("properties", {}).items():
            yield from walk(f"{where}.{name}", inner)
        for key in ("items", "additionalProperties"):
            if isinstance(schema.get(key), dict):
                yield from walk(f"{where}[]", schema[key])
        for inner in schema.get("allOf", []) + schema.get("anyOf", []) + schema.get("oneOf", []):
            yield from walk(where, inner)

    for path, item in doc["paths"].items():
        for method, op in item.items():
            label = f"{method.upper()} {path}"
            for param in op.get("parameters", []):
                yield from walk(f"{label} {param['in']}.{param['name']}", param["schema"])
            for media, content in op.get("requestBody", {}).get("content", {}).items():
                yield from walk(f"{label} body({media})", content["schema"])


def _kinds(schema: dict[str, Any]) -> set[str]:
    kind = schema.get("type")
    return set(kind) if isinstance(kind, list) else {kind} if kind else set()


def test_every_integer_a_request_carries_is_bounded_within_the_database_columns(document: dict[str, Any]) -> None:
    """An integer without bounds (or bounds beyond PostgreSQL's integer) is how 470545276266864 retention days
    became a server error; every one the API takes is declared, and kept within int4."""
    integers = [(where, s) for where, s in _request_schemas(document) if "integer" in _kinds(s)]
    assert len(integers) >= 15
    for where, schema in integers:
        assert "minimum" in schema and "maximum" in schema, f"{where} has no bounds"
        assert -(2**31) <= schema["minimum"] <= schema["maximum"] <= INT4_MAX, where


def test_every_text_a_request_carries_is_bounded(document: dict[str, Any]) -> None:
    for where, schema in _request_schemas(document):
        if "string" in _kinds(schema) and schema.get("format") != "binary":
            assert "maxLength" in schema or "pattern" in schema or "enum" in schema, f"{where} is unbounded text"
        if "number" in _kinds(schema):
            assert "minimum" in schema and "maximum" in schema, f"{where} has no bounds"


def test_every_creating_operation_links_to_what_reads_changes_or_deletes_it(document: dict[str, Any]) -> None:
    ids = {op["operationId"] for item in document["paths"].values() for op in item.values()}
    links = {name: link for item in document["paths"].values() for op in item.values()
             for response in op["responses"].values() for name, link in response.get("links", {}).items()}
    assert len(links) >= 40
    assert {link["operationId"] for link in links.values()} <= ids
    creators = {"post_jobs", "post_files", "post_speakers", "post_organizations", "post_users", "post_keys",
                "post_webhooks"}
    linked_from = {op["operationId"] for item in document["paths"].values() for op in item.values()
                   if any(r.get("links") for r in op["responses"].values())}
    assert creators <= linked_from


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = create_app(Settings(home=tmp_path))
    app.cleanup_ctx.clear()  # no database, broker or store: these requests are answered by the middlewares
    app.on_startup.clear()
    app.on_shutdown.clear()
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def test_nul_in_a_path_or_query_parameter_is_a_400_before_authentication(
        client: TestClient[web.Request, web.Application]) -> None:
    for path, name in (("/v1/jobs/%00", "path.job_id"), ("/v1/jobs/%00/transcript", "path.job_id"),
                       ("/v1/speakers/a%00b", "path.profile_id"), ("/v1/search?q=%00", "query.q"),
                       ("/v1/search?q=a&speaker=%00", "query.speaker"), ("/v1/jobs?tag=%00", "query.tag")):
        resp = await client.get(path)
        body = await resp.json(content_type=None)
        assert resp.status == 400 and resp.content_type == "application/problem+json", (path, body)
        assert body["invalid_params"][0]["name"] == name and "NUL" in body["invalid_params"][0]["reason"]


async def test_a_header_that_is_not_utf8_is_a_400(client: TestClient[web.Request, web.Application]) -> None:
    """A byte that is not UTF-8 in a credential (sent raw: a client library would encode it) once reached the
    key lookup in PostgreSQL as a lone surrogate."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(b"GET /v1/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ssk_\xff_x\r\nConnection: close\r\n\r\n")
    await writer.drain()
    answer = await reader.read()
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), head
    assert json.loads(body)["invalid_params"][0]["name"] == "header.Authorization"


@pytest.mark.parametrize("body, name", [
    ('{"email": "a@b.c", "password": "x\\u0000y"}', "body.password"),
    ('{"email": "\\ud800@b.c", "password": "xy"}', "body.email"),
    ('{"email": "a@b.c"}', "body"),
    ('{"email": "a@b.c", "password": 12}', "body.password"),
    ('{"email": "a@b.c", "password": "p", "deep": [[[[99999999999999999999999]]]]}', "body.deep[0][0][0][0]"),
    ('{"email": "a@b.c", "password": NaN}', "body"),
    ("[" * 100_000 + "]" * 100_000, "body"),
    ("not json", "body"),
])
async def test_json_bodies_are_checked_against_the_document(client: TestClient[web.Request, web.Application],
                                                            body: str, name: str) -> None:
    resp = await client.post("/v1/auth/token", data=body, headers={"Content-Type": "application/json"})
    problem = await resp.json(content_type=None)
    assert resp.status == 400, problem
    assert problem["invalid_params"][0]["name"] == name, problem
    assert "x\x00y" not in json.dumps(problem)  # the value is never echoed


async def test_a_json_body_beyond_the_limit_is_a_413(client: TestClient[web.Request, web.Application]) -> None:
    big = json.dumps({"email": "a@b.c", "password": "x" * (5 * 1024 * 1024)})
    resp = await client.post("/v1/auth/token", data=big, headers={"Content-Type": "application/json"})
    assert resp.status == 413


async def test_a_json_body_that_arrives_in_pieces_is_read_whole(
        client: TestClient[web.Request, web.Application]) -> None:
    """A body within the limit is parsed once all of it has arrived: a large one that came in several pieces was
    once read as far as the first, and refused as "not valid JSON" (the fuzzer's 5000 word edits)."""
    body = json.dumps({"email": "a@b.c", "password": 12, "pad": "x" * 600_000}).encode()

    async def pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 64 * 1024):
            yield body[start:start + 64 * 1024]
            await asyncio.sleep(0)

    resp = await client.post("/v1/auth/token", data=pieces(), headers={"Content-Type": "application/json"})
    problem = await resp.json(content_type=None)
    assert resp.status == 400 and [p["name"] for p in problem["invalid_params"]] == ["body.password"], problem
