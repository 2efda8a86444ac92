"""An OpenAI-compatible ``POST /v1/audio/transcriptions``, so unchanged OpenAI SDK clients can use the platform.

It is synchronous, like OpenAI's: the upload is stored and made a normal job exactly as ``POST /v1/jobs`` does
(``gateway.intake.receive_upload`` and ``queue_upload``), the request waits for the job (polling PostgreSQL), and
the answer comes in OpenAI's shapes. The job stays visible under ``/v1/jobs`` like any other.

Multipart fields, as in OpenAI's API:
- ``file`` (required): any format FFmpeg reads.
- ``model``: an installed model (``GET /v1/models``, e.g. ``tiny.en``, ``base``); ``whisper-1`` means the
  platform's default model, so clients written for OpenAI work unchanged. Unknown: 404 ``model_not_found``.
- ``language``: ISO-639-1 code (``en``) or a Whisper language name (``english``); ``prompt``: the
  recogniser's initial prompt.
- ``response_format``: ``json`` (default, ``{"text"}``), ``text``, ``srt``, ``vtt`` or ``verbose_json``.
- ``timestamp_granularities[]``: ``segment`` and/or ``word`` (default ``segment``); only ``verbose_json``
  carries timestamps, other formats ignore it, as OpenAI's do.
- ``temperature``: accepted (a number in [0, 1]) and ignored: decoding always uses the platform's settings
  (beam search at temperature 0).
- ``diarize``: not an OpenAI field; diarization is off here (Whisper has none) unless this names a mode
  (``auto``, ``channels``, ``acoustic``); srt and vtt then carry the speakers.

``verbose_json`` segments: ``seek`` is the start of the recognised window in 10 ms frames, ``tokens`` is
empty (token ids are not kept), ``temperature`` 0.0, ``avg_logprob`` the mean log probability of the segment's
words, ``compression_ratio`` Whisper's (text length over its zlib-compressed length) and ``no_speech_prob``
0.0 (segments are cut from detected speech; the per-window value is not kept after post-processing).

Errors come as ``{"error": {"message", "type", "param", "code"}}`` (including 401/429 from authentication and
the rate limit). A file without decodable audio, or a truncated one, is refused before anything is kept, by the
same probe as ``POST /v1/files`` and ``POST /v1/jobs``, as OpenAI refuses a bad file: 400 ``invalid_file_format``
with the reason; a job that fails (a silent file) answers 400 with the job's reason.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
import zlib
from typing import Any

from aiohttp import web

from foundation.logs import get_logger
from gateway.auth.audit import audit
from gateway.auth.middleware import Handler, caller
from gateway.auth.permissions import add_route, needs
from gateway.intake import queue_upload, receive_upload
from gateway.problems import PROBLEM_TYPE, Problem
from gateway.refs import JOBS, MODELS, SETTINGS, STORE
from processors.asr.languages import LANGUAGE_CODES, LANGUAGES
from processors.asr.models import UnknownModel
from processors.post.render import render

log = get_logger(__name__)

PATH = "/v1/audio/transcriptions"
PREFIX = "/v1/audio/"
OPENAI_DEFAULT_MODEL = "whisper-1"
RESPONSE_FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
GRANULARITIES = ("segment", "word")
FIELDS = ("model", "language", "prompt", "response_format", "timestamp_granularities[]", "timestamp_granularities",
          "temperature", "diarize", "stream")

# How long a request waits for its job: WAIT_BASE_S plus WAIT_PER_AUDIO_S per second of audio. The duration is
# the one ingest decoded once it has; before that it is bounded from the size (ASSUMED_BYTES_PER_S is 32 kbit/s,
# below what speech is usually stored at, so the bound is generous).
WAIT_BASE_S = 120.0
WAIT_PER_AUDIO_S = 3.0
ASSUMED_BYTES_PER_S = 4000.0
POLL_FIRST_S = 0.1
POLL_MAX_S = 0.5
FINISHED = ("completed", "failed", "cancelled")

_DECODED = re.compile(r"decoded ([0-9]+(?:\.[0-9]+)?) s")


class OpenAIError(Exception):
    """An answer in OpenAI's error shape."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 kind: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.kind = kind or error_type(status)
        self.headers = headers or {}

    def response(self) -> web.Response:
        body = {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}
        return web.json_response(body, status=self.status, headers=self.headers)


def error_type(status: int) -> str:
    if status == 429:
        return "requests"
    return "server_error" if status >= 500 else "invalid_request_error"


