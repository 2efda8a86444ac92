"""Observability on the real stack: health, detailed health and readiness (answered within their timeout even
with PostgreSQL frozen); Prometheus metrics of the gateway and of every worker, moved by a real transcription and
by a poison event; JSON logs that name the job, the stream and the organization."""

from __future__ import annotations

import json
import signal
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from streams.kafka.clients import publisher_producer
from streams.kafka.topics import AUDIO_SPEECH
from streams.stages.registry import names
from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration

WORKERS = names()  # every stage of the registry


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=15) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [(s.name, s.labels, s.value) for family in text_string_to_metric_families(text) for s in family.samples]


def _value(samples: list[tuple[str, dict[str, str], float]], name: str, **labels: str) -> float:
    """Sum of the samples named ``name`` whose labels include ``labels``."""
    return sum(v for n, lab, v in samples if n == name and all(lab.get(k) == x for k, x in labels.items()))


def _worker_metrics(stack: Stack, worker: str) -> list[tuple[str, dict[str, str], float]]:
    port = stack.info["children"][worker]["metrics_port"]
    status, text = _get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200, (worker, status, text[:300])
    return _samples(text)


def test_health_ready_and_detailed(stack: Stack) -> None:
    status, body = _get(stack.url + "/health")  # liveness: public, no dependency checked
    assert status == 200 and json.loads(body)["status"] == "ok"

    status, body = _get(stack.url + "/ready")
    ready = json.loads(body)
    assert status == 200 and ready["status"] == "ready", ready
    assert set(ready["components"]) == {"database", "kafka"}

    status, body = _get(stack.url + "/health/detailed")
    detailed = json.loads(body)
    assert status == 200 and detailed["status"] == "ok", detailed
    assert {f"worker:{w}" for w in WORKERS} | {"database", "kafka"} == set(detailed["components"])
    assert all(c["status"] == "ok" for c in detailed["components"].values()), detailed
    assert detailed["components"]["kafka"]["brokers"] >= 1


async def test_metrics_follow_a_job_and_logs_carry_its_ids(stack: Stack, speech: Path) -> None:
    before_asr = _worker_metrics(stack, "asr")
    job, transcript = await stack.transcribe(speech / "read" / "LJ001-0002.wav")
    assert job["status"] == "completed", job
    duration = transcript["duration"]
    _get(f"{stack.url}/v1/jobs/{job['job_id']}", stack.auth)

    # the gateway: request counts and latency per route template, not per concrete path
    status, text = _get(stack.url + "/metrics")  # public, for the scraper
    assert status == 200
    gateway = _samples(text)
    assert _value(gateway, "streamscribe_http_requests_total", method="POST", route="/v1/jobs", status="202") >= 1
    assert _value(gateway, "streamscribe_http_request_seconds_count", method="GET", route="/v1/jobs/{job_id}") >= 1
    assert not [lab for n, lab, _ in gateway if n.startswith("streamscribe_http") and job["job_id"] in
                lab.get("route", "")]
    deadline = time.monotonic() + 30  # the jobs gauge is refreshed every 15 s
    while _value(gateway, "streamscribe_jobs", status="completed") < 1:
        assert time.monotonic() < deadline, "streamscribe_jobs{status=completed} never counted the job"
        time.sleep(1)
        gateway = _samples(_get(stack.url + "/metrics")[1])

    # every worker: events handled, per-stage latency; asr and vad: audio seconds; asr: real-time factor
    asr = _worker_metrics(stack, "asr")
    heard = (_value(asr, "streamscribe_audio_seconds_total", stage="asr")
             - _value(before_asr, "streamscribe_audio_seconds_total", stage="asr"))
    assert 0.5 * duration <= heard <= duration + 0.5, (heard, duration)  # speech only, never more than the audio
    rtf_count = _value(asr, "streamscribe_asr_real_time_factor_count", kind="final")
    assert rtf_count > _value(before_asr, "streamscribe_asr_real_time_factor_count", kind="final")
    assert 0 < _value(asr, "streamscribe_asr_real_time_factor_sum", kind="final") / rtf_count < 5
    for worker in ("ingest", "vad", "asr", "post", "materializer"):
        samples = _worker_metrics(stack, worker)
        assert _value(samples, "streamscribe_stage_events_total") > 0, worker
        assert _value(samples, "streamscribe_stage_event_age_seconds_count") > 0, worker
        assert _value(samples, "streamscribe_stage_batch_seconds_count") > 0, worker
        lags = [(lab, v) for n, lab, v in samples if n == "streamscribe_consumer_lag"]
        assert lags and all(v >= 0 for _, v in lags), (worker, lags)

    # JSON logs: the gateway's line for the upload names the organization; the ingest worker's names all three
    def lines(name: str) -> list[dict[str, Any]]:
        out = []
        for line in (stack.home / "logs" / f"{name}.log").read_text(errors="replace").splitlines():
            if line.startswith("{") and job["job_id"] in line:
                out.append(json.loads(line))
        return out

    queued = [e for e in lines("gateway") if e.get("event") == "job queued"]
    assert queued and queued[0]["org_id"] == "default" and queued[0]["request_id"], queued
    ingesting = [e for e in lines("ingest") if e.get("event") == "ingesting"]
    assert ingesting, "no log line of the ingest worker names the job"
    assert ingesting[0]["stream_id"] == job["stream_id"] and ingesting[0]["org_id"] == "default", ingesting[0]
    assert ingesting[0]["component"] and ingesting[0]["level"] == "info" and ingesting[0]["timestamp"]


