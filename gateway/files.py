"""Files: recordings stored once, encrypted, in object storage, with the metadata a probe finds in them
(duration, codec, container, sample rate, channels). Jobs are made from them (``POST /v1/jobs`` with
``file_id``) without copying the audio, and every upload to ``POST /v1/jobs`` becomes a file too.

Files belong to an organization: another organization's file answers 404, exactly like one that does not
exist. Reading and uploading need ``jobs:read`` / ``jobs:write`` (there is no separate files scope); deleting
needs ``jobs:write`` and being the uploader, or ``jobs:delete`` (an org admin). Downloads and deletions are
audited.
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
import uuid
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

import aiohttp
from aiohttp import web

from connectors.ingest.decode import DecodeError, decode_chunks, probe
from connectors.storage.base import ObjectNotFound, ObjectStore
from foundation.logs import get_logger
from foundation.settings import Settings
from gateway.access import audit
from gateway.auth.middleware import require
from gateway.auth.principal import Principal
from gateway.job_ops import _cursor, _decode_cursor, text_param
from gateway.problems import Problem
from gateway.refs import REPO, SETTINGS, STORE
from gateway.uploads import multipart_parts, spool_dir, spool_part

log = get_logger(__name__)

# served back as they were given; anything else (text/html, say) is served as opaque bytes
SAFE_MEDIA_TYPE = re.compile(r"(audio|video)/[A-Za-z0-9.+-]{1,100}|application/(ogg|octet-stream)")


@dataclass(frozen=True)
class Probe:
    """What PyAV found in a recording; ``error`` says why there is no decodable audio in it."""

    duration: float | None = None
    codec: str | None = None
    container: str | None = None
    sample_rate: int | None = None
    channels: int | None = None
    error: str | None = None


def probe_path(path: Path) -> Probe:
    """Read the container and audio stream headers, then decode the first moments of audio: a file that
    claims an audio stream but holds nothing decodable is refused here, not later in the pipeline.
    Blocking: call it in a thread."""
    try:
        info = probe(path)
        chunks = cast(Generator[Any, None, None], decode_chunks(path, 0.25))  # a generator: close it
        try:
            next(chunks)
        finally:
            chunks.close()
    except DecodeError as exc:
        return Probe(error=str(exc))
    except Exception as exc:  # a decoder surprise is the file's problem, not a server error
        log.warning("probe failed", error=repr(exc))
        return Probe(error=f"unsupported or corrupt file: {type(exc).__name__}")
    return Probe(duration=info.duration, codec=info.codec, container=info.container,
                 sample_rate=info.sample_rate or None, channels=info.channels or None)


async def spool_and_probe(part: aiohttp.BodyPartReader, store: ObjectStore, key: str, settings: Settings,
                          content_type: str | None = None, *, refuse_undecodable: bool = False) -> tuple[int, Probe]:
    """Like ``gateway.uploads.spool_to_store`` (a private temporary file, the size limit enforced as the part
    arrives, then one encrypted ``put_file``), probing the file before it is stored. With
    ``refuse_undecodable`` a file without decodable audio is refused (422) and never stored."""
    tmp, size = await spool_part(part, settings, suffix=Path(key).suffix)
    try:
        found = await asyncio.to_thread(probe_path, tmp)
        if found.error and refuse_undecodable:
            raise Problem(422, "Unprocessable Content", f"the file has no decodable audio: {found.error}",
                          reason=found.error)
        await store.put_file(key, tmp, content_type)
        return size, found
    finally:
        tmp.unlink(missing_ok=True)


def new_file_id() -> str:
    return uuid.uuid4().hex


def clean_filename(raw: str | None) -> str:
    """The name a client gave its file, without directories or control characters, at most 255 characters."""
    name = re.sub(r"[\x00-\x1f\x7f]", "", Path((raw or "").replace("\\", "/")).name)[:255].strip()
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        name = name.encode("utf-8", "replace").decode("utf-8")
    return name or "upload"


def object_key(prefix: str, filename: str) -> str:
    """``{prefix}/original`` plus the file's extension when it is a plain one (decoders use it as a hint)."""
    suffix = Path(filename).suffix.lower()
    return f"{prefix}/original{suffix if re.fullmatch(r'[.][a-z0-9]{1,9}', suffix) else ''}"


async def form_text(part: aiohttp.BodyPartReader) -> str:
    """A text field of a multipart body, stripped; 400 if it is not text PostgreSQL can keep."""
    try:
        value = (await part.text()).strip()
    except (UnicodeDecodeError, LookupError):
        raise Problem(400, "Bad Request", f"form field {part.name!r} is not valid text") from None
    return text_param(value, f"form field {part.name!r}") or ""


def file_row(*, file_id: str, org_id: str, user_id: str | None, object_key: str, filename: str | None,
             content_type: str | None, size_bytes: int, found: Probe | None) -> dict[str, Any]:
    """The columns of a ``files`` row (``Repository.create_file`` / ``create_job(new_file=...)``)."""
    found = found or Probe(error="not probed")
    return {"file_id": file_id, "org_id": org_id, "user_id": user_id, "object_key": object_key,
            "filename": filename, "content_type": content_type, "size_bytes": size_bytes,
            "duration": found.duration, "codec": found.codec, "container": found.container,
            "sample_rate": found.sample_rate, "channels": found.channels, "probe_error": found.error}


async def visible_file(request: web.Request, file_id: str, scope: str) -> tuple[Principal, dict[str, Any]]:
    """The caller and the file's row, if the caller may ``scope`` and the file is in its organization; 404
    otherwise, the same answer as for a file that does not exist."""
    principal = require(request, scope)
    try:
        found = await request.app[REPO].file_record(text_param(file_id, "file_id") or "")
    except Problem:  # not an id PostgreSQL could hold: no such file
        found = None
    if found is None or not principal.sees(found["org_id"]):
        raise Problem(404, "Not Found", f"no file {file_id!r}")
    return principal, found


