"""Receiving files: an upload is spooled to a private temporary file while it arrives (bounded memory, size
limit enforced as it goes), then stored once, encrypted, in object storage."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from connectors.storage.base import ObjectStore
from connectors.storage.spool import process_dir
from foundation.settings import Settings
from gateway.problems import Problem


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
