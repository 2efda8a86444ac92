"""Broker failover on the session's 3-node Apache Kafka cluster (replication factor 3, ``min.insync.replicas`` 2,
exactly-once): ``kill -9`` of one broker while 10 jobs run. Every job completes, nothing is lost or duplicated in
PostgreSQL or on ``transcripts`` (a ``read_committed`` subscriber sees each event once), and the supervisor
starts the broker again, which rejoins the cluster and the in-sync replicas.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from foundation.processes import pid_alive
from streams.kafka.clients import admin_client
from streams.kafka.topics import TRANSCRIPTS
from streamscribe.client import Client
from tests.integration.conftest import Stack
from tests.integration.subscriber import Subscriber, repeated, segment_id

pytestmark = [pytest.mark.integration, pytest.mark.broker("apache")]


def _recordings(speech: Path) -> list[Path]:
    """Ten real recordings, 7 s to 2 min: AMI meeting excerpts, a speech, a phone call."""
    files = [*sorted((speech / "meetings").glob("ami_*.flac")), speech / "read" / "jfk.flac",
             speech / "calls" / "call_center_phone_call.mp3"]
    assert len(files) == 10, files
    return files


def _leader_of(stack: Stack, topic: str) -> int:
    kafka = stack.settings().kafka
    md = admin_client(kafka).list_topics(kafka.topic_prefix + topic, timeout=10).topics[kafka.topic_prefix + topic]
    return int(md.partitions[0].leader)


def _in_sync(stack: Stack, topic: str) -> list[list[int]]:
    kafka = stack.settings().kafka
    md = admin_client(kafka).list_topics(kafka.topic_prefix + topic, timeout=10).topics[kafka.topic_prefix + topic]
    return [sorted(p.isrs) for p in md.partitions.values()]


async def _statuses(client: Client, jobs: list[str]) -> dict[str, str]:
    out = {}
    for job_id in jobs:
        try:
            out[job_id] = (await client.job(job_id))["status"]
        except Exception:  # the gateway may answer an error while the cluster moves leaders
            out[job_id] = "unknown"
    return out


async def _segments(stack: Stack, job_id: str) -> list[str]:
    conn = await stack.db()
    try:
        return [r["segment_id"] for r in await conn.fetch(
            "SELECT segment_id FROM transcript_segments WHERE job_id = $1 AND revision = 1", job_id)]
    finally:
        await conn.close()


async def test_kill9_of_a_broker_during_ten_jobs(stack: Stack, speech: Path) -> None:
    subscriber = Subscriber(stack.settings(), (TRANSCRIPTS,))
    try:
        async with Client(stack.url) as client:
            jobs = [str((await client.submit(path))["job_id"]) for path in _recordings(speech)]
            deadline = time.monotonic() + 300
            while sum(s == "running" for s in (await _statuses(client, jobs)).values()) < 3:
                assert time.monotonic() < deadline, "the jobs did not start"
                await asyncio.sleep(0.2)
            before = await _statuses(client, jobs)
            assert sum(s == "completed" for s in before.values()) < 5, f"too late for a failover: {before}"

            victim = _leader_of(stack, TRANSCRIPTS)  # the broker that leads the results' first partition
            name = f"kafka-{victim}"
            killed: dict[str, Any] = dict(stack.info["infra"][name])
            os.kill(killed["pid"], signal.SIGKILL)

            deadline = time.monotonic() + 900
            while True:
                statuses = await _statuses(client, jobs)
                if all(s in ("completed", "failed") for s in statuses.values()):
                    break
                assert time.monotonic() < deadline, f"jobs still running: {statuses}"
                await asyncio.sleep(1)
        assert set(statuses.values()) == {"completed"}, statuses

        # the broker was started again on its ports and data, and rejoined the cluster and every in-sync set
        again = stack.info["infra"][name]
        assert again["restarts"] == killed["restarts"] + 1 and again["pid"] != killed["pid"]
        assert pid_alive(again["pid"]) and again["port"] == killed["port"]
        deadline = time.monotonic() + 300
        while not all(isr == [1, 2, 3] for isr in _in_sync(stack, TRANSCRIPTS)):
            assert time.monotonic() < deadline, f"broker {victim} is not back in sync: {_in_sync(stack, TRANSCRIPTS)}"
            time.sleep(1)

        # nothing lost, nothing twice: on the topic (read_committed) and in PostgreSQL
        for job_id in jobs:
            subscriber.wait_for(lambda j=job_id: any(e["kind"] == "COMPLETED" for e in subscriber.of(TRANSCRIPTS, j)),
                                120, f"the completion of {job_id}")
        time.sleep(2)
        for job_id in jobs:
            events = subscriber.of(TRANSCRIPTS, job_id)
            assert repeated(events, segment_id) == {}, job_id
            done = [e for e in events if e["kind"] == "COMPLETED"]
            assert len(done) == 1 and len([e for e in events if e["segment"]]) == done[0]["segment_count"], job_id
            rows = await _segments(stack, job_id)
            assert len(rows) == len(set(rows)) == done[0]["segment_count"] > 0, job_id
    finally:
        subscriber.close()
