"""kill -9 of any processor in the middle of a job: after the supervisor restarts it, the job completes with
no lost and no duplicated segments in PostgreSQL, identical to a run without a crash.

The whole module runs on Apache Kafka (exactly-once). On Tansu (``make test``'s embedded run, at-least-once) two
of its cases run: recognition killed alone, and VAD killed with an open speech window of a stream produced to
Kafka; there, the chaos suite (tests/chaos/test_chaos.py) kills every worker at once under a batch of uploads and
compares each job segment by segment, which covers the other stages on that broker."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from bench.corpus import write_mixed_recording
from connectors.ingest.decode import decode_chunks
from connectors.producer.audio import AudioProducer
from streams.kafka.topics import SPEECH_LANES
from streams.stages.registry import spec_of
from streamscribe.client import Client
from tests.integration.conftest import Stack
from tests.integration.dead_letters import read_dead_letters
from tests.integration.segments import assert_intact, rows, sampled_windows, shape

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def long_recording(speech: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 3.4 minutes of real speech (read, meeting and call audio laid end to end), 16 kHz mono."""
    path = tmp_path_factory.mktemp("long") / "long_recording.wav"
    write_mixed_recording(path, speech)
    return path


@pytest.fixture(scope="module")
async def reference(stack: Stack, long_recording: Path) -> list[tuple[str, float, float, str]]:
    job, _ = await stack.transcribe(long_recording)
    assert job["status"] == "completed", job
    ref = shape(await rows(stack, job["job_id"], 1))
    assert len(ref) > 30
    return ref


async def _stage(stack: Stack, job_id: str) -> dict[str, Any]:
    async with Client(stack.url) as client:
        try:
            return await client.job(job_id)
        except Exception:
            return {"status": "unknown", "stages": {}}


async def _wait_until(check: Callable[[], Awaitable[bool]], timeout: float = 120, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(interval)
    raise AssertionError("condition not reached")


@pytest.mark.parametrize("stage", ["ingest", pytest.param("asr", marks=pytest.mark.embedded), "diarization", "post",
                                   "materializer"])
async def test_kill9_during_upload_job(stack: Stack, long_recording: Path, reference: list[Any], stage: str) -> None:
    async with Client(stack.url) as client:
        job = await client.submit(long_recording)
    job_id = job["job_id"]

    async def mid_job() -> bool:
        j = await _stage(stack, job_id)
        st = j["stages"].get(stage, {})
        if stage == "ingest":
            return True  # decoding 3.4 minutes takes about half a second: kill at once, while it runs
        if stage == "asr":
            return st.get("state") == "running" and 0 < (st.get("progress") or 0) < 0.9
        if stage == "diarization":  # embeddings of some windows are in its state, the stream is not over
            return st.get("state") == "running" and j["stages"].get("asr", {}).get("state") == "running"
        # post (holding recognised windows until the speakers are known) and materializer
        asr = j["stages"].get("asr", {})
        return j["status"] == "running" and asr.get("state") == "running" and 0 < (asr.get("progress") or 0) < 0.9

    await _wait_until(mid_job)
    before = await _stage(stack, job_id)
    assert before["status"] != "completed", "the job finished before the kill: the test would prove nothing"
    old = stack.kill9(stage)
    stack.wait_restarted(stage, old)

    async with Client(stack.url) as client:
        final = await client.wait(job_id, timeout=300)
    assert final["status"] == "completed", final
    assert_intact(await rows(stack, job_id, 1), reference, sampled_windows(stack))


@pytest.mark.embedded
async def test_kill9_vad_mid_stream_keeps_its_state(stack: Stack, long_recording: Path, reference: list[Any]) -> None:
    """Audio produced straight to Kafka at 12x real time; VAD dies with an open speech window in its state."""
    stream_id = f"kill-vad-{uuid.uuid4().hex[:8]}"
    producer = AudioProducer(stack.settings())
    total = sum(1 for _ in decode_chunks(long_recording))
    killed: dict[str, int] = {}

    def on_chunk(seq: int) -> None:
        if seq == total * 2 // 5 and not killed:
            killed["pid"] = stack.kill9("vad")

    await asyncio.to_thread(producer.send_file, long_recording, stream_id, speed=12.0,
                            options={"segmentation": "merge"}, on_chunk=on_chunk)
    assert killed, "VAD was not killed mid-stream"
    stack.wait_restarted("vad", killed["pid"])

    async with Client(stack.url) as client:
        async def exists() -> bool:
            j = await _stage(stack, stream_id)
            return j["status"] == "completed"

        await _wait_until(exists, timeout=300, interval=0.5)
        final = await client.job(stream_id)
    assert final["source"] == "producer"
    assert_intact(await rows(stack, stream_id, 1), reference, sampled_windows(stack))


class WindowKiller:
    """Kills the recognition worker (``kill -9``) each time it has one window in hand: the first one it is seen
    to hold of ``stream`` (read from the worker's hand file, ``streams.runtime.poison``), as a native library
    that crashes on that window would. Notes the deaths the worker had counted for it at each kill."""

    def __init__(self, stack: Stack, stream: str) -> None:
        self.stack, self.stream = stack, stream
        self.hand = stack.settings().worker_hand_file(spec_of("asr").group, "asr")
        self.window: tuple[str, int, int] | None = None
        self.kills: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> WindowKiller:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._stop.is_set() and len(self.kills) < 5:
            pid = self.stack.pid("asr")
            try:
                # the file as a killed process left it names the window too: only what the live one wrote counts
                # (its write time checked before the read, so what is read is that write or a later one)
                written = self.hand.stat().st_mtime > psutil.Process(pid).create_time()
                held = json.loads(self.hand.read_text())["records"] if written else []
            except (OSError, ValueError, psutil.Error):
                held = []
            for topic, partition, offset, deaths, key in held:
                if self.window is None and key == self.stream:
                    self.window = (topic, partition, offset)
                if self.window == (topic, partition, offset):
                    os.kill(pid, signal.SIGKILL)
                    self.kills.append(deaths)
                    self.stack.wait_restarted("asr", pid)
                    break
            time.sleep(0.002)


async def test_a_window_that_kills_recognition_each_time_fails_its_job_alone(stack: Stack, speech: Path) -> None:
    """The recogniser dies whenever it holds one window of a job: after its third death the window is
    dead-lettered with the reason and that job fails; a job submitted beside it completes, and recognition goes
    on past the window."""
    poisoned, beside = speech / "read" / "LJ001-0004.wav", speech / "read" / "LJ001-0008.wav"
    async with Client(stack.url) as client:
        job = await client.submit(poisoned, diarize="off")
        with WindowKiller(stack, job["job_id"]) as killer:
            async def first_death() -> bool:
                return len(killer.kills) >= 1

            await _wait_until(first_death, timeout=120)
            other = await client.submit(beside, diarize="off")
            final = await client.wait(job["job_id"], timeout=300)
            done = await client.wait(other["job_id"], timeout=300)
    # the whole batch was in hand at the first death; then the window alone, counted at each death
    assert killer.kills == [0, 1, 2], killer.kills
    assert final["status"] == "failed", final
    assert "PoisonEvent" in final["error"] and "died 3 times" in final["error"], final["error"]
    assert done["status"] == "completed", done
    assert killer.window is not None
    letters = read_dead_letters(stack, killer.window[0], {job["job_id"]})
    letter = letters[job["job_id"]]
    assert (letter["partition"], letter["offset"], letter["error_type"]) == (*killer.window[1:], "PoisonEvent")
    assert letter["stage"] == spec_of("asr").group and killer.window[0] in SPEECH_LANES
