"""Publishing events from asyncio code: confluent-kafka's producer with delivery reports as futures."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message

from foundation.events import Event
from foundation.logs import get_logger
from foundation.settings import KafkaSettings
from streams.kafka.clients import publisher_producer
from streams.kafka.schema_registry import make_registry
from streams.kafka.serde import AvroSerde

log = get_logger(__name__)


class Publisher:
    def __init__(self, kafka: KafkaSettings, registry_url: str, registry_file: Any, client_id: str) -> None:
        self.prefix = kafka.topic_prefix
        self.serde = AvroSerde(make_registry(registry_url, registry_file), self.prefix)
        self.kafka = kafka
        self.client_id = client_id
        self.producer = publisher_producer(kafka, client_id)
        self._replacing = threading.Lock()
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, daemon=True, name="producer-poll")
        self._poller.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.producer.poll(0.1)

    async def publish(self, topic: str, event: Event) -> None:
        """Produce one event and wait until the broker has it. A producer that failed fatally (an idempotent
        producer's sequence lost with a broker, a fenced producer id) fails every later call, so it is replaced
        by a new one and the event is produced once more (its id is deterministic: readers absorb a repeat)."""
        try:
            await self._publish_once(topic, event)
        except KafkaException as exc:
            err = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
            if err is None or not err.fatal():
                raise
            self._replace(self.producer, err)
            await self._publish_once(topic, event)

    async def _publish_once(self, topic: str, event: Event) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def delivered(err: KafkaError | None, _msg: Message) -> None:
            def settle() -> None:
                if done.done():
                    return
                if err is None:
                    done.set_result(None)
                else:
                    done.set_exception(KafkaException(err))

            loop.call_soon_threadsafe(settle)

        full = self.prefix + topic
        payload = self.serde.serialize(full, event)
        key = event.partition_key
        self.producer.produce(full, key=key.encode() if key else None, value=payload, on_delivery=delivered)
        await asyncio.wait_for(done, timeout=30)

    def _replace(self, failed: Any, err: KafkaError) -> None:
        """A new producer in place of ``failed`` (once, however many calls saw it fail)."""
        with self._replacing:
            if self.producer is not failed:
                return
            log.error("the gateway's producer failed fatally; a new one replaces it", error=err.str())
            self.producer = publisher_producer(self.kafka, self.client_id)

    def close(self) -> None:
        self._stop.set()
        self._poller.join(timeout=2)
        self.producer.flush(10)