def _from_problem(status: int, text: str | None, headers: Any) -> web.Response:
    """A problem document (RFC 9457) of the rest of the gateway, re-shaped as an OpenAI error."""
    try:
        problem = json.loads(text or "{}")
    except ValueError:
        problem = {}
    message = str(problem.get("detail") or problem.get("title") or text or "error")
    code = {401: "invalid_api_key", 429: "rate_limit_exceeded"}.get(status)
    kept = {k: headers[k] for k in ("WWW-Authenticate", "Retry-After", "Allow") if k in headers}
    # the request validation names each field as "form.NAME": OpenAI names the first one bare in ``param``
    invalid = problem.get("invalid_params") or [{}]
    param = str(invalid[0].get("name") or "").removeprefix("form.").removeprefix("query.") or None
    return OpenAIError(status, message, code=code, param=param, headers=kept).response()


@web.middleware
async def openai_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost middleware: errors under /v1/audio/ (authentication and rate limits included) as OpenAI's."""
    if not request.path.startswith(PREFIX):
        return await handler(request)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _from_problem(exc.status, exc.text, exc.headers)
    if response.status >= 400 and isinstance(response, web.Response) and response.content_type == PROBLEM_TYPE:
        return _from_problem(response.status, response.text, response.headers)
    return response


# -- request parsing -------------------------------------------------------------------------------------------
def _model(request: web.Request, name: str | None) -> str:
    default = request.app[SETTINGS].asr.default_model
    model = default if name in (None, OPENAI_DEFAULT_MODEL) else str(name)
    try:
        request.app[MODELS].get(model)
    except UnknownModel as exc:
        known = ", ".join([OPENAI_DEFAULT_MODEL, *exc.known])
        raise OpenAIError(404, f"The model `{name}` does not exist; installed models: {known}", param="model",
                          code="model_not_found") from None
    return model


def _language(value: str) -> str:
    lowered = value.strip().lower()
    if lowered in LANGUAGES:
        return lowered
    if lowered in LANGUAGE_CODES:
        return LANGUAGE_CODES[lowered]
    raise OpenAIError(400, f"Invalid language {value!r}: use an ISO-639-1 code such as 'en'", param="language",
                      code="invalid_language")


def _granularities(values: list[str]) -> set[str]:
    chosen = {v.strip() for value in values for v in value.split(",") if v.strip()}
    unknown = chosen - set(GRANULARITIES)
    if unknown:
        raise OpenAIError(400, f"timestamp_granularities must be among {', '.join(GRANULARITIES)}, not "
                               f"{', '.join(sorted(unknown))}", param="timestamp_granularities")
    return chosen or {"segment"}


def _check(fields: dict[str, str]) -> tuple[str, str | None]:
    """(response_format, diarize option) after validating what OpenAI validates."""
    fmt = fields.get("response_format", "json")
    if fmt not in RESPONSE_FORMATS:
        raise OpenAIError(400, f"response_format must be one of {', '.join(RESPONSE_FORMATS)}",
                          param="response_format", code="unsupported_value")
    if "temperature" in fields:
        try:
            temperature = float(fields["temperature"])
        except ValueError:
            temperature = math.nan
        if not 0.0 <= temperature <= 1.0:
            raise OpenAIError(400, "temperature must be a number between 0 and 1", param="temperature")
    if fields.get("stream", "false").lower() not in ("false", "0"):
        raise OpenAIError(400, "streaming is not supported; send stream=false", param="stream",
                          code="unsupported_value")
    diarize = fields.get("diarize")
    if diarize is not None and diarize not in ("auto", "channels", "acoustic", "off"):
        raise OpenAIError(400, "diarize must be one of auto, channels, acoustic, off", param="diarize")
    return fmt, diarize


# -- waiting ---------------------------------------------------------------------------------------------------
def _audio_seconds(job: dict[str, Any], size_bytes: int) -> float:
    if job.get("duration"):
        return float(job["duration"])
    found = _DECODED.search(str((job.get("stages") or {}).get("ingest", {}).get("message") or ""))
    if found:
        return float(found.group(1))
    return size_bytes / ASSUMED_BYTES_PER_S


def wait_limit(job: dict[str, Any], size_bytes: int) -> float:
    """Seconds a request waits for its job before giving up (504)."""
    return WAIT_BASE_S + WAIT_PER_AUDIO_S * _audio_seconds(job, size_bytes)


