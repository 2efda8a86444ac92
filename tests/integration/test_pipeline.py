"""One recording through the whole designed path on real parts: upload -> audio.chunks -> VAD -> ASR ->
post -> materializer -> PostgreSQL -> API, and the CLI around it."""

from __future__ import annotations

import asyncio
import time
from itertools import pairwise
from pathlib import Path

import jiwer
import pytest

from streamscribe.client import Client
from tests.conftest import normalize, read_references
from tests.integration.conftest import Stack

pytestmark = [pytest.mark.integration, pytest.mark.embedded]


async def test_upload_travels_the_pipeline_and_is_queryable(stack: Stack, speech: Path) -> None:
    job, transcript = await stack.transcribe(speech / "read" / "jfk.flac")
    assert job["status"] == "completed", job
    # the transcript's completion and the post stage's own job event travel on two topics: either may land first
    async with Client(stack.url) as client:
        deadline = time.monotonic() + 60
        while "post" not in job["stages"] and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            job = await client.job(job["job_id"])
    assert set(job["stages"]) >= {"ingest", "vad", "asr", "post"}
    assert all(s["state"] == "completed" for n, s in job["stages"].items() if n != "asr"), job["stages"]

    assert set(transcript) >= {"job_id", "stream_id", "status", "duration", "language", "model", "text", "segments",
                               "speakers"}
    assert transcript["model"] == "tiny.en" and transcript["language"] == "en"
    assert transcript["duration"] == pytest.approx(11.0, abs=0.1)
    reference = read_references(speech)["jfk.flac"]
    assert jiwer.wer(normalize(reference), normalize(transcript["text"])) < 0.15, transcript["text"]

    segments = transcript["segments"]
    assert segments, transcript
    for seg in segments:
        keys = {"id", "start", "end", "text", "speaker", "speaker_id", "channel", "confidence", "words"}
        assert keys <= set(seg) <= keys | {"overlap"}, seg  # overlap: the speakers heard over this one, if any
        assert 0 <= seg["start"] < seg["end"] <= transcript["duration"] + 0.05
        word_keys = {"start", "end", "word", "probability"}
        assert seg["words"] and all(word_keys <= set(w) <= word_keys | {"speaker", "overlap"} for w in seg["words"])
        assert all(seg["start"] - 0.01 <= w["start"] <= w["end"] <= seg["end"] + 0.01 for w in seg["words"])
    starts = [s["start"] for s in segments]
    assert starts == sorted(starts)
    assert all(a["end"] <= b["start"] + 1e-6 for a, b in pairwise(segments))

    # every result row names the model, pipeline version and revision that made it
    conn = await stack.db()
    try:
        rows = await conn.fetch("SELECT model, pipeline_version, revision FROM transcript_segments WHERE job_id = $1",
                                job["job_id"])
    finally:
        await conn.close()
    assert rows and {(r["model"], r["revision"]) for r in rows} == {("tiny.en", 1)}
    assert all(r["pipeline_version"] for r in rows)


async def test_uploads_are_encrypted_at_rest(stack: Stack, speech: Path) -> None:
    source = speech / "read" / "LJ001-0003.wav"
    job, _ = await stack.transcribe(source, diarize="off")
    stored = list((stack.home / "objects" / "uploads" / job["job_id"]).iterdir())
    assert len(stored) == 1
    raw = stored[0].read_bytes()
    assert raw[:4] == b"SSAE" and b"RIFF" not in raw[:64]  # envelope header, not the WAV
    assert source.read_bytes()[1000:1100] not in raw


async def test_transcript_formats(stack: Stack, speech: Path) -> None:
    from streamscribe.client import Client

    job, transcript = await stack.transcribe(speech / "read" / "LJ001-0002.wav")
    async with Client(stack.url) as client:
        srt = await client.transcript(job["job_id"], "srt")
        vtt = await client.transcript(job["job_id"], "vtt")
        txt = await client.transcript(job["job_id"], "txt")
    n = len(transcript["segments"])
    assert srt.startswith("1\n00:00:0") and srt.count(" --> ") == n
    assert vtt.startswith("WEBVTT\n") and vtt.count(" --> ") == n
    spoken = " ".join(line.split(": ", 1)[-1] for line in txt.splitlines())  # lines are "speaker: text"
    assert all(line.startswith(f"{transcript['speakers'][0]['label']}: ") for line in txt.splitlines())
    assert normalize(spoken) == normalize(transcript["text"])
    assert "comparatively modern" in normalize(txt)


def test_cli_transcribe_prints_transcript_and_progress(stack: Stack, speech: Path) -> None:
    done = stack.cli("transcribe", str(speech / "read" / "LJ001-0002.wav"), "--format", "srt")
    assert done.returncode == 0, done.stderr
    assert " --> " in done.stdout and "comparatively modern" in done.stdout.lower()
    assert "queued" in done.stderr and "asr:" in done.stderr  # progress goes to stderr, not into the transcript


def test_cli_status_shows_components_and_lag(stack: Stack) -> None:
    out = stack.cli("status")
    assert out.returncode == 0, out.stderr
    for name in ("database", "kafka", "worker:ingest", "worker:vad", "worker:asr", "worker:post",
                 "worker:materializer"):
        assert name in out.stdout
    assert ": ok" in out.stdout.splitlines()[0]
    for group in ("streamscribe-vad", "streamscribe-asr", "streamscribe-materializer"):
        assert group in out.stdout
    assert "lag" in out.stdout


async def test_unknown_model_is_a_clear_4xx(stack: Stack, speech: Path) -> None:
    from streamscribe.client import ApiError, Client

    async with Client(stack.url) as client:
        with pytest.raises(ApiError) as err:
            await client.submit(speech / "read" / "jfk.flac", model="whisper-huge-v9")
    assert err.value.status == 400
    assert "whisper-huge-v9" in str(err.value) and "tiny.en" in str(err.value)