def test_dead_letters_are_counted(stack: Stack) -> None:
    before = _value(_worker_metrics(stack, "asr"), "streamscribe_dead_letters_total", topic=AUDIO_SPEECH)
    producer = publisher_producer(stack.settings().kafka, "test-observability")
    producer.produce(AUDIO_SPEECH, key=f"poison-{uuid.uuid4().hex}".encode(), value=b"not an avro event")
    assert producer.flush(30) == 0
    deadline = time.monotonic() + 60
    while _value(_worker_metrics(stack, "asr"), "streamscribe_dead_letters_total", topic=AUDIO_SPEECH) < before + 1:
        assert time.monotonic() < deadline, "the asr worker never counted the dead letter"
        time.sleep(0.5)


def _postgres_processes(stack: Stack) -> list[psutil.Process]:
    """The stack's PostgreSQL: its postmaster and every backend and helper process under it."""
    postmaster = psutil.Process(int(stack.info["infra"]["postgres"]["pid"]))
    return [postmaster, *postmaster.children(recursive=True)]


def test_health_checks_answer_within_their_timeout_while_postgres_is_frozen(stack: Stack) -> None:
    """With PostgreSQL frozen (SIGSTOP of the postmaster and its backends: connections stay open and nothing
    answers), /ready and /health/detailed still answer within their stated timeout: database down, "no answer
    within 3 s"; Kafka and liveness are unaffected. (They took 20 s before: the ping held a pool connection whose
    cancellation waited on the frozen server.) Runs last in this module: the stack recovers after SIGCONT."""
    status, body = _get(stack.url + "/ready")
    assert status == 200, body
    stated = float(json.loads(body)["timeout_s"])
    frozen = _postgres_processes(stack)
    for proc in frozen:
        proc.send_signal(signal.SIGSTOP)
    try:
        for path in ("/ready", "/health/detailed", "/ready"):  # the second /ready: a check still stuck is reused
            try:
                with urllib.request.urlopen(stack.url + path, timeout=stated + 7) as resp:
                    answered = resp.status, resp.read().decode()
            except urllib.error.HTTPError as exc:
                answered = exc.code, exc.read().decode()
            # a client timeout (TimeoutError) here is the defect: the answer did not come within the timeout
            assert answered[0] == 503, answered
            components = json.loads(answered[1])["components"]
            assert components["database"] == {"status": "down", "error": f"no answer within {stated:g} s"}, path
            assert components["kafka"]["status"] == "ok", components
        assert _get(stack.url + "/health")[0] == 200
    finally:
        for proc in frozen:
            proc.send_signal(signal.SIGCONT)
    deadline = time.monotonic() + 120
    while _get(stack.url + "/ready")[0] != 200:
        assert time.monotonic() < deadline, "the gateway did not become ready again after PostgreSQL resumed"
        time.sleep(1)
