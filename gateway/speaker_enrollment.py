"""A voice profile from a speaker of a transcript: ``POST /v1/jobs/{job_id}/speakers/{speaker_id}/enroll``.

The speaker's longest turns (up to ``max_seconds``, default 60) are cut from the job's recording, on the
speaker's own channel when speakers are channels, written as one 16 kHz mono WAV into object storage and
enrolled exactly like ``POST /v1/speakers`` does with an uploaded recording: the profile is ``pending`` until
the diarization workers have computed its embedding.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
import wave
from pathlib import Path
from typing import Any

import numpy as np
from aiohttp import web

from connectors.ingest.decode import TARGET_RATE, DecodeError, decode_chunks
from connectors.storage.base import ObjectNotFound
from foundation.events import SpeakerEnrollment
from gateway.access import visible_job
from gateway.auth.audit import audit
from gateway.auth.middleware import caller
from gateway.auth.permissions import add_route, needs
from gateway.problems import Problem
from gateway.refs import JOBS, PROFILES, PUBLISHER, RECORDINGS, SETTINGS, STORE
from gateway.uploads import spool_dir
from gateway.validation import json_object
from processors.audio.excerpts import cut, pick_spans
from streams.kafka.topics import SPEAKER_ENROLLMENTS

DEFAULT_SECONDS = 60.0
MIN_VOICED = 2.0


def _read_until(path: Path, end_s: float) -> np.ndarray:
    """The recording's 16 kHz int16 frames (samples, channels) up to ``end_s``. Blocking."""
    chunks = []
    for chunk in decode_chunks(path, 5.0):
        chunks.append(chunk.frames)
        if (chunk.start_sample + len(chunk.frames)) / TARGET_RATE >= end_s:
            break
    return np.concatenate(chunks) if chunks else np.zeros((0, 1), dtype=np.int16)


def _write_wav(path: Path, mono: np.ndarray) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(TARGET_RATE)
        out.writeframes(mono.astype("<i2").tobytes())


def _options(body: dict[str, Any]) -> tuple[str | None, int | None, float]:
    name = body.get("name")
    if name is not None and (not isinstance(name, str) or not name.strip() or len(name) > 200):
        raise Problem(400, "Bad Request", "name must be a non-empty string of at most 200 characters")
    revision = body.get("revision")
    if revision is not None and (not isinstance(revision, int) or isinstance(revision, bool) or revision < 1):
        raise Problem(400, "Bad Request", "revision must be a revision number")
    seconds = body.get("max_seconds", DEFAULT_SECONDS)
    if not isinstance(seconds, int | float) or isinstance(seconds, bool) or not 5 <= seconds <= 600:
        raise Problem(400, "Bad Request", "max_seconds must be a number from 5 to 600")
    return (name.strip() if name else None), revision, float(seconds)


async def enroll_speaker(request: web.Request) -> web.Response:
    """POST {"name"?, "revision"?, "max_seconds"?} -> 202 with the pending profile."""
    job_id, speaker_id = request.match_info["job_id"], request.match_info["speaker_id"]
    principal = caller(request)
    _, job = await visible_job(request, job_id)
    name, revision, max_seconds = _options(await json_object(request))
    repo = request.app[JOBS]
    revision = revision or await repo.latest_completed_revision(job_id)
    transcript = await repo.transcript(job_id, revision) if revision else None
    if transcript is None or transcript["status"] != "completed":
        raise Problem(409, "Not ready", f"job {job_id} has no completed transcript")
    speaker = next((s for s in transcript["speakers"] if s["id"] == speaker_id), None)
    if speaker is None:
        raise Problem(404, "Not Found", f"revision {transcript['revision']} of job {job_id} has no speaker "
                                        f"{speaker_id!r}")
    turns = await repo.turns(job_id, transcript["revision"]) or [
        {"start": s["start"], "end": s["end"], "speaker": s["speaker_id"]} for s in transcript["segments"]]
    spans = pick_spans(turns, speaker_id, max_seconds)
    if sum(end - start for start, end in spans) < MIN_VOICED:
        raise Problem(422, "Unprocessable Content", f"speaker {speaker_id} speaks for less than {MIN_VOICED:.0f} s")
    recording = await request.app[RECORDINGS].recording(job_id)
    if recording is None or not recording.object_key:
        raise Problem(409, "Conflict", f"job {job_id} has no stored recording to take the voice from")
    profile_id = uuid.uuid4().hex
    key = f"speakers/{profile_id}/0.wav"
    await _store_excerpt(request, recording.object_key, key, spans, speaker.get("channel"))
    name = name or speaker.get("name") or speaker["label"]
    await request.app[PROFILES].create(profile_id, principal.org_id, name, [key])
    await request.app[PUBLISHER].publish(SPEAKER_ENROLLMENTS, SpeakerEnrollment(
        profile_id=profile_id, org_id=principal.org_id, name=name, object_keys=[key]))
    await audit(request, principal, "speaker.enroll", f"speaker:{profile_id}",
                {"from_job": job_id, "speaker": speaker_id, "seconds": round(sum(e - s for s, e in spans), 2)},
                org_id=job["org_id"])
    return web.json_response({"id": profile_id, "name": name, "status": "pending", "samples": 1,
                              "from": {"job_id": job_id, "revision": transcript["revision"], "speaker_id": speaker_id,
                                       "seconds": round(sum(e - s for s, e in spans), 2)}},
                             status=202, headers={"Location": f"/v1/speakers/{profile_id}"})


async def _store_excerpt(request: web.Request, source_key: str, key: str, spans: list[tuple[float, float]],
                         channel: int | None) -> None:
    """Decrypt the recording, cut the spans, store them as a WAV under ``key``; temporary files are removed."""
    folder = spool_dir(request.app[SETTINGS])
    fd, src_name = tempfile.mkstemp(dir=folder, prefix="excerpt-src-")
    os.close(fd)
    fd, wav_name = tempfile.mkstemp(dir=folder, prefix="excerpt-", suffix=".wav")
    os.close(fd)
    src, wav = Path(src_name), Path(wav_name)
    try:
        try:
            await request.app[STORE].get_to_file(source_key, src)
        except ObjectNotFound:
            raise Problem(409, "Conflict", "the job's recording is no longer stored") from None
        try:
            frames = await asyncio.to_thread(_read_until, src, max(end for _, end in spans))
        except DecodeError as exc:
            raise Problem(422, "Unprocessable Content", f"the recording could not be decoded: {exc}") from None
        mono = cut(frames, TARGET_RATE, spans, channel)
        await asyncio.to_thread(_write_wav, wav, mono)
        await request.app[STORE].put_file(key, wav, "audio/wav")
    finally:
        src.unlink(missing_ok=True)
        wav.unlink(missing_ok=True)


def add_routes(app: web.Application) -> None:
    add_route(app, "POST", "/v1/jobs/{job_id}/speakers/{speaker_id}/enroll", enroll_speaker,
              needs("speakers:write", "jobs:read"))
