"""Supervision of the embedded stack's infrastructure (``streamscribe.stack.services``) on real processes: a
killed service is started again with backoff, after the services it needs, and its restarts are counted; the
broker's retention applies to the catalogue's finite, non-compacted topics only."""

from __future__ import annotations

import os
import signal
import subprocess
import time

from foundation.settings import Settings
from streamscribe.stack.retention import retention_by_topic, trimmed_topics
from streamscribe.stack.services import Service, tend


def sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", "60"], start_new_session=True)


def service(name: str, needs: tuple[str, ...] = ()) -> Service:
    return Service(name, sleeper, lambda timeout: True, needs=needs, ready_timeout=5)


def tend_until(services: dict[str, Service], done: object, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not done():  # type: ignore[operator]
        assert time.monotonic() < deadline, {n: s.state() for n, s in services.items()}
        tend(services, time.monotonic())
        time.sleep(0.05)


def test_a_killed_service_is_restarted_with_backoff_after_what_it_needs() -> None:
    store, broker = service("objectstore"), service("broker", needs=("objectstore",))
    services = {"objectstore": store, "broker": broker}
    for s in services.values():
        s.start()
    try:
        first = broker.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        assert store.pid is not None
        os.kill(store.pid, signal.SIGKILL)
        for s in services.values():
            assert s.proc is not None
            s.proc.wait(5)
        killed = time.monotonic()
        tend_until(services, lambda: broker.running() and store.running())
        assert time.monotonic() - killed >= 0.5  # the first backoff
        assert broker.pid != first and broker.restarts == 1 and store.restarts == 1
        assert broker.started_at >= store.started_at  # the broker waited for its object storage
        assert broker.backoff == 1.0  # a second crash soon after waits longer
        assert broker.state() == {"pid": broker.pid, "restarts": 1}
    finally:
        for s in services.values():
            s.kill()


def test_a_service_that_never_gets_ready_is_retried() -> None:
    attempts: list[float] = []

    def ready(timeout: float) -> bool:
        attempts.append(time.monotonic())
        return len(attempts) >= 3

    flaky = Service("postgres", sleeper, ready, ready_timeout=1)
    services = {"postgres": flaky}
    try:
        tend_until(services, lambda: flaky.running() and len(attempts) >= 3, timeout=15)
        assert flaky.restarts == 3 and flaky.running()  # every attempt counts
    finally:
        flaky.kill()


def test_retention_covers_finite_topics_and_never_compacted_ones() -> None:
    retention = retention_by_topic(Settings())
    assert retention["audio.chunks"] == 7 * 24 * 3600 * 1000
    assert retention["ingest.requests"] == 4 * 7 * 24 * 3600 * 1000
    assert "transcripts" not in retention  # retention.ms -1: kept forever
    assert "audio.chunks.dlq" not in retention
    assert "speakers.profiles" not in retention  # compacted
    assert not [t for t in retention if t.endswith(".state")]  # state changelogs are compacted


def test_the_audio_lanes_are_trimmed_only_after_every_stage_that_reads_them() -> None:
    """Recognition and diarization both read the speech lanes: a record one of them committed past stays until the
    other has read it too, even if that one's worker has not committed anything yet (still loading its models)."""
    settings = Settings.model_validate({"kafka": {"topic_prefix": "acme."}})
    readers = trimmed_topics(settings)
    assert readers["acme.audio.speech"] == {"acme.streamscribe-asr", "acme.streamscribe-diarization"}
    assert readers["acme.audio.speech.high"] == readers["acme.audio.speech.low"] == readers["acme.audio.speech"]
    assert readers["acme.audio.chunks"] == {"acme.streamscribe-vad"}
    lanes = ("", ".high", ".low")
    assert set(readers) == {f"acme.audio.{kind}{lane}" for kind in ("chunks", "speech") for lane in lanes}
