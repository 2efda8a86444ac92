"""Conversation analytics on the real stack: the faust-hosted ``analytics`` stage, its projection and the API.

- The reference path: the AMI excerpts' reference turns (RTTM) published as speaker turns and a transcript;
  the stage's metrics (talk time, turns, interruptions, overlap, silences) must equal, to the millisecond,
  those computed in the test on a 1 ms grid from the same turns (``tests.unit.test_analytics_metrics``), and
  the organization's aggregates must be their exact sums.
- A kill -9 of the analytics worker in the middle of a stream of calls, with a new revision of one call and a
  duplicated revision of another: the aggregates end with every call counted exactly once, its latest
  revision's figures in them.
- The real pipeline on the stereo call (recogniser, channel diarization): metrics equal those computed from
  the transcript's own segments, and agree with each channel's speech (from its energy) within tolerances;
  phrase hits at the words' times, a required phrase missing fires a webhook.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer, TopicPartition

from foundation.events import Event, SpeakerTurns, TranscriptEvent
from foundation.settings import Settings
from repositories.migrate import apply_migrations
from streams.kafka.clients import end_offsets, publisher_producer, reader_consumer
from streams.kafka.schema_registry import make_registry
from streams.kafka.serde import AvroSerde
from streams.kafka.topics import ANALYTICS_CALLS, ANALYTICS_WINDOWS, SPEAKER_TURNS, TRANSCRIPTS
from streamscribe.client import Client
from streamscribe.stack import postgres
from streamscribe.stack.ports import free_port
from tests.integration.apache_kafka import ApacheKafka
from tests.integration.conftest import Stack
from tests.integration.test_webhooks import Receiver, call, receiver, subscribe, wait_for  # noqa: F401
from tests.unit.test_analytics_metrics import (
    RECORDINGS,
    Expected,
    Turn,
    channel_turns,
    check,
    expected_from_grid,
    rttm,
    transcript,
)

pytestmark = pytest.mark.integration

DURATION = 30.0  # every AMI excerpt


@dataclass
class Kafka:
    producer: Producer
    serde: AvroSerde
    prefix: str = ""

    def send(self, topic: str, key: str, event: Event) -> None:
        full = self.prefix + topic
        value = self.serde.serialize(full, event)
        deadline = time.monotonic() + 60
        while True:
            try:
                self.producer.produce(full, key=key.encode(), value=value)
                return
            except KafkaException as exc:
                # a topic just created reaches every broker's metadata a moment later (3-broker cluster)
                if exc.args[0].code() != KafkaError._UNKNOWN_TOPIC or time.monotonic() > deadline:
                    raise
                self.producer.poll(0.5)


@pytest.fixture(scope="module")
def kafka(stack: Stack) -> Iterator[Kafka]:
    settings = stack.settings()
    producer = publisher_producer(settings.kafka, "test-analytics")
    yield Kafka(producer, AvroSerde(make_registry("", settings.schema_registry_file)))
    assert producer.flush(30) == 0


def publish_call(kafka: Kafka, stream_id: str, org: str, turns: list[Turn], revision: int = 1) -> None:
    """One call as acoustic diarization and the recogniser would publish it: the FINAL speaker turns, one
    transcript segment per turn, then the revision's COMPLETED event. Speakers are named (their label is
    their id in lower case), so the aggregates have them per speaker too."""
    speakers = [{"id": s, "label": s.lower()} for s in sorted({t[2] for t in turns})]
    options = {"org_id": org, "diarize": "acoustic"}
    common: dict[str, Any] = {"stream_id": stream_id, "job_id": stream_id, "revision": revision}
    kafka.send(SPEAKER_TURNS, stream_id, SpeakerTurns(
        **common, kind="FINAL", mode="acoustic", backend="reference",
        turns=[{"start": a / 1000, "end": b / 1000, "speaker": s} for a, b, s in turns], speakers=speakers,
        options=options))
    segments = transcript(turns)
    for seg in segments:
        kafka.send(TRANSCRIPTS, stream_id, TranscriptEvent(
            **common, kind="SEGMENT", segment=seg, model="reference", pipeline_version="test", options=options))
    kafka.send(TRANSCRIPTS, stream_id, TranscriptEvent(
        **common, kind="COMPLETED", model="reference", pipeline_version="test", language="en",
        duration=DURATION, segment_count=len(segments), speakers=speakers, options=options))
    assert kafka.producer.flush(120) == 0, "the broker did not acknowledge the call's events"


async def new_org(stack: Stack, name: str) -> str:
    status, org, _ = await call(stack, stack.admin_key, "POST", "/v1/organizations", json={"name": name})
    assert status == 201, org
    return str(org["id"])


async def call_analytics(stack: Stack, job_id: str, revision: int, timeout: float = 180) -> dict[str, Any]:
    async def ready() -> dict[str, Any] | None:
        status, body, _ = await call(stack, stack.admin_key, "GET", f"/v1/jobs/{job_id}/analytics",
                                     params={"revision": str(revision)})
        return body if status == 200 else None
    result: dict[str, Any] = await wait_for(ready, timeout, f"analytics of {job_id} revision {revision}")
    return result


async def aggregates(stack: Stack, org: str, granularity: str, speaker: str = "") -> dict[str, Any]:
    status, body, _ = await call(stack, stack.admin_key, "GET", "/v1/analytics", params={
        "org_id": org, "granularity": granularity, **({"speaker": speaker} if speaker else {})})
    assert status == 200, body
    return dict(body)


def ms_to_min(ms: int) -> float:
    return round(ms / 60_000, 3)


def expected_totals(calls: list[Expected]) -> dict[str, Any]:
    """What an organization's aggregates hold after ``calls`` (each counted once)."""
    return {"calls": len(calls), "audio_minutes": ms_to_min(round(DURATION * 1000) * len(calls)),
            "talk_minutes": ms_to_min(sum(sum(e.talk.values()) for e in calls)),
            "interruptions": sum(len(e.interruptions) for e in calls),
            "overlap_seconds": round(sum(e.overlap for e in calls) / 1000, 3),
            "silence_seconds": round(sum(e.silence for e in calls) / 1000, 3)}