# -- handlers -----------------------------------------------------------------------------------------------
async def upload_file(request: web.Request) -> web.Response:
    """POST /v1/files (multipart, field ``file``): store the recording and answer its metadata (201)."""
    principal = require(request, "jobs:write")
    store = request.app[STORE]
    file_id = new_file_id()
    row: dict[str, Any] | None = None
    try:
        async for part in multipart_parts(request, "the recording in field 'file'"):
            if part.name != "file" or row is not None:
                await part.release()
                continue
            filename = clean_filename(part.filename)
            content_type = part.headers.get("Content-Type")
            key = object_key(f"files/{file_id}", filename)
            size, found = await spool_and_probe(part, store, key, request.app[SETTINGS], content_type,
                                                refuse_undecodable=True)
            row = file_row(file_id=file_id, org_id=principal.org_id, user_id=principal.user_id, object_key=key,
                           filename=filename, content_type=content_type, size_bytes=size, found=found)
        if row is None:
            raise Problem(400, "Bad Request", "the multipart body has no 'file' field")
        await request.app[REPO].create_file(row)
    except BaseException:
        if row is not None:
            await store.delete(row["object_key"])
        raise
    await audit(request, principal, "file.create", f"file:{file_id}",
                {"filename": row["filename"], "size_bytes": row["size_bytes"]})
    log.info("file stored", file_id=file_id, size_bytes=row["size_bytes"], codec=row["codec"])
    stored = await request.app[REPO].file(file_id)
    return web.json_response(stored, status=201, headers={"Location": f"/v1/files/{file_id}"})


async def list_files(request: web.Request) -> web.Response:
    """GET /v1/files[?limit=&cursor=] the organization's files, newest first; ``next_cursor`` continues."""
    principal = require(request, "jobs:read")
    q = request.query
    try:
        limit = min(200, max(1, int(q.get("limit", "50"))))
    except ValueError:
        raise Problem(400, "Bad Request", "limit must be an integer") from None
    after = _decode_cursor(q["cursor"]) if q.get("cursor") else None
    org = text_param(q.get("org_id"), "org_id") if principal.is_admin else principal.org_id
    repo = request.app[REPO]
    rows = await repo.list_files(org, after, limit + 1)
    more = len(rows) > limit
    return web.json_response({
        "files": [repo._file_json(r) for r in rows[:limit]],
        "next_cursor": _cursor(rows[limit - 1]["created_at"], rows[limit - 1]["file_id"]) if more else None})


async def get_file(request: web.Request) -> web.Response:
    """GET /v1/files/{file_id}: the metadata."""
    _, found = await visible_file(request, request.match_info["file_id"], "jobs:read")
    return web.json_response(request.app[REPO]._file_json(found))


def _disposition(filename: str) -> str:
    ascii_name = re.sub(r'[^A-Za-z0-9._ -]', "_", filename) or "download"
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"


async def download(request: web.Request) -> web.StreamResponse:
    """GET /v1/files/{file_id}/content: the original recording, decrypted, streamed."""
    file_id = request.match_info["file_id"]
    principal, found = await visible_file(request, file_id, "jobs:read")
    settings = request.app[SETTINGS]
    fd, name = tempfile.mkstemp(dir=spool_dir(settings), prefix="download-")
    os.close(fd)
    tmp = Path(name)
    try:
        try:
            await request.app[STORE].get_to_file(found["object_key"], tmp)
        except ObjectNotFound:
            raise Problem(404, "Not Found", f"the content of file {file_id!r} is no longer stored") from None
        await audit(request, principal, "file.download", f"file:{file_id}", {"filename": found["filename"]},
                    org_id=found["org_id"])
        media = found["content_type"] or ""
        response = web.StreamResponse(headers={
            "Content-Type": media if SAFE_MEDIA_TYPE.fullmatch(media) else "application/octet-stream",
            "Content-Disposition": _disposition(found["filename"] or f"{file_id}"),
            "Content-Length": str(tmp.stat().st_size)})
        await response.prepare(request)
        with open(tmp, "rb") as fh:
            while chunk := await asyncio.to_thread(fh.read, 1 << 20):
                await response.write(chunk)
        await response.write_eof()
        return response
    finally:
        tmp.unlink(missing_ok=True)


async def delete_file(request: web.Request) -> web.Response:
    """DELETE /v1/files/{file_id}: the row and the stored recording. Jobs made from the file keep their
    transcripts; they no longer have stored audio (no retry or replay)."""
    file_id = request.match_info["file_id"]
    principal, found = await visible_file(request, file_id, "jobs:write")
    if not principal.can("jobs:delete") and found["user_id"] != principal.user_id:
        raise Problem(403, "Forbidden", "only the file's uploader or an org admin may delete it")
    deleted = await request.app[REPO].delete_file(file_id)
    if deleted is None:
        raise Problem(404, "Not Found", f"no file {file_id!r}")
    key, jobs = deleted
    await request.app[STORE].delete(key)
    await audit(request, principal, "file.delete", f"file:{file_id}",
                {"filename": found["filename"], "detached_jobs": jobs}, org_id=found["org_id"])
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/files", upload_file)
    app.router.add_get("/v1/files", list_files)
    app.router.add_get("/v1/files/{file_id}", get_file)
    app.router.add_get("/v1/files/{file_id}/content", download)
    app.router.add_delete("/v1/files/{file_id}", delete_file)
