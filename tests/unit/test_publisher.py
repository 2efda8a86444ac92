"""The gateway's publisher replaces a producer that failed fatally (every later call would fail: each upload a
500 until the gateway restarts) and produces the event once more; other errors reach the caller."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

import gateway.publisher as publisher_module
from foundation.events import IngestRequest
from foundation.settings import KafkaSettings
from gateway.publisher import Publisher


class Producer:
    """Delivers at once, or raises ``error`` from produce (every time)."""

    def __init__(self, error: KafkaError | None) -> None:
        self.error = error
        self.sent: list[tuple[str, bytes | None]] = []

    def produce(self, topic: str, key: bytes | None = None, value: bytes | None = None,
                on_delivery: Callable[[KafkaError | None, Any], None] | None = None) -> None:
        if self.error is not None:
            raise KafkaException(self.error)
        self.sent.append((topic, key))
        assert on_delivery is not None
        on_delivery(None, None)

    def poll(self, timeout: float = 0) -> int:
        return 0

    def flush(self, timeout: float = 0) -> int:
        return 0


def _publisher(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, producers: list[Producer]) -> Publisher:
    made = iter(producers)
    monkeypatch.setattr(publisher_module, "publisher_producer", lambda _kafka, _client_id: next(made))
    return Publisher(KafkaSettings(), "", tmp_path / "registry.json", "gateway-test")


def _request() -> IngestRequest:
    return IngestRequest(stream_id="s1", job_id="j1", object_key="k", options={})


async def test_a_fatally_failed_producer_is_replaced_and_the_event_produced_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fenced = Producer(KafkaError(KafkaError._FATAL, "fenced by a newer producer id", fatal=True))
    fresh = Producer(None)
    publisher = _publisher(tmp_path, monkeypatch, [fenced, fresh])
    try:
        await publisher.publish("ingest.requests", _request())
        await publisher.publish("ingest.requests", _request())
        assert publisher.producer is fresh
        assert fresh.sent == [("ingest.requests", b"s1")] * 2
    finally:
        publisher.close()


async def test_an_error_that_is_not_fatal_reaches_the_caller_and_keeps_the_producer(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    full = Producer(KafkaError(KafkaError._QUEUE_FULL, "local queue full"))
    publisher = _publisher(tmp_path, monkeypatch, [full, Producer(None)])
    try:
        with pytest.raises(KafkaException):
            await publisher.publish("ingest.requests", _request())
        assert publisher.producer is full
    finally:
        publisher.close()