def observed(totals: dict[str, Any]) -> dict[str, Any]:
    return {k: totals[k] for k in ("calls", "audio_minutes", "talk_minutes", "interruptions", "overlap_seconds",
                                   "silence_seconds")}


async def settled_totals(stack: Stack, org: str, want: dict[str, Any], speaker: str = "",
                         timeout: float = 120) -> None:
    """The hourly and daily aggregates reach ``want`` and stay there (nothing counted late, twice)."""
    for granularity in ("hour", "day"):
        async def reached(g: str = granularity) -> bool:
            return observed((await aggregates(stack, org, g, speaker))["totals"]) == want
        try:
            await wait_for(reached, timeout, f"{granularity} aggregates of {org} {speaker}")
        except AssertionError:
            got = observed((await aggregates(stack, org, granularity, speaker))["totals"])
            raise AssertionError(f"{granularity} {speaker or 'organization'}: {got} != {want}") from None
    await asyncio.sleep(3)
    for granularity in ("hour", "day"):
        assert observed((await aggregates(stack, org, granularity, speaker))["totals"]) == want


async def test_reference_turns_through_the_stage_give_exact_metrics_and_sums(
        stack: Stack, kafka: Kafka, speech: Path) -> None:
    org = await new_org(stack, "analytics reference")
    reference = rttm(speech)
    streams = {rec: f"an-ref-{rec}-{uuid.uuid4().hex[:8]}" for rec in RECORDINGS}
    for rec, stream_id in streams.items():
        publish_call(kafka, stream_id, org, reference[rec])
    expected = {}
    for rec, stream_id in streams.items():
        result = await call_analytics(stack, stream_id, 1)
        assert result["org_id"] == org and result["timing"] == "turns" and result["revisions"] == [1]
        expected[rec] = expected_from_grid(reference[rec])
        check(result, expected[rec])
    await settled_totals(stack, org, expected_totals(list(expected.values())))
    # per named speaker: the calls they were in, and their own talk time
    speaker = reference[RECORDINGS[0]][0][2]
    theirs = [e for e in expected.values() if speaker in e.talk]
    body = await aggregates(stack, org, "day", speaker.lower())
    assert body["speaker"] == speaker.lower() and speaker.lower() in body["speakers"]
    assert body["totals"]["calls"] == len(theirs)
    assert body["totals"]["talk_minutes"] == ms_to_min(sum(e.talk[speaker] for e in theirs))
    shares = [e.talk[speaker] / sum(e.talk.values()) for e in theirs]
    assert body["totals"]["mean_talk_share"] == pytest.approx(sum(shares) / len(shares), abs=1e-3)


