"""Receiving files: an upload is spooled to a private temporary file while it arrives (bounded memory, size
limit enforced as it goes), probed when it is a recording, then stored once, encrypted, in object storage."""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from connectors.storage.base import ObjectStore
from connectors.storage.spool import process_dir
from foundation.settings import Settings
from gateway.probe import Probe, probe_path
from gateway.problems import Problem
from gateway.validation import check_text


async def multipart_parts(request: web.Request, expected: str) -> AsyncIterator[aiohttp.BodyPartReader]:
    """The parts of a multipart/form-data body; a body that is not one (or is malformed) is a 4xx problem that
    says what was ``expected``, never a server error."""
    if not request.content_type.startswith("multipart/"):
        raise Problem(415, "Unsupported Media Type", f"send multipart/form-data with {expected}")
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if isinstance(part, aiohttp.BodyPartReader):
                yield part
    except (ValueError, HttpProcessingError) as exc:  # no boundary, a body that does not follow it, bad headers
        raise Problem(400, "Bad Request", f"malformed multipart/form-data body ({exc}); send {expected}") from None


def spool_dir(settings: Settings) -> Path:
    """This gateway process's private spool (0700; removed when it exits or dies: connectors.storage.spool)."""
    return process_dir(settings.spool_root, "gateway")


async def spool_part(part: aiohttp.BodyPartReader, settings: Settings, limit: int | None = None,
                     suffix: str = "") -> tuple[Path, int]:
    """Write one multipart part to a private temporary file as it arrives, enforcing the size limit (413);
    returns the file, which the caller deletes, and its size."""
    limit = limit or settings.gateway.max_upload_bytes
    fd, name = tempfile.mkstemp(dir=spool_dir(settings), prefix="upload-", suffix=suffix)
    tmp = Path(name)
    size = 0
    try:
        with os.fdopen(fd, "wb") as fh:
            while chunk := await part.read_chunk(1 << 20):
                size += len(chunk)
                if size > limit:
                    raise Problem(413, "Payload Too Large", f"uploads are limited to {limit} bytes")
                fh.write(chunk)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp, size


async def spool_to_store(part: aiohttp.BodyPartReader, store: ObjectStore, key: str, settings: Settings,
                         content_type: str | None = None, limit: int | None = None) -> int:
    """Stream one multipart part into ``store`` under ``key``; returns its size in bytes."""
    tmp, size = await spool_part(part, settings, limit)
    try:
        await store.put_file(key, tmp, content_type)
        return size
    finally:
        tmp.unlink(missing_ok=True)


async def spool_and_probe(part: aiohttp.BodyPartReader, store: ObjectStore, key: str, settings: Settings,
                          content_type: str | None = None, *, refuse_undecodable: bool = False) -> tuple[int, Probe]:
    """Like ``spool_to_store`` (a private temporary file, the size limit enforced as the part arrives, then one
    encrypted ``put_file``), probing the file before it is stored. With ``refuse_undecodable`` a file without
    decodable audio is refused (422) and never stored."""
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


async def form_text(part: aiohttp.BodyPartReader, *, strip: bool = True) -> str:
    """A text field of a multipart body, stripped unless ``strip`` is false (to check it as it was sent); 400 if
    it is not text PostgreSQL can keep."""
    try:
        value = await part.text()
    except (UnicodeDecodeError, LookupError):
        raise Problem(400, "Bad Request", f"form field {part.name!r} is not valid text") from None
    return check_text(value.strip() if strip else value, f"form.{part.name}")


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
