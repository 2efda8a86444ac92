"""Replay and comparison: re-run stored recordings through the pipeline with another model or settings as a
new revision, read any revision, and compare two revisions of a transcript.

A replay runs every stage, or the ``stages`` it names (e.g. ``["diarization", "post"]``): the results of the
stages it does not run are those of the job's latest completed revision (``gateway.rediarize``,
``foundation.revision``)."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from foundation.logs import get_logger
from gateway.access import visible_job
from gateway.auth.audit import audit
from gateway.auth.middleware import caller
from gateway.auth.permissions import add_route, needs
from gateway.auth.principal import Principal
from gateway.intake import queue_revision
from gateway.options import RESERVED_OPTIONS, parse_priority, validate_options
from gateway.params import parse_time
from gateway.problems import Problem
from gateway.rediarize import parse_stages, partial_options
from gateway.refs import JOBS, MODELS, PUBLISHER, SETTINGS
from gateway.validation import json_object
from processors.asr.models import UnknownModel
from processors.post.compare import compare
from repositories.jobs import JobStore

log = get_logger(__name__)
MAX_JOBS = 1000


def _overrides(body: dict[str, Any]) -> dict[str, str]:
    """The options a replay changes (``options`` and the top-level shortcuts), validated, with its priority."""
    requested = body.get("options") or {}
    if not isinstance(requested, dict):
        raise Problem(400, "Bad Request", "options must be an object of option names to values")
    overrides = {k: str(v) for k, v in requested.items() if v is not None and k not in RESERVED_OPTIONS}
    for key in ("language", "initial_prompt", "hotwords", "beam_size", "diarize"):
        if body.get(key) is not None:
            overrides[key] = str(body[key])
    validate_options(overrides)
    # history is background work: a replay yields to live calls and new uploads unless asked otherwise
    overrides["priority"] = parse_priority(str(body.get("priority") or "low"))
    return overrides


async def _selected(jobs: JobStore, body: dict[str, Any], principal: Principal) -> list[str]:
    """The job ids a replay names: ``job_ids``, or the jobs created in ``since``/``until`` the caller sees."""
    job_ids = body.get("job_ids")
    if job_ids is not None:
        if not isinstance(job_ids, list) or not all(isinstance(j, str) for j in job_ids):
            raise Problem(400, "Bad Request", "job_ids must be a list of job ids")
    else:
        since, until = parse_time(body.get("since"), "since"), parse_time(body.get("until"), "until")
        if since is None and until is None:
            raise Problem(400, "Bad Request", "name the recordings: job_ids, or a time range (since/until)")
        job_ids = await jobs.jobs_created_between(since, until, None if principal.is_admin else principal.org_id)
    if len(job_ids) > MAX_JOBS:
        raise Problem(400, "Bad Request", f"at most {MAX_JOBS} jobs per replay; narrow the selection")
    return job_ids


async def replay(request: web.Request) -> web.Response:
    """POST /v1/replays {"job_ids": [...]} or {"since": ISO, "until": ISO}, with "model" and optional
    "language", "initial_prompt", "hotwords", "beam_size", "diarize", ..., and "stages" -> 202 and the revision
    per job."""
    principal = caller(request)
    body = await json_object(request)
    app = request.app
    jobs = app[JOBS]
    stages = parse_stages(body.get("stages"))
    if stages is not None and "asr" not in stages and body.get("model"):
        raise Problem(400, "Bad Request", "model applies to recognition, which a replay without asr does not run "
                      "(it reuses the words of the latest completed revision)")
    model = str(body.get("model") or app[SETTINGS].asr.default_model)
    try:
        app[MODELS].get(model)
    except UnknownModel as exc:
        raise Problem(400, "Unknown model", str(exc), models=exc.known) from None
    overrides = _overrides(body)
    job_ids = await _selected(jobs, body, principal)
    replay_id = uuid.uuid4().hex
    results: list[dict[str, Any]] = []
    for job_id in dict.fromkeys(job_ids):
        current = await jobs.job(job_id)
        if current is None or not principal.sees(current["org_id"]):
            results.append({"job_id": job_id, "error": "no such job"})
            continue
        planned = await _plan(jobs, current, model, overrides, stages)
        if isinstance(planned, str):
            results.append({"job_id": job_id, "error": planned})
            continue
        run_model, options = planned
        revision, created, job = await jobs.start_revision(job_id, run_model, options, replay_id)
        if created:
            await queue_revision(app[PUBLISHER], job, revision, options)
        results.append({"job_id": job_id, "revision": revision, "created": created})
    log.info("replay requested", replay_id=replay_id, model=model, jobs=len(results), stages=stages or "all")
    await audit(request, principal, "replay.request", f"replay:{replay_id}",
                {"model": model, "jobs": [r["job_id"] for r in results], "stages": list(stages or ["all"])})
    return web.json_response({"replay_id": replay_id, "model": model, "stages": list(stages or ["all"]),
                              "jobs": results}, status=202)


async def _plan(jobs: JobStore, current: dict[str, Any], model: str, overrides: dict[str, str],
                stages: tuple[str, ...] | None) -> tuple[str, dict[str, str]] | str:
    """(model, options) of a job's replay, or why it cannot be replayed."""
    job_id = current["job_id"]
    needs_audio = stages is None or "asr" in stages or "diarization" in stages
    if needs_audio and not current["audio_stored"]:
        return "no stored audio (the stream came straight to Kafka)"
    if stages is None:
        return model, {**{k: v for k, v in current["options"].items() if k != "model"}, **overrides, "model": model}
    latest = await jobs.latest_completed_revision(job_id)
    source = await jobs.completed_revision(job_id, latest) if latest is not None else None
    if source is None:
        return "no completed revision whose results the stages not replayed could reuse"
    run_model = model if "asr" in stages else source["model"]
    base = {k: v for k, v in source["options"].items() if k != "model"}
    return run_model, partial_options(base, stages, source["revision"], {**overrides, "model": run_model})


