"""A job's recording for an audio player: ``GET /v1/jobs/{job_id}/audio``.

The stored object (an upload, or a live session's archived WAV) is decrypted into a private temporary file
for the request and served with HTTP range support (``Range``/``206``, ``If-Range``, ``Accept-Ranges``), so a
player can seek without downloading the whole file first; the plaintext is deleted as soon as the response is
sent. Needs ``jobs:read`` and the job's organization; plays are audited.
"""

from __future__ import annotations

import mimetypes
import os
import tempfile
from datetime import datetime
from pathlib import Path

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter

from connectors.storage.base import ObjectNotFound
from gateway.access import visible_job
from gateway.auth.audit import audit
from gateway.auth.permissions import add_route, needs
from gateway.files import SAFE_MEDIA_TYPE
from gateway.problems import Problem
from gateway.refs import RECORDINGS, SETTINGS, STORE
from gateway.uploads import spool_dir
from repositories.recordings import Recording


class SentOnce(web.FileResponse):
    """A file response the handler sends itself (so that the file can be deleted right after): aiohttp's own
    ``prepare`` of the returned response must then do nothing (``FileResponse`` would send the file again)."""

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        if self.prepared:
            return None
        return await super().prepare(request)


def media_type(recording: Recording) -> str:
    """The type to serve: the upload's own when it names audio or video, else one guessed from its name."""
    given = recording.content_type or ""
    if SAFE_MEDIA_TYPE.fullmatch(given) and given != "application/octet-stream":
        return given
    guessed, _ = mimetypes.guess_type(recording.filename or recording.object_key or "")
    if guessed and SAFE_MEDIA_TYPE.fullmatch(guessed):
        return guessed
    return "audio/wav" if recording.source == "live" else "application/octet-stream"


async def audio(request: web.Request) -> web.StreamResponse:
    job_id = request.match_info["job_id"]
    principal, job = await visible_job(request, job_id)
    recording = await request.app[RECORDINGS].recording(job_id)
    if recording is None or not recording.object_key:
        raise Problem(404, "Not Found", f"job {job_id} has no stored recording")
    fd, name = tempfile.mkstemp(dir=spool_dir(request.app[SETTINGS]), prefix="play-")
    os.close(fd)
    tmp = Path(name)
    try:
        try:
            await request.app[STORE].get_to_file(recording.object_key, tmp)
        except ObjectNotFound:
            raise Problem(404, "Not Found", f"the recording of job {job_id} is no longer stored") from None
        # a stable modification time, so the validators (ETag, Last-Modified) match across requests and
        # If-Range keeps working although each request decrypts a fresh copy
        stamp = datetime.fromisoformat(job["created_at"]).timestamp() if job.get("created_at") else 0.0
        os.utime(tmp, (stamp, stamp))
        _check_range(request, tmp.stat().st_size)
        if "Range" not in request.headers or request.headers["Range"].startswith("bytes=0-"):
            await audit(request, principal, "recording.play", f"job:{job_id}", org_id=job["org_id"])
        response = SentOnce(tmp, headers={"Content-Type": media_type(recording),
                                                  "Cache-Control": "private, no-store"})
        await response.prepare(request)  # sends the (ranged) body; the plaintext can go afterwards
        return response
    finally:
        tmp.unlink(missing_ok=True)


def _check_range(request: web.Request, size: int) -> None:
    """A range the recording cannot satisfy (it starts past the end, or ends before it starts) is a 416 problem
    document with ``Content-Range``, decided as aiohttp's file response would decide it."""
    if "Range" not in request.headers or "If-Range" in request.headers:
        return  # no range, or one aiohttp may ignore (a changed recording)
    try:
        start = request.http_range.start
        if start is not None and start < 0 and request.http_range.stop is None:  # the last N bytes
            start = max(0, start + size)
        satisfiable = start is None or start < size
    except ValueError:
        satisfiable = False
    if not satisfiable:
        problem = Problem(416, "Range Not Satisfiable", f"the range asked for is outside the recording's {size} "
                                                        "bytes")
        problem.headers["Content-Range"] = f"bytes */{size}"
        raise problem


def add_routes(app: web.Application) -> None:
    add_route(app, "GET", "/v1/jobs/{job_id}/audio", audio, needs("jobs:read"))
