"""Publishing events from asyncio code: confluent-kafka's producer with delivery reports as futures."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message

from foundation.events import Event
from foundation.settings import KafkaSettings
from streams.kafka.clients import publisher_producer
from streams.kafka.schema_registry import make_registry
from streams.kafka.serde import AvroSerde


class Publisher:
    def __init__(self, kafka: KafkaSettings, registry_url: str, registry_file: Any, client_id: str) -> None:
        self.prefix = kafka.topic_prefix
        self.serde = AvroSerde(make_registry(registry_url, registry_file), self.prefix)
        self.producer = publisher_producer(kafka, client_id)
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, daemon=True, name="producer-poll")
        self._poller.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.producer.poll(0.1)

    async def publish(self, topic: str, event: Event) -> None:
        """Produce one event and wait until the broker has it."""
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

    def close(self) -> None:
        self._stop.set()
        self._poller.join(timeout=2)
        self.producer.flush(10)
