"""The OpenAI-compatible endpoint with the official ``openai`` SDK as the client, on the real stack: unchanged
OpenAI code (``model="whisper-1"``) transcribes real speech, in every response format, and errors come as the
SDK's exceptions."""

from __future__ import annotations

import asyncio
import json
import urllib.request
import wave
from pathlib import Path
from typing import Any

import aiohttp
import jiwer
import openai
import pytest
from openai import AsyncOpenAI, OpenAI

from gateway.auth.credentials import KEY_PREFIX
from streamscribe.client import Client
from tests.conftest import normalize, read_references
from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration

SAMPLE = "LJ001-0003.wav"


def _client(stack: Stack, api_key: str | None = None) -> OpenAI:
    # no retries: every call here must succeed or fail on its first answer
    return OpenAI(base_url=stack.url + "/v1", api_key=api_key or stack.admin_key, max_retries=0, timeout=300)


def _wer(speech: Path, name: str, text: str) -> float:
    return float(jiwer.wer(normalize(read_references(speech)[name]), normalize(text)))


def _job(stack: Stack, job_id: str) -> dict[str, Any]:
    request = urllib.request.Request(f"{stack.url}/v1/jobs/{job_id}", headers=stack.auth)
    with urllib.request.urlopen(request, timeout=30) as resp:
        job: dict[str, Any] = json.loads(resp.read())
        return job


def _seconds(path: Path) -> float:
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


def test_whisper_1_json_text_srt_vtt(stack: Stack, speech: Path) -> None:
    path = speech / "read" / SAMPLE
    client = _client(stack)
    with open(path, "rb") as fh:
        result = client.audio.transcriptions.create(model="whisper-1", file=fh)
    assert _wer(speech, SAMPLE, result.text) < 0.15, result.text
    assert result.usage is not None and result.usage.type == "duration"

    with open(path, "rb") as fh:
        text = client.audio.transcriptions.create(model="whisper-1", file=fh, response_format="text")
    assert isinstance(text, str) and text.endswith("\n")
    assert _wer(speech, SAMPLE, text) < 0.15, text

    with open(path, "rb") as fh:
        srt = client.audio.transcriptions.create(model="whisper-1", file=fh, response_format="srt")
    blocks = [b for b in srt.strip().split("\n\n") if b]
    assert blocks and blocks[0].startswith("1\n00:00:0"), srt
    assert all(" --> " in b.splitlines()[1] and "," in b.splitlines()[1] for b in blocks), srt
    assert _wer(speech, SAMPLE, " ".join(" ".join(b.splitlines()[2:]) for b in blocks)) < 0.15, srt

    with open(path, "rb") as fh:
        vtt = client.audio.transcriptions.create(model="whisper-1", file=fh, response_format="vtt")
    assert vtt.startswith("WEBVTT\n"), vtt
    assert "00:00:0" in vtt and " --> " in vtt and "<v " not in vtt  # no diarization unless asked for
    assert "chinese" in vtt.lower()


def test_verbose_json_with_words_and_segments(stack: Stack, speech: Path) -> None:
    name = "LJ001-0001.wav"
    path = speech / "read" / name
    duration = _seconds(path)
    with open(path, "rb") as fh:
        result = _client(stack).audio.transcriptions.create(
            model="whisper-1", file=fh, response_format="verbose_json",
            timestamp_granularities=["word", "segment"], temperature=0.0)
    assert result.language == "english"
    assert result.duration == pytest.approx(duration, abs=0.1)
    assert _wer(speech, name, result.text) < 0.15, result.text

    segments = result.segments or []
    assert segments and [s.id for s in segments] == list(range(len(segments)))
    for seg in segments:
        assert 0 <= seg.start < seg.end <= duration + 0.05
        assert seg.text.strip() and seg.tokens == [] and seg.temperature == 0.0
        assert -5.0 < seg.avg_logprob <= 0.0 and 0.0 < seg.compression_ratio < 2.4 and seg.no_speech_prob == 0.0
        assert seg.seek >= 0
    assert [s.start for s in segments] == sorted(s.start for s in segments)

    words = result.words or []
    assert len(words) == pytest.approx(len(result.text.split()), abs=2)
    for w in words:
        assert w.word and w.word == w.word.strip()
        assert 0 <= w.start <= w.end <= duration + 0.05
    starts = [w.start for w in words]
    assert starts == sorted(starts)
    assert normalize(" ".join(w.word for w in words)) == normalize(result.text)
    # the words fall inside their segments' time span
    assert words[0].start >= segments[0].start - 0.01 and words[-1].end <= segments[-1].end + 0.01


def test_our_model_names_options_and_the_job_behind_the_answer(stack: Stack, speech: Path) -> None:
    path = speech / "read" / "jfk.flac"
    with open(path, "rb") as fh:
        raw = _client(stack).audio.transcriptions.with_raw_response.create(
            model="tiny.en", file=fh, response_format="verbose_json", timestamp_granularities=["word"],
            language="en", prompt="President Kennedy's inaugural address.")
    result = raw.parse()
    assert result.words and result.segments is None  # only what was asked for
    assert _wer(speech, "jfk.flac", result.text) < 0.15, result.text
    job_id = raw.headers["X-Streamscribe-Job"]
    stored = _job(stack, job_id)
    assert stored["status"] == "completed" and stored["model"] == "tiny.en"
    options = stored["options"]
    assert isinstance(options, dict)
    assert options["diarize"] == "off" and options["language"] == "en"
    assert options["initial_prompt"] == "President Kennedy's inaugural address."


