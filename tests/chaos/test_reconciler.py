"""The reconciler on the real stack (streamscribe.recovery; this session's stack judges a job stuck after 15 s):

- a job whose claim check never reached Kafka (a gateway that died between storing the job and publishing it)
  runs again from its stored recording as revision 2, completes with a clean run's segments, and the
  subscriber hears ``job.requeued`` then ``job.completed``;
- a stuck job whose recording was deleted fails with the reason (``job.failed``);
- a job that keeps getting stuck fails once its runs are spent;
- ``retry`` of a running job runs it again at once; of a completed one it is refused;
- a live session whose gateway is killed mid-sentence completes as far as it was heard.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
from confluent_kafka import TopicPartition

from connectors.ingest.decode import decode_chunks
from foundation.settings import Settings
from repositories.db import create_pool
from repositories.jobs import JobStore, NewJob
from streams.kafka.clients import reader_consumer
from streams.kafka.topics import INGEST_REQUESTS
from streamscribe.client import Client
from streamscribe.recovery.backlog import stream_partition
from tests.chaos.conftest import Receiver, job, wait_until
from tests.conftest import normalize, read_references
from tests.integration.conftest import Stack
from tests.integration.segments import Shape, assert_intact, rows, sampled_windows


async def _stored_file(stack: Stack, path: Path) -> dict[str, Any]:
    """A recording stored through the API (POST /v1/files), with its object key."""
    async with Client(stack.url) as client:
        form = aiohttp.FormData()
        form.add_field("file", path.read_bytes(), filename=path.name)
        async with client.session.post(f"{client.base}/v1/files", data=form) as resp:
            assert resp.status == 201, await resp.text()
            found: dict[str, Any] = await resp.json()
    conn = await stack.db()
    try:
        found["object_key"] = await conn.fetchval("SELECT object_key FROM files WHERE file_id = $1",
                                                  found["file_id"])
    finally:
        await conn.close()
    return found


async def _job_never_published(stack: Stack, path: Path) -> str:
    """A queued job made from a stored recording exactly as the gateway makes one, whose claim check was never
    published: what a gateway that dies between the two leaves behind."""
    stored = await _stored_file(stack, path)
    job_id = uuid.uuid4().hex
    settings: Settings = stack.settings()
    pool = await create_pool(settings.database_url, max_size=1)
    try:
        await JobStore(pool).create(NewJob(
            job_id=job_id, stream_id=job_id, object_key=stored["object_key"], model="tiny.en",
            options={"model": "tiny.en", "org_id": "default", "priority": "normal"}, filename=path.name,
            size_bytes=path.stat().st_size, file_id=stored["file_id"]))
    finally:
        await pool.close()
    return job_id


async def _revisions(stack: Stack, job_id: str) -> list[dict[str, Any]]:
    async with Client(stack.url) as client:
        found: list[dict[str, Any]] = (await client.revisions(job_id))["revisions"]
    return found


def _partition_of_claim_check(stack: Stack, job_id: str) -> tuple[int, int]:
    """(partition the broker holds the job's claim check in, partition count of ingest.requests)."""
    settings = stack.settings()
    reader = reader_consumer(settings.kafka, f"test-partition-{uuid.uuid4().hex[:6]}")
    try:
        count = len(reader.list_topics(INGEST_REQUESTS, timeout=10).topics[INGEST_REQUESTS].partitions)
        reader.assign([TopicPartition(INGEST_REQUESTS, p, 0) for p in range(count)])
        for _ in range(200):
            for msg in reader.consume(500, 0.2):
                if msg.error() is None and msg.key() == job_id.encode():
                    return int(msg.partition() or 0), count
    finally:
        reader.close()
    raise AssertionError("the job's claim check is not on ingest.requests")


async def test_a_job_whose_claim_check_was_lost_runs_again_and_completes(
        chaos_stack: Stack, recordings: list[Path], references: dict[Path, list[Shape]],
        receiver: Receiver) -> None:
    path = recordings[0]
    job_id = await _job_never_published(chaos_stack, path)
    done = await wait_until(lambda: _ended(chaos_stack, job_id), 300, "the lost job to be run again and complete")
    assert done["status"] == "completed" and done["revision"] == 2, done
    assert done["stages"]["reconciler"]["state"] in ("queued", "running")
    assert "no progress for" in done["stages"]["reconciler"]["message"]
    assert_intact(await rows(chaos_stack, job_id), references[path], sampled_windows(chaos_stack))
    first, second = await _revisions(chaos_stack, job_id)
    assert first["status"] == "failed" and "no stage has anything left to read for it" in first["error"]
    assert second["status"] == "completed" and second["attempt"] == 2 and second["model"] == "tiny.en"
    await wait_until(lambda: _heard(receiver, job_id, "job.requeued", "job.completed"), 60, "the webhooks")
    requeued = receiver.of(job_id, "job.requeued")[0]
    assert requeued["revision"] == 2 and requeued["previous_revision"] == 1 and requeued["attempt"] == 2
    assert "no progress for" in requeued["reason"] and requeued["stage"] == "reconciler"
    # the reconciler looks for a stream's events in the partition the broker really put them in
    partition, count = _partition_of_claim_check(chaos_stack, job_id)
    assert partition == stream_partition(job_id, count)


async def test_a_stuck_job_whose_recording_was_deleted_fails_with_the_reason(
        chaos_stack: Stack, recordings: list[Path], receiver: Receiver) -> None:
    path = recordings[2]
    job_id = await _job_never_published(chaos_stack, path)
    async with Client(chaos_stack.url) as client:
        file_id = (await client.job(job_id))["file_id"]
        async with client.session.delete(f"{client.base}/v1/files/{file_id}") as resp:
            assert resp.status == 204, await resp.text()
    done = await wait_until(lambda: _ended(chaos_stack, job_id), 120, "the stuck job to fail")
    assert done["status"] == "failed" and done["revision"] == 1, done
    assert "its stored recording is gone (deleted or expired), so it cannot run again" in done["error"]
    assert done["error_stage"] == "streamscribe-reconciler"
    await wait_until(lambda: _heard(receiver, job_id, "job.failed"), 60, "the failure's webhook")
    assert receiver.of(job_id, "job.failed")[0]["error"] == done["error"]


async def test_a_job_that_keeps_getting_stuck_fails_when_its_runs_are_spent(
        chaos_stack: Stack, recordings: list[Path]) -> None:
    """A lost job already at its last run (this stack allows 2): it is not run a third time."""
    job_id = await _job_never_published(chaos_stack, recordings[3])
    conn = await chaos_stack.db()
    try:  # as if the reconciler had run it again once already
        await conn.execute("UPDATE revisions SET attempt = 2 WHERE job_id = $1", job_id)
    finally:
        await conn.close()
    done = await wait_until(lambda: _ended(chaos_stack, job_id), 120, "the job to fail")
    assert done["status"] == "failed" and done["revision"] == 1, done
    assert "given up after 2 runs (at most 2)" in done["error"]


async def test_retry_of_a_running_job_runs_it_again(chaos_stack: Stack, recordings: list[Path],
                                                    references: dict[Path, list[Shape]]) -> None:
    path = recordings[1]
    async with Client(chaos_stack.url) as client:
        job_id = (await client.submit(path))["job_id"]
        await wait_until(lambda: _status(chaos_stack, job_id, "running"), 120, "the job to run")
        async with client.session.post(f"{client.base}/v1/jobs/{job_id}/retry") as resp:
            assert resp.status == 202, await resp.text()
            retried = await resp.json()
        assert retried == {"job_id": job_id, "revision": 2, "created": True}
        done = await client.wait(job_id, timeout=300)
        assert done["status"] == "completed" and done["revision"] == 2, done
        assert_intact(await rows(chaos_stack, job_id), references[path], sampled_windows(chaos_stack))
        first, second = await _revisions(chaos_stack, job_id)
        assert first["status"] == "failed" and "superseded by a retry" in first["error"]
        assert second["attempt"] == 1
        async with client.session.post(f"{client.base}/v1/jobs/{job_id}/retry") as resp:
            assert resp.status == 409 and "replay" in (await resp.json())["detail"]


async def test_a_live_session_cut_by_a_gateway_crash_completes_as_far_as_heard(
        chaos_stack: Stack, speech: Path, receiver: Receiver) -> None:
    files = sorted((speech / "read").glob("LJ*.wav"))[:3]
    refs = read_references(speech)
    pcm = np.concatenate([p for f in files for p in (_mono(f), np.zeros(16000, np.int16))]).astype("<i2").tobytes()
    async with (aiohttp.ClientSession(headers=chaos_stack.auth) as http,
                http.ws_connect(f"{chaos_stack.url}/v1/live") as ws):
        await ws.send_json({"type": "start", "sample_rate": 16000, "channels": 1, "encoding": "pcm_s16le"})
        started = await ws.receive_json()
        job_id = started["job_id"]
        finals = 0
        frame = 3200  # 100 ms
        for offset in range(0, len(pcm), frame):  # at twice real time, until the first sentence is final
            await ws.send_bytes(pcm[offset:offset + frame])
            await asyncio.sleep(0.05)
            while not ws.closed:
                try:
                    msg = await ws.receive(timeout=0.001)
                except TimeoutError:
                    break
                if msg.type == aiohttp.WSMsgType.TEXT and json.loads(msg.data)["type"] == "final":
                    finals += 1
            if finals and offset > len(pcm) // 2:
                break
        assert finals, "no final before the cut"
        old = chaos_stack.kill9("gateway")  # mid-sentence, the session open: nobody will end its stream
    chaos_stack.wait_restarted("gateway", old)
    done = await wait_until(lambda: _ended(chaos_stack, job_id), 180, "the cut session to be closed")
    assert done["status"] == "completed" and done["revision"] == 1, done
    assert "its gateway stopped" in done["stages"]["reconciler"]["message"]
    assert done["audio_stored"] is False  # the archive is written when a session ends; this one never did
    async with Client(chaos_stack.url) as client:
        text = normalize((await client.transcript(job_id))["text"])
    assert normalize(refs[files[0].name]).split()[:6] == text.split()[:6], text
    await wait_until(lambda: _heard(receiver, job_id, "job.completed"), 60, "the completion's webhook")
    async with (Client(chaos_stack.url) as client,
                client.session.post(f"{client.base}/v1/replays", json={"job_ids": [job_id]}) as resp):
        assert resp.status == 202
        assert (await resp.json())["jobs"][0]["error"].startswith("no stored audio")


def _mono(path: Path) -> np.ndarray:
    return np.concatenate([c.frames.astype(np.int32).mean(axis=1).astype(np.int16) for c in decode_chunks(path)])


async def _ended(stack: Stack, job_id: str) -> dict[str, Any] | None:
    got = await job(stack, job_id)
    return got if got and got["status"] in ("completed", "failed") else None


async def _status(stack: Stack, job_id: str, status: str) -> bool:
    got = await job(stack, job_id)
    return bool(got and got["status"] == status)


async def _heard(receiver: Receiver, job_id: str, *types: str) -> bool:
    return set(types) <= set(receiver.types(job_id))