async def revisions(request: web.Request) -> web.Response:
    job_id = request.match_info["job_id"]
    await visible_job(request, job_id)
    return web.json_response({"job_id": job_id, "revisions": await request.app[JOBS].revisions(job_id)})


async def compare_revisions(request: web.Request) -> web.Response:
    """GET ?a=1&b=2 (POST to also send {"reference": "..."}): word diff and WER between two revisions."""

    body = await json_object(request) if request.method == "POST" else {}
    params = {**request.query, **{k: v for k, v in body.items() if v is not None}}
    job_id = request.match_info["job_id"]
    jobs = request.app[JOBS]
    await visible_job(request, job_id)
    try:
        a, b = int(params.get("a", 1)), int(params["b"]) if "b" in params else None
    except (TypeError, ValueError):
        raise Problem(400, "Bad Request", "a and b must be revision numbers") from None
    if b is None:
        b = await jobs.latest_completed_revision(job_id) or 0
    reference = params.get("reference")
    if reference is not None and not isinstance(reference, str):
        raise Problem(400, "Bad Request", "reference must be text")
    texts = {}
    for rev in (a, b):
        t = await jobs.transcript(job_id, rev)
        if t is None or t["status"] != "completed":
            raise Problem(409, "Not ready", f"revision {rev} of job {job_id} has no completed transcript")
        texts[rev] = t
    result = compare(texts[a]["text"], texts[b]["text"], reference)
    return web.json_response({
        "job_id": job_id,
        "a": {"revision": a, "model": texts[a]["model"], "text": texts[a]["text"], "wer": result.pop("wer_a", None)},
        "b": {"revision": b, "model": texts[b]["model"], "text": texts[b]["text"], "wer": result.pop("wer_b", None)},
        **result,
    })


def add_routes(app: web.Application) -> None:
    add_route(app, "POST", "/v1/replays", replay, needs("replay"))
    add_route(app, "GET", "/v1/jobs/{job_id}/revisions", revisions, needs("jobs:read"))
    add_route(app, "GET", "/v1/jobs/{job_id}/compare", compare_revisions, needs("jobs:read"))
    add_route(app, "POST", "/v1/jobs/{job_id}/compare", compare_revisions, needs("jobs:read"))
