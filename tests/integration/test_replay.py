"""Replay and reprocessing on the real stack: finished jobs re-run with Whisper base as new revisions, the
originals untouched, the revised events on the result topic, replays idempotent, revisions compared, and a
downstream consumer group moved back in time.

On Tansu (``make test``'s embedded run) the consumer group moved back in time runs, which depends on the broker's
offsets by time; the rest, the gateway's and the stages' work, runs on Apache Kafka."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from streams.kafka.clients import reader_consumer
from streamscribe.client import Client
from tests.conftest import read_references
from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration


async def _post(client: Client, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    async with client.session.post(f"{client.base}{path}", json=body) as resp:
        return resp.status, await resp.json()


async def _wait_revision(client: Client, job_id: str, revision: int, timeout: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        revs = {r["revision"]: r for r in (await client.revisions(job_id))["revisions"]}
        if revs[revision]["status"] in ("completed", "failed"):
            return revs[revision]
        await asyncio.sleep(0.3)
    raise AssertionError(f"revision {revision} of {job_id} did not finish")


def _transcript_events(stack: Stack, keys: set[str]) -> list[dict[str, Any]]:
    out = stack.cli("tail", "transcripts", "--from-beginning", "--timeout", "4")
    assert out.returncode == 0, out.stderr
    return [e for e in map(json.loads, out.stdout.splitlines()) if e["key"] in keys]


async def test_models_are_listed_with_what_they_can_do(stack: Stack, speech: Path) -> None:
    async with Client(stack.url) as client, client.session.get(f"{client.base}/v1/models") as resp:
        models = {m["name"]: m for m in (await resp.json())["models"]}
    assert models["tiny.en"]["multilingual"] is False
    assert models["base"]["multilingual"] is True and models["base"]["language_detection"] is True
    assert models["base"]["source"].startswith("wheels:")
    # a multilingual model detects the language when the job does not name one; hotwords and prompts pass
    job, transcript = await stack.transcribe(speech / "read" / "jfk.flac", model="base", diarize="off",
                                             initial_prompt="President Kennedy's inaugural address.")
    assert job["status"] == "completed", job
    assert transcript["model"] == "base" and transcript["language"] == "en"
    assert "country" in transcript["text"].lower()


async def test_replay_three_jobs_with_base(stack: Stack, speech: Path) -> None:
    files = [speech / "read" / f"LJ001-000{i}.wav" for i in (5, 6, 7)]
    originals = [await stack.transcribe(f, diarize="off") for f in files]
    assert all(j["status"] == "completed" for j, _ in originals)
    job_ids = [j["job_id"] for j, _ in originals]

    async with Client(stack.url) as client:
        status, body = await _post(client, "/v1/replays", {"job_ids": job_ids, "model": "base", "language": "en"})
        assert status == 202, body
        assert [(j["job_id"], j["revision"], j["created"]) for j in body["jobs"]] == [(j, 2, True) for j in job_ids]
        for job_id in job_ids:
            assert (await _wait_revision(client, job_id, 2))["status"] == "completed"
        for (_job, first), job_id in zip(originals, job_ids, strict=True):
            latest = await client.transcript(job_id)
            assert latest["revision"] == 2 and latest["model"] == "base"
            again = await client.transcript(job_id, revision=1)  # the original is untouched
            assert again["model"] == "tiny.en" and again["text"] == first["text"]
            assert again["segments"] == first["segments"]
            revs = (await client.revisions(job_id))["revisions"]
            assert [(r["revision"], r["model"], r["status"]) for r in revs] == [
                (1, "tiny.en", "completed"), (2, "base", "completed")]

        # the result topic carries the revision, so subscribers can tell a correction from a first result
        events = _transcript_events(stack, set(job_ids))
        completed = {(e["key"], e["value"]["revision"], e["value"]["model"]) for e in events
                     if e["value"]["kind"] == "COMPLETED"}
        assert completed == {(j, 1, "tiny.en") for j in job_ids} | {(j, 2, "base") for j in job_ids}

        # replaying the same thing again changes nothing
        status, body = await _post(client, "/v1/replays", {"job_ids": job_ids, "model": "base", "language": "en"})
        assert status == 202 and [(j["revision"], j["created"]) for j in body["jobs"]] == [(2, False)] * 3
        await asyncio.sleep(3)
        assert len(_transcript_events(stack, set(job_ids))) == len(events)
        for j in job_ids:
            assert len((await client.revisions(j))["revisions"]) == 2

    # the CLI prints the revision numbers
    out = stack.cli("replay", "--job", job_ids[0], "--model", "base", "--language", "en")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"{job_ids[0]}\trevision 2\texisting"


async def test_compare_revisions_on_read_speech(stack: Stack, speech: Path, tmp_path: Path) -> None:
    refs = read_references(speech)
    files = sorted((speech / "read").glob("LJ*.wav"))[8:16]
    jobs = await asyncio.gather(*(stack.transcribe(f, diarize="off") for f in files))
    job_ids = [j["job_id"] for j, _ in jobs]
    async with Client(stack.url) as client:
        status, _body = await _post(client, "/v1/replays", {"job_ids": job_ids, "model": "base", "language": "en"})
        assert status == 202
        await asyncio.gather(*(_wait_revision(client, j, 2) for j in job_ids))
        results = []
        for f, job_id in zip(files, job_ids, strict=True):
            status, cmp = await _post(client, f"/v1/jobs/{job_id}/compare", {"a": 1, "b": 2, "reference": refs[f.name]})
            assert status == 200, cmp
            assert cmp["a"]["model"] == "tiny.en" and cmp["b"]["model"] == "base"
            assert cmp["a"]["wer"] is not None and cmp["b"]["wer"] is not None and cmp["wer_between"] is not None
            if cmp["wer_between"]:
                assert any(op["op"] != "equal" for op in cmp["diff"])
            results.append(cmp)
    words = [len(refs[f.name].split()) for f in files]
    tiny = sum(r["a"]["wer"] * n for r, n in zip(results, words, strict=True)) / sum(words)
    base = sum(r["b"]["wer"] * n for r, n in zip(results, words, strict=True)) / sum(words)
    print(f"\nread speech ({len(files)} files): tiny.en WER {tiny:.2%}, base WER {base:.2%}")
    assert tiny < 0.15 and base < 0.15

    reference = tmp_path / "reference.txt"
    reference.write_text(refs[files[0].name])
    out = stack.cli("compare", job_ids[0], "--reference", str(reference))
    assert out.returncode == 0, out.stderr
    assert "revision 1 (tiny.en)" in out.stdout and "revision 2 (base)" in out.stdout and "WER" in out.stdout


def _drain(stack: Stack, group: str, idle: float = 4.0) -> list[tuple[int, int]]:
    """Consume transcripts as ``group`` until idle; returns (partition, offset) seen, offsets committed.

    The offsets are committed once, when the group has read everything (what a downstream consumer that is up to
    date has committed), not one synchronous commit per event: the first drain reads the topic from its
    beginning, thousands of events late in a suite run, and a round trip to the group coordinator for each of
    them only made the test slow."""
    settings = stack.settings()
    consumer = reader_consumer(settings.kafka, group)
    seen: list[tuple[int, int]] = []
    try:
        consumer.subscribe(["transcripts"])
        last = time.monotonic()
        while time.monotonic() - last < idle:
            msg = consumer.poll(0.2)
            if msg is None or msg.error():
                continue
            seen.append((msg.partition(), msg.offset()))
            last = time.monotonic()
        if seen:
            consumer.commit(asynchronous=False)  # every assigned partition's position: the next event to read
    finally:
        consumer.close()
    return seen


@pytest.mark.embedded
async def test_consumer_group_moved_back_in_time_rereads_exactly_what_followed(stack: Stack, speech: Path) -> None:
    group = f"downstream-{uuid.uuid4().hex[:6]}"
    await stack.transcribe(speech / "read" / "LJ001-0012.wav", diarize="off")
    _drain(stack, group)  # the group is up to date
    await asyncio.sleep(1.5)
    moment = datetime.now(UTC)
    await asyncio.sleep(1.5)
    await stack.transcribe(speech / "read" / "LJ001-0013.wav", diarize="off")
    await stack.transcribe(speech / "read" / "LJ001-0014.wav", diarize="off")
    after = _drain(stack, group)
    assert after, "new events were expected after the moment"

    dry = stack.cli("groups", "reset", "--group", group, "--topic", "transcripts", "--to-datetime",
                    moment.isoformat())
    assert dry.returncode == 0 and "dry run" in dry.stdout, dry.stderr
    moved = stack.cli("groups", "reset", "--group", group, "--topic", "transcripts", "--to-datetime",
                      moment.isoformat(), "--execute")
    assert moved.returncode == 0, moved.stderr
    again = _drain(stack, group)
    assert sorted(again) == sorted(after)
