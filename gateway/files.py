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
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import web

from connectors.storage.base import ObjectNotFound
from foundation.logs import get_logger
from gateway.auth.audit import audit
from gateway.auth.middleware import caller
from gateway.auth.permissions import add_route, needs
from gateway.auth.principal import Principal
from gateway.params import decode_cursor, next_cursor, parse_limit
from gateway.probe import Probe
from gateway.problems import Problem
from gateway.refs import FILES, SETTINGS, STORE
from gateway.uploads import clean_filename, multipart_parts, object_key, spool_and_probe, spool_dir
from repositories.files import NewFile, file_json

log = get_logger(__name__)

# served back as they were given; anything else (text/html, say) is served as opaque bytes
SAFE_MEDIA_TYPE = re.compile(r"(audio|video)/[A-Za-z0-9.+-]{1,100}|application/(ogg|octet-stream)")


def new_file_id() -> str:
    return uuid.uuid4().hex


def file_row(*, file_id: str, org_id: str, user_id: str | None, object_key: str, filename: str | None,
             content_type: str | None, size_bytes: int, found: Probe | None) -> NewFile:
    """The ``files`` row of a stored recording and what its probe found."""
    found = found or Probe(error="not probed")
    return NewFile(file_id=file_id, org_id=org_id, user_id=user_id, object_key=object_key, filename=filename,
                   content_type=content_type, size_bytes=size_bytes, duration=found.duration, codec=found.codec,
                   container=found.container, sample_rate=found.sample_rate, channels=found.channels,
                   probe_error=found.error)


async def visible_file(request: web.Request, file_id: str) -> tuple[Principal, dict[str, Any]]:
    """The caller and the file's row, if the file is in the caller's organization; 404 otherwise, the same answer
    as for a file that does not exist."""
    principal = caller(request)
    found = await request.app[FILES].record(file_id)
    if found is None or not principal.sees(found["org_id"]):
        raise Problem(404, "Not Found", f"no file {file_id!r}")
    return principal, found


# -- handlers -----------------------------------------------------------------------------------------------
async def upload_file(request: web.Request) -> web.Response:
    """POST /v1/files (multipart, field ``file``): store the recording and answer its metadata (201)."""
    principal = caller(request)
    store = request.app[STORE]
    file_id = new_file_id()
    row: NewFile | None = None
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
        await request.app[FILES].create(row)
    except BaseException:
        if row is not None:
            await store.delete(row.object_key)
        raise
    await audit(request, principal, "file.create", f"file:{file_id}",
                {"filename": row.filename, "size_bytes": row.size_bytes})
    log.info("file stored", file_id=file_id, size_bytes=row.size_bytes, codec=row.codec)
    stored = await request.app[FILES].file(file_id)
    return web.json_response(stored, status=201, headers={"Location": f"/v1/files/{file_id}"})


async def list_files(request: web.Request) -> web.Response:
    """GET /v1/files[?limit=&cursor=] the organization's files, newest first; ``next_cursor`` continues."""
    principal = caller(request)
    q = request.query
    limit = parse_limit(q)
    after = decode_cursor(q["cursor"]) if q.get("cursor") else None
    org = (q.get("org_id") or None) if principal.is_admin else principal.org_id
    found = await request.app[FILES].page(org, after, limit + 1)
    return web.json_response({"files": found[:limit], "next_cursor": next_cursor(found, limit, "file_id")})


async def get_file(request: web.Request) -> web.Response:
    """GET /v1/files/{file_id}: the metadata."""
    _, found = await visible_file(request, request.match_info["file_id"])
    return web.json_response(file_json(found))


def _disposition(filename: str) -> str:
    ascii_name = re.sub(r'[^A-Za-z0-9._ -]', "_", filename) or "download"
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"


async def download(request: web.Request) -> web.StreamResponse:
    """GET /v1/files/{file_id}/content: the original recording, decrypted, streamed."""
    file_id = request.match_info["file_id"]
    principal, found = await visible_file(request, file_id)
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
    principal, found = await visible_file(request, file_id)
    if not principal.can("jobs:delete") and found["user_id"] != principal.user_id:
        raise Problem(403, "Forbidden", "only the file's uploader or an org admin may delete it")
    deleted = await request.app[FILES].delete(file_id)
    if deleted is None:
        raise Problem(404, "Not Found", f"no file {file_id!r}")
    key, jobs = deleted
    await request.app[STORE].delete(key)
    await audit(request, principal, "file.delete", f"file:{file_id}",
                {"filename": found["filename"], "detached_jobs": jobs}, org_id=found["org_id"])
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    add_route(app, "POST", "/v1/files", upload_file, needs("jobs:write"))
    add_route(app, "GET", "/v1/files", list_files, needs("jobs:read"))
    add_route(app, "GET", "/v1/files/{file_id}", get_file, needs("jobs:read"))
    add_route(app, "GET", "/v1/files/{file_id}/content", download, needs("jobs:read"))
    add_route(app, "DELETE", "/v1/files/{file_id}", delete_file,
              needs("jobs:write", also="the file's uploader, or jobs:delete"))
