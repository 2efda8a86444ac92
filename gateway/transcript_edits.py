"""Corrections of a transcript's words, saved as a new revision: ``POST /v1/jobs/{job_id}/edits``.

The body names the revision the edits were made on (default: the latest completed one) and the words
changed, by segment id and word index. Word timings are kept, so the corrected transcript stays synced to the
audio; the revision edited stays as it was (``GET /v1/jobs/{id}/revisions`` lists both, ``compare`` diffs them).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.access import visible_job
from gateway.auth.audit import audit
from gateway.auth.permissions import add_route, needs
from gateway.problems import Problem
from gateway.refs import EDITS, JOBS
from gateway.validation import json_object
from repositories.edits import NotInRevision, RevisionNotEditable

MAX_EDITS = 5000
MAX_WORD = 200


def parse_edits(body: dict[str, Any]) -> dict[str, dict[int, str]]:
    """``{"words": [{"segment_id", "index", "word"}, ...]}`` -> segment id -> word index -> new text."""
    words = body.get("words")
    if not isinstance(words, list) or not 1 <= len(words) <= MAX_EDITS:
        raise Problem(400, "Bad Request", f"words must be a list of 1 to {MAX_EDITS} edits")
    edits: dict[str, dict[int, str]] = {}
    for n, item in enumerate(words):
        if not isinstance(item, dict):
            raise Problem(400, "Bad Request", f"words[{n}] must be an object with segment_id, index and word")
        segment, index, text = item.get("segment_id"), item.get("index"), item.get("word")
        if not isinstance(segment, str) or not segment or len(segment) > 300:
            raise Problem(400, "Bad Request", f"words[{n}].segment_id must be a segment id")
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise Problem(400, "Bad Request", f"words[{n}].index must be a word index (an integer from 0)")
        if not isinstance(text, str) or len(text) > MAX_WORD:
            raise Problem(400, "Bad Request", f"words[{n}].word must be text of at most {MAX_WORD} characters "
                                              "(empty removes the word)")
        edits.setdefault(segment, {})[index] = text
    return edits


async def save_edits(request: web.Request) -> web.Response:
    """POST /v1/jobs/{job_id}/edits {"revision": N, "words": [{"segment_id", "index", "word"}]} -> 201 with the
    new revision."""
    job_id = request.match_info["job_id"]
    principal, job = await visible_job(request, job_id)
    body = await json_object(request)
    edits = parse_edits(body)
    base = body.get("revision")
    if base is None:
        base = await request.app[JOBS].latest_completed_revision(job_id)
        if base is None:
            raise Problem(409, "Not ready", f"job {job_id} has no completed transcript to edit",
                          job_status=job["status"])
    elif not isinstance(base, int) or isinstance(base, bool) or base < 1:
        raise Problem(400, "Bad Request", "revision must be a revision number")
    try:
        revision, changed = await request.app[EDITS].save_edit(job_id, base, edits,
                                                                              principal.actor)
    except RevisionNotEditable as exc:
        raise Problem(409, "Not editable", str(exc)) from None
    except NotInRevision as exc:  # what it names does not exist, as a job or file named elsewhere: a 404
        raise Problem(404, "Not Found", str(exc.args[0])) from None
    await audit(request, principal, "transcript.edit", f"job:{job_id}",
                {"revision": revision, "based_on": base, "changed": changed}, org_id=job["org_id"])
    return web.json_response(
        {"job_id": job_id, "revision": revision, "based_on": base, "changed": changed,
         "links": {"transcript": f"/v1/jobs/{job_id}/transcript?revision={revision}",
                   "compare": f"/v1/jobs/{job_id}/compare?a={base}&b={revision}"}},
        status=201, headers={"Location": f"/v1/jobs/{job_id}/transcript?revision={revision}"})


def add_routes(app: web.Application) -> None:
    add_route(app, "POST", "/v1/jobs/{job_id}/edits", save_edits, needs("jobs:write"))
