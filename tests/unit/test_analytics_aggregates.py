"""Aggregates of calls: a new revision replaces a call's contribution, replays count nothing twice, and a worker
that crashes anywhere (losing any suffix of each table's unflushed changelog writes) and reprocesses from its
last committed offset ends with the same totals as one that never crashed."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import pytest
from faust.windows import TumblingWindow

from processors.analytics.aggregate import ORG, Applied, Totals, apply, contribution, plan, record
from streams.stages.analytics.aggregates import Aggregates, Windows, bucket_key

NOW_MS = int(time.time() * 1000)


def call(job: str, revision: int, *, agent_talk: float, interruptions: int, hit: bool, missing: bool,
         at_ms: int = NOW_MS, org: str = "acme") -> dict[str, Any]:
    """An analytics.calls record as the stage publishes it (the fields aggregates read)."""
    return {
        "stream_id": job, "job_id": job, "revision": revision, "org_id": org, "completed_at": at_ms,
        "duration": 60.0 + revision, "speech_time": 50.0, "silence_total": 4.5, "overlap_time": 1.25,
        "words": 100 * revision, "interruptions": [{"at": 1.0, "by": "CHANNEL_2", "of": "CHANNEL_1"}] * interruptions,
        "speakers": [
            {"id": "CHANNEL_1", "name": "agent", "talk_time": agent_talk, "talk_share": round(agent_talk / 50, 4),
             "interruptions_made": 0, "interrupted": interruptions, "overlap_time": 1.25, "words": 60},
            {"id": "CHANNEL_2", "name": "customer", "talk_time": 50 - agent_talk,
             "talk_share": round(1 - agent_talk / 50, 4), "interruptions_made": interruptions, "interrupted": 0,
             "overlap_time": 1.25, "words": 40}],
        "phrase_hits": [{"phrase_id": "greeting", "speaker": "CHANNEL_1"}] if hit else [],
        "required_missing": [] if not missing else [{"phrase_id": "disclosure"}],
    }


def test_contribution_per_organization_and_named_speaker() -> None:
    c = contribution(call("j", 1, agent_talk=30.0, interruptions=2, hit=True, missing=True))
    assert set(c) == {ORG, "agent", "customer"}
    assert c[ORG] == Totals(calls=1, audio_ms=61_000, speech_ms=50_000, talk_ms=50_000, interruptions=2,
                            overlap_ms=1250, silence_ms=4500, words=100, required_missing=1, hits={"greeting": 1})
    assert c["agent"].talk_share_bp == 6000 and c["agent"].interrupted == 2 and c["agent"].hits == {"greeting": 1}
    assert c["customer"].interruptions == 2 and c["customer"].hits == {}


def test_a_new_revision_replaces_the_old_contribution() -> None:
    first = contribution(call("j", 1, agent_talk=30.0, interruptions=2, hit=False, missing=True))
    second = contribution(call("j", 2, agent_talk=20.0, interruptions=0, hit=True, missing=False))
    history: list[Applied] = []
    buckets: dict[str, Any] = {}
    for offset, (revision, new) in enumerate([(1, first), (2, second), (1, first), (2, second)]):
        change = plan(history, revision, NOW_MS + offset, new, offset)
        if change is None:
            continue
        for key, delta in change.deltas.items():
            buckets[key] = apply(buckets.get(key), delta, offset)
        history = record(history, change.entry)
    assert {k: b.totals for k, b in buckets.items()} == second  # counted once, as revision 2
    assert [h.revision for h in history] == [1, 2]
    assert all(h.at_ms == NOW_MS for h in history)  # the windows of the time the call was first counted


class FakeWindowed:
    """What ``Windows`` uses of faust's WindowWrapper: ``.table`` (a mapping with its ``.window``)."""

    def __init__(self, size: int, writes: list[tuple[Any, Any]]) -> None:
        self.table = _Table(TumblingWindow(size, expires=3600 * 24 * 30), writes)


class _Table(dict):  # type: ignore[type-arg]
    def __init__(self, window: TumblingWindow, writes: list[tuple[Any, Any]]) -> None:
        super().__init__()
        self.window = window
        self.writes = writes

    def __setitem__(self, key: Any, value: Any) -> None:
        self.writes.append((key, value))
        super().__setitem__(key, value)


class LoggedTable(dict):  # type: ignore[type-arg]
    def __init__(self, writes: list[tuple[Any, Any]]) -> None:
        super().__init__()
        self.writes = writes

    def __setitem__(self, key: Any, value: Any) -> None:
        self.writes.append((key, value))
        super().__setitem__(key, value)