async def test_worker_killed_mid_stream_loses_and_double_counts_nothing(
        stack: Stack, kafka: Kafka, speech: Path) -> None:
    org = await new_org(stack, "analytics restart")
    reference = rttm(speech)
    streams = [f"an-kill-{rec}-{uuid.uuid4().hex[:8]}" for rec in RECORDINGS]
    final = {s: reference[rec] for s, rec in zip(streams, RECORDINGS, strict=True)}
    for stream_id in streams[:4]:
        publish_call(kafka, stream_id, org, final[stream_id])
    await call_analytics(stack, streams[0], 1)
    old = stack.kill9("analytics")  # while the other calls of the first half are in flight
    for stream_id in streams[4:]:
        publish_call(kafka, stream_id, org, final[stream_id])
    # a new revision of one call (other turns: another recording's), and one published twice
    publish_call(kafka, streams[1], org, reference[RECORDINGS[7]], revision=2)
    final[streams[1]] = reference[RECORDINGS[7]]
    for _ in range(2):
        publish_call(kafka, streams[2], org, reference[RECORDINGS[5]], revision=2)
    final[streams[2]] = reference[RECORDINGS[5]]
    stack.wait_restarted("analytics", old)
    for stream_id in streams:
        revision = 2 if stream_id in streams[1:3] else 1
        check(await call_analytics(stack, stream_id, revision), expected_from_grid(final[stream_id]))
    await settled_totals(stack, org, expected_totals([expected_from_grid(t) for t in final.values()]))
    assert stack.restarts("analytics") >= 1


async def test_stereo_call_through_the_pipeline(stack: Stack, speech: Path, receiver: Receiver) -> None:  # noqa: F811
    org = await new_org(stack, "analytics call center")
    email = f"an.{uuid.uuid4().hex[:6]}@example.com"
    status, user, _ = await call(stack, stack.admin_key, "POST", "/v1/users", json={
        "org_id": org, "email": email, "password": "correct horse 1", "role": "org_admin"})
    assert status == 201, user
    async with Client(stack.url) as anonymous, anonymous.session.post(
            stack.url + "/v1/auth/token", json={"email": email, "password": "correct horse 1"}) as resp:
        token = (await resp.json())["access_token"]
    phrases = {}
    for phrase, kind, speaker in (("horizon seems extremely distant", "watched", "customer"),
                                  ("confused complaint", "watched", "agent"),
                                  ("thank you for calling", "required", None),
                                  ("curtain on the left", "required", "customer")):  # said, by the agent only
        status, body, _ = await call(stack, token, "POST", "/v1/analytics/phrases",
                                     json={"phrase": phrase, "kind": kind, "speaker": speaker})
        assert status == 201, body
        phrases[phrase] = body["id"]
    sub = await subscribe(stack, receiver, token, "/analytics", ["analytics.required_phrase_missing"])

    async with Client(stack.url, token) as client:
        job = await client.submit(speech / "calls" / "stereo_two_party.wav", diarize="channels",
                                  speaker_names="agent,customer")
        final = await client.wait(job["job_id"], timeout=600)
        assert final["status"] == "completed", final
        text = await client.transcript(job["job_id"])
    result = await call_analytics(stack, job["job_id"], 1)
    assert result["org_id"] == org and result["timing"] == "segments"
    by_name = {s["name"]: s for s in result["speakers"]}
    assert set(by_name) == {"agent", "customer"}
    ids = {name: s["id"] for name, s in by_name.items()}

    # exact against the transcript's own segments (what the stage times a channel-per-party call from)
    mine = [(round(s["start"] * 1000), round(s["end"] * 1000), s["speaker_id"]) for s in text["segments"]]
    check(result, expected_from_grid(mine))

    # against each channel's speech from its energy: Whisper's word times (cross-attention alignment on 20 ms
    # frames) put an utterance's edges up to ~0.3 s from where its energy rises and falls
    energy = expected_from_grid(channel_turns(speech / "calls" / "stereo_two_party.wav",
                                              (ids["agent"], ids["customer"])))
    for name in ("agent", "customer"):
        assert by_name[name]["talk_time"] == pytest.approx(energy.talk[ids[name]] / 1000, abs=0.5)
        assert by_name[name]["turns"] == energy.turns[ids[name]] == 1
    assert [(i["by"], i["of"]) for i in result["interruptions"]] == [(ids["customer"], ids["agent"])]
    assert result["interruptions"][0]["at"] == pytest.approx(energy.interruptions[0][0] / 1000, abs=0.3)
    assert result["overlap_time"] == pytest.approx(energy.overlap / 1000, abs=0.5)
    assert result["silence_total"] == energy.silence == 0

    # phrase hits where the words were said, by the speaker named
    words = [(w["word"].strip(" .,").lower(), w["start"], w["end"], seg["speaker_id"])
             for seg in text["segments"] for w in seg["words"]]

    def said(first: str, last: str) -> tuple[float, float]:
        start = next(w[1] for w in words if w[0] == first)
        end = next(w[2] for w in words if w[0] == last)
        return start, end

    hits = {h["phrase_id"]: h for h in result["phrase_hits"]}
    assert set(hits) == {phrases["horizon seems extremely distant"], phrases["confused complaint"]}
    horizon, complaint = hits[phrases["horizon seems extremely distant"]], hits[phrases["confused complaint"]]
    assert (horizon["start"], horizon["end"]) == said("horizon", "distant")
    assert horizon["speaker"] == ids["customer"] and horizon["kind"] == "watched"
    assert (complaint["start"], complaint["end"]) == said("confused", "complaint")
    assert complaint["speaker"] == ids["agent"]
    missing = {m["phrase_id"] for m in result["required_missing"]}
    assert missing == {phrases["thank you for calling"], phrases["curtain on the left"]}

    # the webhook: once, naming the phrases missing
    async def delivered() -> list[Any]:
        return receiver.got("/analytics", "analytics.required_phrase_missing", job["job_id"])
    got = await wait_for(delivered, 60, "the required-phrase webhook")
    assert {p["phrase_id"] for p in got[0].payload["data"]["missing_phrases"]} == missing
    await asyncio.sleep(2)
    assert len({r.headers["X-Streamscribe-Delivery"] for r in receiver.got("/analytics")}) == 1
    assert sub["events"] == ["analytics.required_phrase_missing"]

    # the organization's aggregates per named speaker
    agent = (await aggregates(stack, org, "hour", "agent"))["totals"]
    assert agent["calls"] == 1
    assert agent["mean_talk_share"] == pytest.approx(by_name["agent"]["talk_share"], abs=1e-3)
    whole = (await aggregates(stack, org, "day"))["totals"]
    assert whole["calls"] == 1 and whole["required_missing_calls"] == 1
    assert whole["phrase_hits"] == {phrases["horizon seems extremely distant"]: 1,
                                    phrases["confused complaint"]: 1}


