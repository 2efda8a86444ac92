"""Scale-out on Apache Kafka: partitions added to live topics, two workers of vad and two of asr sharing their
group's partitions, a job completing exactly once, and ``kill -9`` of one asr worker moving its partitions to the
other with nothing lost.

A stack of this module's own, on the session's Apache Kafka cluster under a topic prefix of its own, with 2
partitions per topic, two vad workers (``STREAMSCRIBE_EMBEDDED__WORKERS``), one asr worker run by the supervisor
and a second one run here (the supervisor would start a killed worker again, under the same name, and take its
partitions back; this one stays dead). ``streamscribe topics create --partitions 4`` grows every topic of the
catalogue while the stack runs; the workers notice within ``metadata_refresh_ms`` and the groups spread the new
partitions over their members.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
import urllib.request
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.producer.audio import AudioProducer
from streams.kafka.topics import AUDIO_CHUNKS, AUDIO_SPEECH, TRANSCRIPTS
from streamscribe.client import Client
from streamscribe.stack.ports import free_port
from streamscribe.stack.state import stack_client_environment
from tests.integration.conftest import CLI, Stack, stack_as_admin
from tests.integration.subscriber import Subscriber, repeated, segment_id

pytestmark = [pytest.mark.integration, pytest.mark.broker("apache")]

PREFIX = f"scale{uuid.uuid4().hex[:4]}."


@pytest.fixture(scope="module")
def scaled(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    env = {"STREAMSCRIBE_KAFKA__BOOTSTRAP_SERVERS": stack.info["kafka_bootstrap"],
           "STREAMSCRIBE_KAFKA__BROKER": "apache", "STREAMSCRIBE_KAFKA__TOPIC_PREFIX": PREFIX,
           "STREAMSCRIBE_KAFKA__PARTITIONS": "2", "STREAMSCRIBE_KAFKA__REPLICATION_FACTOR": "3",
           # a dead worker's partitions move after its session; new partitions are noticed within seconds
           "STREAMSCRIBE_KAFKA__SESSION_TIMEOUT_MS": "10000", "STREAMSCRIBE_KAFKA__METADATA_REFRESH_MS": "3000",
           "STREAMSCRIBE_EMBEDDED__WORKERS": json.dumps({"vad": 2})}
    with stack_as_admin(tmp_path_factory.mktemp("scale"), env, broker="apache") as own:
        yield own


class ExtraWorker:
    """A second asr worker of the stack's group, run by the test (so that a kill -9 leaves it dead)."""

    def __init__(self, stack: Stack, log: Path) -> None:
        self.port = free_port()
        env = {**os.environ, **stack_client_environment(stack.info), "STREAMSCRIBE_HOME": str(stack.home),
               "STREAMSCRIBE_DATABASE_URL": stack.info["database_url"], "STREAMSCRIBE_WORKER__INSTANCE": "asr-extra"}
        with open(log, "ab") as out:
            self.proc = subprocess.Popen([*CLI, "worker", "asr", "--metrics-port", str(self.port)], env=env,
                                         stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.url = f"http://127.0.0.1:{self.port}/health"

    def kill9(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


def _held(url: str) -> set[tuple[str, int]]:
    """The partitions a worker holds, from its /health."""
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return {(t, p) for t, p in json.loads(resp.read())["partitions"]}
    except Exception:
        return set()


def _wait(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout:.0f} s: {what}"
        time.sleep(0.5)


def _of(held: set[tuple[str, int]], topic: str) -> set[int]:
    return {p for t, p in held if t == PREFIX + topic}


def _shares(urls: list[str], topic: str, partitions: int) -> bool:
    """Every partition of ``topic`` held by exactly one of the workers, and every worker holding some."""
    held = [_of(_held(u), topic) for u in urls]
    return all(held) and sorted(p for h in held for p in h) == list(range(partitions))


def _stream_on(partitions: set[int], count: int) -> str:
    """A stream id whose key the producers' default partitioner (CRC-32 of the key, librdkafka's
    ``consistent_random``) puts on one of ``partitions``."""
    while True:
        stream_id = f"scale-{uuid.uuid4().hex[:8]}"
        if zlib.crc32(stream_id.encode()) % count in partitions:
            return stream_id


async def _status(stack: Stack, stream_id: str) -> dict[str, Any]:
    async with Client(stack.url) as client:
        try:
            return await client.job(stream_id)
        except Exception:
            return {"status": "unknown", "stages": {}}


async def _until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"not within {timeout:.0f} s: {what}"
        await asyncio.sleep(0.1)


async def _segments(stack: Stack, stream_id: str) -> list[tuple[str, str]]:
    conn = await stack.db()
    try:
        rows = await conn.fetch("SELECT segment_id, text FROM transcript_segments WHERE job_id = $1 AND revision = 1 "
                                "ORDER BY start_s, idx", stream_id)
    finally:
        await conn.close()
    return [(r["segment_id"].split(":", 1)[1], r["text"]) for r in rows]


async def _send(stack: Stack, recording: Path, stream_id: str) -> None:
    producer = AudioProducer(stack.settings())
    await asyncio.to_thread(producer.send_file, recording, stream_id, speed=20.0, options={"segmentation": "merge"})


def _exactly_once(subscriber: Subscriber, stream_id: str) -> int:
    subscriber.wait_for(lambda: any(e["kind"] == "COMPLETED" for e in subscriber.of(TRANSCRIPTS, stream_id)), 120,
                        f"the completion of {stream_id}")
    time.sleep(2)
    events = subscriber.of(TRANSCRIPTS, stream_id)
    assert repeated(events, segment_id) == {}
    done = [e for e in events if e["kind"] == "COMPLETED"]
    assert len(done) == 1 and len([e for e in events if e["segment"]]) == done[0]["segment_count"]
    return int(done[0]["segment_count"])


async def test_partitions_added_live_are_shared_and_a_dead_worker_hands_its_over(scaled: Stack, speech: Path,
                                                                              tmp_path: Path) -> None:
    info = scaled.info["children"]
    vads = [f"http://127.0.0.1:{info[n]['metrics_port']}/health" for n in ("vad", "vad-2")]
    asr = f"http://127.0.0.1:{info['asr']['metrics_port']}/health"
    extra = ExtraWorker(scaled, tmp_path / "asr-extra.log")
    try:
        _wait(lambda: _shares(vads, AUDIO_CHUNKS, 2) and _shares([asr, extra.url], AUDIO_SPEECH, 2), 180,
              "two workers of vad and of asr sharing 2 partitions")

        # more partitions while everything runs: every topic of the catalogue grows, changelogs with their inputs
        grow = scaled.cli("topics", "create", "--partitions", "4", "--home", str(scaled.home), timeout=300)
        assert grow.returncode == 0, grow.stderr[-3000:]
        grown = json.loads(grow.stdout.strip().splitlines()[-1])["grown"]
        assert grown[PREFIX + AUDIO_SPEECH] == [2, 4] and grown[PREFIX + "streamscribe-vad.state"] == [2, 4]
        _wait(lambda: _shares(vads, AUDIO_CHUNKS, 4) and _shares([asr, extra.url], AUDIO_SPEECH, 4), 180,
              "the new partitions shared by both workers of each stage")

        recording = speech / "calls" / "call_center_phone_call.mp3"
        subscriber = Subscriber(scaled.settings(), (TRANSCRIPTS,))
        try:
            # a job on the grown topics, through both groups of two: complete, each event once
            reference_id = _stream_on({0, 1, 2, 3}, 4)
            await _send(scaled, recording, reference_id)
            await _until(lambda: _completed(scaled, reference_id), 600, "the first job")
            count = _exactly_once(subscriber, reference_id)
            reference = await _segments(scaled, reference_id)
            assert len(reference) == count > 3

            # a job on a partition the extra asr worker holds; it dies mid-job and never comes back
            mine = _of(_held(extra.url), AUDIO_SPEECH)
            stream_id = _stream_on(mine, 4)
            await _send(scaled, recording, stream_id)

            async def recognising() -> bool:
                st = (await _status(scaled, stream_id))["stages"].get("asr", {})
                return st.get("state") == "running" and 0 < (st.get("progress") or 0) < 0.9

            await _until(recognising, 300, "asr in the middle of the job")
            extra.kill9()
            # its partitions go to the other worker once its session has timed out
            _wait(lambda: _of(_held(asr), AUDIO_SPEECH) == {0, 1, 2, 3}, 120, "the dead worker's partitions moved")
            await _until(lambda: _completed(scaled, stream_id), 600, "the job of the dead worker")
            assert _exactly_once(subscriber, stream_id) == count
            assert await _segments(scaled, stream_id) == reference  # nothing lost, nothing twice
        finally:
            subscriber.close()
    finally:
        if extra.proc.poll() is None:
            extra.kill9()


async def _completed(stack: Stack, stream_id: str) -> bool:
    status = (await _status(stack, stream_id))["status"]
    assert status != "failed", await _status(stack, stream_id)
    return status == "completed"