def _disconnected(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def _wait(request: web.Request, job_id: str, size_bytes: int) -> dict[str, Any] | None:
    """The finished job, or None when the client went away (the job goes on, readable under /v1/jobs)."""
    jobs = request.app[JOBS]
    started = time.monotonic()
    interval = POLL_FIRST_S
    while True:
        job = await jobs.job(job_id)
        if job is None:
            raise OpenAIError(500, f"job {job_id} disappeared while it ran")
        if job["status"] in FINISHED:
            return job
        if _disconnected(request):
            log.info("client went away; the job goes on", job_id=job_id)
            return None
        if time.monotonic() - started > wait_limit(job, size_bytes):
            # not retried by the SDK: a retry would upload and transcribe the file again
            raise OpenAIError(504, f"job {job_id} is still {job['status']} after {time.monotonic() - started:.0f} s;"
                                   f" read it later at /v1/jobs/{job_id}", code="timeout",
                              headers={"x-should-retry": "false"})
        await asyncio.sleep(interval)
        interval = min(interval * 1.5, POLL_MAX_S)


# -- answers ---------------------------------------------------------------------------------------------------
def _seek(segment: dict[str, Any]) -> int:
    """Start of the recognised window in 10 ms frames (segment ids are ``stream:channel:window_ms.piece``)."""
    window = str(segment.get("id") or "").rsplit(":", 1)[-1].split(".", 1)[0]
    return int(window) // 10 if window.isdigit() else int(segment["start"] * 100)


def compression_ratio(text: str) -> float:
    raw = text.encode("utf-8")
    return round(len(raw) / len(zlib.compress(raw)), 4) if raw else 0.0


def _avg_logprob(words: list[dict[str, Any]]) -> float:
    logs = [math.log(max(float(w["probability"]), 1e-6)) for w in words if w.get("probability") is not None]
    return round(sum(logs) / len(logs), 4) if logs else 0.0


def verbose_json(transcript: dict[str, Any], granularities: set[str]) -> dict[str, Any]:
    language = transcript.get("language") or ""
    body: dict[str, Any] = {
        "task": "transcribe", "language": LANGUAGES.get(language, language),
        "duration": transcript.get("duration") or 0.0, "text": transcript["text"],
    }
    if "segment" in granularities:
        body["segments"] = [
            {"id": i, "seek": _seek(s), "start": s["start"], "end": s["end"], "text": " " + s["text"].strip(),
             "tokens": [], "temperature": 0.0, "avg_logprob": _avg_logprob(s["words"]),
             "compression_ratio": compression_ratio(s["text"].strip()), "no_speech_prob": 0.0}
            for i, s in enumerate(transcript["segments"])]
    if "word" in granularities:
        body["words"] = [{"word": w["word"].strip(), "start": w["start"], "end": w["end"]}
                         for s in transcript["segments"] for w in s["words"]]
    body["usage"] = {"type": "duration", "seconds": math.ceil(body["duration"])}
    return body


def answer(transcript: dict[str, Any], fmt: str, granularities: set[str]) -> web.Response:
    if fmt == "json":
        return web.json_response({"text": transcript["text"],
                                  "usage": {"type": "duration", "seconds": math.ceil(transcript["duration"] or 0)}})
    if fmt == "verbose_json":
        return web.json_response(verbose_json(transcript, granularities))
    if fmt == "text":
        return web.Response(text=transcript["text"] + "\n", content_type="text/plain", charset="utf-8")
    return web.Response(text=render(transcript, fmt), content_type="text/plain", charset="utf-8")


# -- the endpoint ----------------------------------------------------------------------------------------------
async def _transcribe(request: web.Request) -> web.StreamResponse:
    principal = caller(request)
    try:
        upload = await receive_upload(request, FIELDS)
    except Problem as exc:
        if exc.status != 422:
            raise
        raise OpenAIError(400, json.loads(exc.text or "{}").get("detail", "invalid file"), param="file",
                          code="invalid_file_format") from None
    fields = upload.fields
    try:
        model = _model(request, fields.get("model"))
        fmt, diarize = _check(fields)
        granularities = _granularities(upload.values("timestamp_granularities[]")
                                       + upload.values("timestamp_granularities"))
        options = {"diarize": diarize or "off"}
        if "language" in fields:
            options["language"] = _language(fields["language"])
        if "prompt" in fields:
            options["initial_prompt"] = fields["prompt"]
    except OpenAIError:
        await request.app[STORE].delete(upload.object_key)
        raise
    await queue_upload(request, principal, upload, model, options)
    job = await _wait(request, upload.job_id, upload.size_bytes)
    if job is None:
        return web.Response(status=499)  # nobody reads it; the connection is gone
    if job["status"] == "cancelled":
        raise OpenAIError(400, f"job {upload.job_id} was cancelled while it ran", code="job_cancelled")
    if job["status"] == "failed":
        raise OpenAIError(400, f"the audio could not be transcribed: {job['error'] or 'the job failed'}",
                          param="file", code="transcription_failed")
    transcript = await request.app[JOBS].transcript(upload.job_id)
    if transcript is None:
        raise OpenAIError(500, f"job {upload.job_id} completed without a transcript")
    await audit(request, principal, "transcript.read", f"job:{upload.job_id}",
                {"format": f"openai:{fmt}", "revision": transcript["revision"]})
    response = answer(transcript, fmt, granularities)
    response.headers["X-Streamscribe-Job"] = upload.job_id
    return response


async def transcriptions(request: web.Request) -> web.StreamResponse:
    """POST /v1/audio/transcriptions."""
    try:
        return await _transcribe(request)
    except OpenAIError as exc:
        return exc.response()


def openapi_paths(models: list[str]) -> dict[str, Any]:
    """The operation for the gateway's OpenAPI document, with the installed models."""
    string, number = {"type": "string"}, {"type": "number"}
    error = {"type": "object", "required": ["error"], "properties": {"error": {
        "type": "object", "required": ["message", "type"],
        "properties": {"message": string, "type": string, "param": {"type": ["string", "null"]},
                       "code": {"type": ["string", "null"]}}}}}
    usage = {"type": "object", "properties": {"type": {"const": "duration"}, "seconds": number}}
    segment = {"type": "object", "properties": {
        "id": {"type": "integer"}, "seek": {"type": "integer"}, "start": number, "end": number, "text": string,
        "tokens": {"type": "array", "items": {"type": "integer"}}, "temperature": number, "avg_logprob": number,
        "compression_ratio": number, "no_speech_prob": number}}
    word = {"type": "object", "properties": {"word": string, "start": number, "end": number}}
    verbose = {"type": "object", "required": ["task", "language", "duration", "text"], "properties": {
        "task": {"const": "transcribe"}, "language": string, "duration": number, "text": string,
        "segments": {"type": "array", "items": segment}, "words": {"type": "array", "items": word}, "usage": usage}}
    granularity = {"type": "array", "items": {"enum": list(GRANULARITIES)}, "maxItems": 2}
    form = {"type": "object", "required": ["file"], "properties": {
        "file": {"type": "string", "format": "binary"},
        # not an enum: an unknown model is OpenAI's 404 model_not_found (naming the installed ones), not a 400
        "model": {"type": "string", "minLength": 1, "maxLength": 200,
                  "description": f"an installed model ({', '.join(models)}), or {OPENAI_DEFAULT_MODEL} for the "
                                 "default"},
        "language": {"enum": sorted({*LANGUAGES, *LANGUAGE_CODES}), "description": "ISO-639-1 code"},
        "prompt": {"type": "string", "maxLength": 2000},
        "response_format": {"enum": list(RESPONSE_FORMATS)},
        "timestamp_granularities[]": granularity, "timestamp_granularities": granularity,
        "temperature": {"type": "number", "minimum": 0, "maximum": 1, "description": "accepted and ignored"},
        "stream": {"enum": ["false", "0"], "description": "streaming is not supported"},
        "diarize": {"enum": ["auto", "channels", "acoustic", "off"], "description": "not OpenAI's; default off"}}}
    errors = {str(code): {"description": text, "content": {"application/json": {"schema": error}}}
              for code, text in ((400, "Invalid request, a file without decodable audio or truncated "
                                       "(invalid_file_format), or audio that could not be transcribed (the reason)"),
                                 (401, "Invalid API key"), (403, "Not allowed for this role"),
                                 (404, "Unknown model (model_not_found)"), (413, "Too large"),
                                 (415, "Not multipart/form-data"), (429, "Rate limited (see Retry-After)"),
                                 (503, "The event backbone is unavailable"), (504, "The job took too long"))}
    return {PATH: {"post": {
        "summary": "OpenAI-compatible transcription: upload, wait, answer in OpenAI's shapes",
        "tags": ["openai"], "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": form}}},
        "responses": {"200": {"description": "json, verbose_json, or text/srt/vtt as text/plain", "content": {
            "application/json": {"schema": {"oneOf": [
                {"type": "object", "required": ["text"], "properties": {"text": string, "usage": usage}},
                verbose]}},
            "text/plain": {"schema": string}}}, **errors}}}}



def add_routes(app: web.Application) -> None:
    add_route(app, "POST", PATH, transcriptions, needs("jobs:write"))
    # outermost, so that authentication and rate-limit refusals under /v1/audio/ come in OpenAI's shape too
    app.middlewares.insert(0, openai_errors)