def _read_all(settings: Settings, topic: str, serde: AvroSerde, timeout: float = 30) -> list[dict[str, Any]]:
    """Every event of ``topic`` from the beginning to its current end."""
    consumer = reader_consumer(settings.kafka, f"test-read-{uuid.uuid4().hex[:8]}")
    try:
        full = settings.kafka.topic_prefix + topic
        parts = [TopicPartition(full, p) for p in consumer.list_topics(full, timeout=10).topics[full].partitions]
        ends = end_offsets(consumer, parts, timeout)
        consumer.assign([TopicPartition(full, tp.partition, 0) for tp in parts])
        got: list[dict[str, Any]] = []
        seen = {tp.partition: 0 for tp in parts}
        deadline = time.monotonic() + timeout
        while any(seen[p] < ends.get((full, p), 0) for p in seen) and time.monotonic() < deadline:
            for msg in consumer.consume(500, 0.5):
                if msg.error() is None:
                    seen[msg.partition() or 0] = (msg.offset() or 0) + 1
                    got.append(serde.deserialize(full, msg.value()))
        return got
    finally:
        consumer.close()


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL of its own (the stage reads phrase lists from it), migrated: the Apache Kafka test needs no
    embedded stack."""
    home = tmp_path_factory.mktemp("pg")
    port = free_port(16432)
    postgres.prepare(home / "pgdata")
    server = postgres.start(home / "pgdata", port, home / "postgres.log")
    try:
        postgres.wait_ready_and_create_db(port, 120)
        apply_migrations(postgres.url(port))
        yield postgres.url(port)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(60)


def test_the_stage_on_apache_kafka_over_sasl_ssl_recovers_its_tables(
        database: str, apache_kafka: ApacheKafka, speech: Path, tmp_path: Path) -> None:
    """The same stage on the 3-broker Apache Kafka cluster (SASL_SSL, replication 3, faust's batching on): exact
    metrics, and after a kill -9 and a restart its tables come back from their changelogs with faust's
    recovery: the aggregates count every call once."""
    env = {"STREAMSCRIBE_HOME": str(tmp_path), "STREAMSCRIBE_DATABASE_URL": database, **apache_kafka.sasl_env(),
           "STREAMSCRIBE_KAFKA__TOPIC_PREFIX": f"an{uuid.uuid4().hex[:6]}.", "STREAMSCRIBE_KAFKA__PARTITIONS": "2",
           "STREAMSCRIBE_KAFKA__REPLICATION_FACTOR": "3", "STREAMSCRIBE_KAFKA__FAUST_PRODUCER_MAX_BATCH_SIZE": "16384"}
    full_env = {**os.environ, **env}
    provision = subprocess.run([sys.executable, "-m", "streamscribe.cli", "topics", "create", "--timeout", "60"],
                               env=full_env, capture_output=True, text=True, timeout=180)
    assert provision.returncode == 0, provision.stderr[-3000:]
    assert json.loads(provision.stdout.strip().splitlines()[-1])["configs_checked"], provision.stdout
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        settings = Settings()
    finally:
        for k, v in old.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    serde = AvroSerde(make_registry("", settings.schema_registry_file), settings.kafka.topic_prefix)
    kafka = Kafka(publisher_producer(settings.kafka, "test-analytics-apache"), serde, settings.kafka.topic_prefix)
    log = open(tmp_path / "analytics.log", "ab")  # noqa: SIM115 - the worker's log, closed below

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "streamscribe.cli", "worker", "analytics"], env=full_env,
                                stdout=log, stderr=subprocess.STDOUT)

    def logs() -> str:
        return (tmp_path / "analytics.log").read_text(errors="replace")[-4000:]

    reference = rttm(speech)
    org = f"org-apache-{uuid.uuid4().hex[:6]}"
    streams = {f"an-apache-{rec}-{uuid.uuid4().hex[:6]}": rec for rec in RECORDINGS[:4]}
    worker = start()
    try:
        first = list(streams)
        for stream_id in first[:2]:
            publish_call(kafka, stream_id, org, reference[streams[stream_id]])

        def calls() -> dict[str, dict[str, Any]]:
            return {c["stream_id"]: c for c in _read_all(settings, ANALYTICS_CALLS, serde) if c["org_id"] == org}

        deadline = time.monotonic() + 240
        while len(calls()) < 2:
            assert time.monotonic() < deadline and worker.poll() is None, logs()
            time.sleep(1)
        worker.kill()  # kill -9: faust committed what it committed, the changelogs hold what they hold
        worker.wait(30)
        for stream_id in first[2:]:
            publish_call(kafka, stream_id, org, reference[streams[stream_id]])
        worker = start()
        deadline = time.monotonic() + 240
        while len(calls()) < len(streams):
            assert time.monotonic() < deadline and worker.poll() is None, logs()
            time.sleep(1)
        for stream_id, result in calls().items():
            check(result, expected_from_grid(reference[streams[stream_id]]))
        want = expected_totals([expected_from_grid(reference[rec]) for rec in streams.values()])

        def day_totals() -> dict[str, Any]:
            latest: dict[tuple[Any, ...], dict[str, Any]] = {}
            for w in _read_all(settings, ANALYTICS_WINDOWS, serde):
                key = (w["org_id"], w["speaker"], w["granularity"], w["window_start"])
                if w["org_id"] == org and w["speaker"] == "" and w["granularity"] == "DAY" and (
                        key not in latest or w["version"] >= latest[key]["version"]):
                    latest[key] = w
            ws = list(latest.values())
            return {"calls": sum(w["calls"] for w in ws), "audio_minutes": ms_to_min(sum(w["audio_ms"] for w in ws)),
                    "talk_minutes": ms_to_min(sum(w["talk_ms"] for w in ws)),
                    "interruptions": sum(w["interruptions"] for w in ws),
                    "overlap_seconds": round(sum(w["overlap_ms"] for w in ws) / 1000, 3),
                    "silence_seconds": round(sum(w["silence_ms"] for w in ws) / 1000, 3)}

        deadline = time.monotonic() + 60
        while day_totals() != want:
            assert time.monotonic() < deadline, (day_totals(), want, logs())
            time.sleep(1)
        # two starts, each ready once its tables were recovered from their changelogs
        assert (tmp_path / "analytics.log").read_text(errors="replace").count("tables recovered; stage ready") == 2
    finally:
        worker.kill()
        worker.wait(30)
        log.close()
        assert kafka.producer.flush(30) == 0