class Worker:
    """The aggregates agent over tables whose changelogs are kept as write logs."""

    def __init__(self, logs: dict[str, list[tuple[Any, Any]]], published: list[Any]) -> None:
        self.logs = {name: list(writes) for name, writes in logs.items()}
        jobs = LoggedTable(self.logs["jobs"])
        hourly, daily = FakeWindowed(3600, self.logs["hourly"]), FakeWindowed(86400, self.logs["daily"])
        for table, name in ((jobs, "jobs"), (hourly.table, "hourly"), (daily.table, "daily")):
            for key, value in self.logs[name]:  # recovery: replay the changelog
                dict.__setitem__(table, key, value)

        async def publish(snapshot: Any) -> None:
            published.append(snapshot)

        self.agent = Aggregates(jobs, [Windows("HOUR", hourly), Windows("DAY", daily)], publish)

    def handle(self, ev: dict[str, Any], offset: int) -> None:
        asyncio.run(self.agent.handle(ev, offset))


def _events(rng: random.Random) -> list[dict[str, Any]]:
    """Calls of 8 jobs: first runs, new revisions, replays of the same revision and stale older revisions."""
    out = []
    for job in range(8):
        for revision in sorted(rng.sample(range(1, 4), rng.randint(1, 3))):
            out.append(call(f"job{job}", revision, agent_talk=rng.choice([10.0, 20.5, 33.3]),
                            interruptions=rng.randint(0, 3), hit=rng.random() < 0.5, missing=rng.random() < 0.3))
    rng.shuffle(out)
    return out + rng.sample(out, 6)  # redelivered duplicates at later offsets


def _expected(events: list[dict[str, Any]]) -> dict[str, Totals]:
    """Each job counted once, as the newest revision that reached the stage before any older one's repeat."""
    newest: dict[str, dict[str, Any]] = {}
    for ev in events:
        if ev["job_id"] not in newest or ev["revision"] > newest[ev["job_id"]]["revision"]:
            newest[ev["job_id"]] = ev
    total: dict[str, Totals] = {}
    for ev in newest.values():
        for key, t in contribution(ev).items():
            total[key] = total.get(key, Totals()) + t
    return total


def _buckets(logs: dict[str, list[tuple[Any, Any]]], table: str) -> dict[str, Totals]:
    final: dict[Any, Any] = {}
    for key, value in logs[table]:
        final[key] = value
    return {k[0].split("\x1f")[1]: Totals.from_json(v["totals"]) for k, v in final.items()}


@pytest.mark.parametrize("seed", range(40))
def test_crashes_anywhere_lose_and_double_count_nothing(seed: int) -> None:
    rng = random.Random(seed)
    events = _events(rng)
    logs: dict[str, list[tuple[Any, Any]]] = {"jobs": [], "hourly": [], "daily": []}
    published: list[Any] = []
    durable = {name: 0 for name in logs}  # changelog writes flushed by the last commit
    committed, crashes = 0, 0
    worker = Worker(logs, published)
    offset = committed
    while offset < len(events):
        worker.handle(events[offset], offset)
        offset += 1
        if rng.random() < 0.3:  # commit: flush every changelog, then commit the offset
            durable = {name: len(worker.logs[name]) for name in logs}
            committed = offset
        if rng.random() < 0.25:  # crash: each changelog keeps its flushed writes and any prefix of the rest
            crashes += 1
            logs = {name: w[:rng.randint(durable[name], len(w))] for name, w in worker.logs.items()}
            durable = {name: len(w) for name, w in logs.items()}
            worker, offset = Worker(logs, published), committed
    assert crashes > 0 or seed % 7 == 0  # most seeds crash at least once
    expected = _expected(events)
    for table in ("hourly", "daily"):
        assert _buckets(worker.logs, table) == expected
    latest: dict[tuple[str, str], Any] = {}
    for snap in published:  # what the materializer keeps: the highest version of each window
        key = (snap.granularity, snap.speaker)
        if key not in latest or snap.version >= latest[key].version:
            latest[key] = snap
    assert {(g, s): snap.calls for (g, s), snap in latest.items()} == {
        (g, s): t.calls for g in ("HOUR", "DAY") for s, t in expected.items()}
    assert {s: snap.talk_ms for (g, s), snap in latest.items() if g == "DAY"} == {
        s: t.talk_ms for s, t in expected.items()}


def test_bucket_keys_keep_organizations_apart() -> None:
    assert bucket_key("acme", "") != bucket_key("acme", "agent") != bucket_key("other", "agent")