def test_whisper_1_is_the_default_model_and_diarization_is_off(stack: Stack, speech: Path) -> None:
    with open(speech / "read" / "LJ001-0002.wav", "rb") as fh:
        raw = _client(stack).audio.transcriptions.with_raw_response.create(model="whisper-1", file=fh)
    job_id = raw.headers["X-Streamscribe-Job"]
    stored = _job(stack, job_id)
    assert stored["model"] == stack.settings().asr.default_model
    assert isinstance(stored["options"], dict) and stored["options"]["diarize"] == "off"


def test_invalid_api_key_is_an_authentication_error(stack: Stack, speech: Path) -> None:
    for key in (f"{KEY_PREFIX}_not-a-real-key", "not-a-token"):
        with open(speech / "read" / SAMPLE, "rb") as fh, pytest.raises(openai.AuthenticationError) as err:
            _client(stack, api_key=key).audio.transcriptions.create(model="whisper-1", file=fh)
        assert err.value.status_code == 401
        assert err.value.code == "invalid_api_key" and err.value.type == "invalid_request_error"
        assert isinstance(err.value.body, dict) and set(err.value.body) == {"message", "type", "param", "code"}


def test_unknown_model_and_bad_fields_are_refused(stack: Stack, speech: Path, tmp_path: Path) -> None:
    client = _client(stack)
    path = speech / "read" / SAMPLE
    with open(path, "rb") as fh, pytest.raises(openai.NotFoundError) as err:
        client.audio.transcriptions.create(model="gpt-4o-transcribe", file=fh)
    assert err.value.code == "model_not_found" and err.value.param == "model"
    assert "gpt-4o-transcribe" in err.value.message and "tiny.en" in err.value.message

    with open(path, "rb") as fh, pytest.raises(openai.BadRequestError) as bad:
        client.audio.transcriptions.create(model="whisper-1", file=fh, response_format="diarized_json")
    assert bad.value.param == "response_format"
    with open(path, "rb") as fh, pytest.raises(openai.BadRequestError) as bad:
        client.audio.transcriptions.create(model="whisper-1", file=fh, language="klingon")
    assert bad.value.param == "language"
    with open(path, "rb") as fh, pytest.raises(openai.BadRequestError) as bad:
        client.audio.transcriptions.create(model="whisper-1", file=fh, temperature=3.0)
    assert bad.value.param == "temperature"
    # refused uploads are not kept
    uploads = stack.home / "objects" / "uploads"
    before = set(uploads.iterdir()) if uploads.exists() else set()
    with open(path, "rb") as fh, pytest.raises(openai.BadRequestError):
        client.audio.transcriptions.create(model="whisper-1", file=fh, response_format="xml")  # type: ignore[call-overload]
    after = {p for p in uploads.iterdir() if any(p.iterdir())} if uploads.exists() else set()
    assert after <= before


def test_corrupt_file_is_a_400_with_the_reason(stack: Stack, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"\x00\x01garbage" * 300)  # fixed bytes: random ones are sometimes probed as audio
    with open(garbage, "rb") as fh, pytest.raises(openai.BadRequestError) as err:
        _client(stack).audio.transcriptions.create(model="whisper-1", file=fh)
    assert err.value.status_code == 400
    # refused by the same probe as POST /v1/files and /v1/jobs, before anything is kept, in OpenAI's terms
    assert err.value.code == "invalid_file_format" and err.value.param == "file"
    assert "unsupported or corrupt" in err.value.message, err.value.message


async def test_async_client(stack: Stack, speech: Path) -> None:
    names = ["LJ001-0004.wav", "LJ001-0005.wav", "LJ001-0006.wav"]
    async with AsyncOpenAI(base_url=stack.url + "/v1", api_key=stack.admin_key, max_retries=0,
                           timeout=300) as client:

        async def one(name: str) -> str:
            with open(speech / "read" / name, "rb") as fh:
                result = await client.audio.transcriptions.create(model="whisper-1", file=fh)
            return result.text

        texts = await asyncio.gather(*(one(n) for n in names))
        with open(speech / "read" / names[0], "rb") as fh:
            srt = await client.audio.transcriptions.create(model="whisper-1", file=fh, response_format="srt")
    for name, text in zip(names, texts, strict=True):
        assert _wer(speech, name, text) < 0.15, (name, text)
    assert srt.startswith("1\n")


async def test_a_client_that_goes_away_leaves_a_normal_job(stack: Stack, speech: Path) -> None:
    path = speech / "read" / "LJ001-0007.wav"
    form = aiohttp.FormData()
    form.add_field("model", "whisper-1")
    form.add_field("file", path.read_bytes(), filename=path.name)
    async with aiohttp.ClientSession(headers=stack.auth) as session:
        with pytest.raises(asyncio.TimeoutError):
            async with session.post(f"{stack.url}/v1/audio/transcriptions", data=form,
                                    timeout=aiohttp.ClientTimeout(total=0.4)):
                pass
    async with Client(stack.url) as client:
        jobs = await client.session.get(f"{stack.url}/v1/jobs", params={"limit": "5"})
        recent = [j for j in (await jobs.json())["jobs"] if j["filename"] == path.name]
        assert recent, "the upload did not become a job"
        final = await client.wait(recent[0]["job_id"], timeout=120)
    assert final["status"] == "completed", final
    log = (stack.home / "logs" / "gateway.log").read_text(errors="replace")
    assert "client went away" in log and recent[0]["job_id"] in log
