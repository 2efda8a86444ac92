"""Exactly-once on Apache Kafka: ``kill -9`` of stages in the middle of a job, and ``read_committed`` subscribers
of the result topics see each event once.

The session stack runs with ``processing_guarantee=exactly_once`` (``up --kafka apache``): every stage's batch is
one transaction carrying its outputs, its state changes and its input offsets. Ingest is killed while its
transaction is open (its decoded chunks already written, not committed: a ``read_uncommitted`` reader sees them,
a ``read_committed`` one does not), and ASR while it recognises. After the restarts abort what the dead
processes left open and redo their batches, the ``read_uncommitted`` reader has seen chunks twice (the kill did
land inside a transaction), while the ``read_committed`` subscribers of ``audio.chunks``, ``asr.segments`` and
``transcripts`` have seen every event exactly once, and PostgreSQL holds each segment once.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from bench.corpus import mono_pcm, write_wav
from streams.kafka.topics import ASR_SEGMENTS, AUDIO_CHUNKS, TRANSCRIPTS
from streamscribe.client import Client
from tests.integration.conftest import Stack
from tests.integration.subscriber import Subscriber, chunk_id, repeated, segment_id

pytestmark = [pytest.mark.integration, pytest.mark.broker("apache")]

RESULTS = (AUDIO_CHUNKS, ASR_SEGMENTS, TRANSCRIPTS)


@pytest.fixture(scope="module")
def long_recording(speech: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 4.8 minutes of real speech, 16 kHz mono (the LJ Speech reads, two AMI meeting excerpts and the phone
    call, laid end to end): decoding it keeps ingest's transaction open a while (about 0.6 s by the second that
    7.8 minutes took; the kill is tried every 5 ms, and the test tries again if it missed), and there are windows
    enough for asr to be killed in the middle of them. Before, all eight excerpts (7.8 minutes,
    ``bench.corpus.write_long_recording``): the other six only made the job longer after the kills."""
    path = tmp_path_factory.mktemp("eos") / "long_recording.wav"
    sources = [*sorted((speech / "read").glob("LJ*.wav")), *sorted((speech / "meetings").glob("ami_*.flac"))[:2],
               speech / "calls" / "call_center_phone_call.mp3"]
    write_wav(path, mono_pcm(sources))
    return path


async def _job(stack: Stack, job_id: str) -> dict[str, Any]:
    async with Client(stack.url) as client:
        try:
            return await client.job(job_id)
        except Exception:  # the gateway may be restarting a connection
            return {"status": "unknown", "stages": {}}


async def _until(check: Any, timeout: float, what: str, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"not within {timeout:.0f} s: {what}"
        await asyncio.sleep(interval)


async def _rows(stack: Stack, job_id: str) -> list[str]:
    conn = await stack.db()
    try:
        return [r["segment_id"] for r in await conn.fetch(
            "SELECT segment_id FROM transcript_segments WHERE job_id = $1 AND revision = 1", job_id)]
    finally:
        await conn.close()


async def _kill_ingest_inside_its_transaction(stack: Stack, peek: Subscriber, committed: Subscriber,
                                              recording: Path) -> str:
    """Submit a job and ``kill -9`` ingest as soon as its first chunks are written but not committed; returns the
    job id. Tries up to three jobs until a kill lands inside the transaction (ingest commits a file's chunks
    at once, after decoding it: some tenths of a second here, so the first try normally does)."""
    for _ in range(3):
        async with Client(stack.url) as client:
            job_id = str((await client.submit(recording))["job_id"])

        async def written_not_committed(job: str = job_id) -> bool:
            return bool(peek.of(AUDIO_CHUNKS, job)) and not committed.of(AUDIO_CHUNKS, job)

        await _until(written_not_committed, 120, "ingest writing chunks", interval=0.005)
        stack.wait_restarted("ingest", stack.kill9("ingest"))
        committed.wait_for(lambda job=job_id: any(c["end_of_stream"] for c in committed.of(AUDIO_CHUNKS, job)), 300,
                           "the job's chunks, once ingest is back")
        time.sleep(1)
        if repeated(peek.of(AUDIO_CHUNKS, job_id), chunk_id):  # the dead ingest's chunks, and the new one's
            return job_id
    raise AssertionError("ingest committed each file before it could be killed; the test proves nothing")


async def test_kill9_mid_job_read_committed_subscribers_see_each_event_once(stack: Stack,
                                                                           long_recording: Path) -> None:
    settings = stack.settings()
    assert settings.kafka.processing_guarantee == "exactly_once"
    committed = Subscriber(settings, RESULTS)
    peek = Subscriber(settings, (AUDIO_CHUNKS,), read_committed=False)
    try:
        job_id = await _kill_ingest_inside_its_transaction(stack, peek, committed, long_recording)

        async def asr_mid_job() -> bool:
            asr = (await _job(stack, job_id))["stages"].get("asr", {})
            return asr.get("state") == "running" and 0 < (asr.get("progress") or 0) < 0.9

        await _until(asr_mid_job, 300, "asr in the middle of the job")
        old = stack.kill9("asr")
        stack.wait_restarted("asr", old)

        async def finished() -> bool:
            return (await _job(stack, job_id))["status"] in ("completed", "failed")

        await _until(finished, 600, "the job finished", interval=0.5)
        assert (await _job(stack, job_id))["status"] == "completed"
        committed.wait_for(lambda: any(e["kind"] == "COMPLETED" for e in committed.of(TRANSCRIPTS, job_id)), 60,
                           "the transcript's completion")
        time.sleep(2)  # anything late (a duplicate would come after the completion) has time to arrive

        # the kill landed inside ingest's transaction: what it wrote was seen twice by the read_uncommitted reader
        # (checked above), never by the read_committed subscribers, which see every event of the job exactly once
        chunks = committed.of(AUDIO_CHUNKS, job_id)
        assert repeated(chunks, chunk_id) == {}
        assert sorted(e["seq"] for e in chunks) == list(range(len(chunks))) and chunks[-1]["end_of_stream"]
        segments = committed.of(ASR_SEGMENTS, job_id)
        assert repeated(segments, segment_id) == {}
        assert sum(e["kind"] == "FINAL" for e in segments) > 10
        transcript = committed.of(TRANSCRIPTS, job_id)
        assert repeated(transcript, segment_id) == {}
        done = [e for e in transcript if e["kind"] == "COMPLETED"]
        assert len(done) == 1
        pieces = [e for e in transcript if e["segment"] is not None]
        assert len(pieces) == done[0]["segment_count"]
        # PostgreSQL: each segment once, as many as the completion announced
        rows = await _rows(stack, job_id)
        assert len(rows) == len(set(rows)) == done[0]["segment_count"]
    finally:
        committed.close()
        peek.close()
