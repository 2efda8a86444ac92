"""The embedded broker's log on the stack's own S3 server: what survives a ``kill -9`` of the broker, and what
the retention sweep removes (``streamscribe.stack.broker``, ``.seaweed``, ``.retention``).

A real SeaweedFS ``weed mini`` and a real Tansu broker with ``--storage-engine s3://``, started the way the
supervisor starts them; clients are the project's confluent-kafka clients.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import NewTopic

from foundation.settings import KafkaSettings
from streams.kafka.clients import admin_client, stage_consumer, stage_producer
from streamscribe.stack import broker, seaweed
from streamscribe.stack.ports import free_port, wait_for_port
from streamscribe.stack.retention import sweep, trim_consumed

# Tansu's own log on SeaweedFS: nothing of it exists on Apache Kafka
pytestmark = [pytest.mark.integration, pytest.mark.embedded, pytest.mark.broker("tansu")]
RECORDS = "clusters/{cluster}/topics/{topic}/partitions/{p:010d}/"


@dataclass
class Log:
    home: Path
    store: seaweed.Seaweed
    port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def kafka(self) -> KafkaSettings:
        return KafkaSettings(bootstrap_servers=f"127.0.0.1:{self.port}", broker="tansu")

    def start_broker(self) -> None:
        self.proc = broker.start(self.port, self.home / "broker.log", broker.s3_url(seaweed.BUCKET),
                                 self.store.broker_env())
        assert wait_for_port(self.port, 30), (self.home / "broker.log").read_text()[-2000:]

    def kill_broker(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def objects(self, topic: str, partition: int = 0) -> list[dict[str, Any]]:
        client = self.store.client()
        try:
            prefix = RECORDS.format(cluster=broker.CLUSTER, topic=topic, p=partition) + "records/"
            return list(client.list_objects_v2(Bucket=seaweed.BUCKET, Prefix=prefix).get("Contents", []))
        finally:
            client.close()

    def watermark(self, topic: str, partition: int = 0) -> dict[str, Any]:
        client = self.store.client()
        try:
            key = RECORDS.format(cluster=broker.CLUSTER, topic=topic, p=partition) + "watermark.json"
            data: dict[str, Any] = json.loads(client.get_object(Bucket=seaweed.BUCKET, Key=key)["Body"].read())
            return data
        finally:
            client.close()


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Log]:
    home = tmp_path_factory.mktemp("brokerlog")
    store = seaweed.Seaweed(home / "seaweed", "streamscribe-test", os.urandom(16).hex())
    weed = store.start(home / "weed.log")
    the_log = Log(home, store, free_port())
    try:
        assert store.wait_ready(90), (home / "weed.log").read_text()[-2000:]
        the_log.start_broker()
        yield the_log
    finally:
        for proc in (the_log.proc, weed):
            if proc is not None:
                proc.kill()
                proc.wait()


def create(log: Log, topic: str, partitions: int) -> None:
    admin = admin_client(log.kafka)
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(30)


def produce(log: Log, topic: str, values: range, size: int = 32 * 1024, partitions: int = 1) -> None:
    producer = stage_producer(log.kafka, "test")
    for i in values:
        producer.produce(topic, key=f"k{i % partitions}".encode(), value=str(i).encode().ljust(size, b"."),
                         partition=i % partitions)
    assert producer.flush(30) == 0


def consume(consumer: Consumer, count: int, timeout: float = 30) -> list[tuple[int, int, int]]:
    """(partition, offset, value index) of up to ``count`` records."""
    out: list[tuple[int, int, int]] = []
    deadline = time.monotonic() + timeout
    while len(out) < count and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None or msg.error():
            continue
        value = msg.value()
        assert value is not None
        out.append((msg.partition() or 0, msg.offset() or 0, int(value.split(b".", 1)[0])))
    return out


def group(log: Log, name: str, topic: str) -> Consumer:
    consumer = stage_consumer(log.kafka, name, "test")
    consumer.subscribe([topic])
    return consumer


def test_records_and_committed_offsets_survive_a_broker_kill(log: Log) -> None:
    topic = "survive"
    create(log, topic, 2)
    produce(log, topic, range(400), partitions=2)
    reader = group(log, "g-survive", topic)
    first = consume(reader, 150)
    assert len(first) == 150
    last = {p: max(o for q, o, _ in first if q == p) for p in {q for q, _, _ in first}}
    reader.commit(offsets=[TopicPartition(topic, p, o + 1) for p, o in last.items()], asynchronous=False)
    reader.close()

    log.kill_broker()
    log.start_broker()

    reader = group(log, "g-survive", topic)
    rest = consume(reader, 250) + consume(reader, 1, timeout=3)  # and nothing more
    reader.close()
    assert sorted(v for _, _, v in first + rest) == list(range(400)), "the group resumed where it committed"
    everything = group(log, "g-fresh", topic)
    again = consume(everything, 400)
    everything.close()
    assert sorted(v for _, _, v in again) == list(range(400)), "every record is still in the log"
    produce(log, topic, range(400, 410), partitions=2)  # and the log goes on after the old records
    after = group(log, "g-after", topic)
    assert sorted(v for _, _, v in consume(after, 410)) == list(range(410))
    after.close()


def test_retention_deletes_old_batches_and_the_log_stays_readable(log: Log) -> None:
    """Three batches written seconds apart; a sweep whose cutoff falls between the second and the third deletes
    the first two objects, sets the log start offset, and readers at ``earliest`` or with a committed offset
    below it carry on from the first record kept."""
    topic = "retained"
    create(log, topic, 1)
    produce(log, topic, range(0, 10))
    lagging = group(log, "g-lagging", topic)
    assert len(consume(lagging, 3)) == 3
    lagging.commit(offsets=[TopicPartition(topic, 0, 3)], asynchronous=False)
    lagging.close()
    time.sleep(1.5)
    produce(log, topic, range(10, 20))
    time.sleep(2.5)  # S3 modification times have one-second resolution
    cut = datetime.now(UTC)
    time.sleep(2.5)
    produce(log, topic, range(20, 30))
    batches = log.objects(topic)
    old = [o for o in batches if o["LastModified"] < cut]
    assert len(old) >= 2 and len(batches) > len(old)
    first_kept = int(batches[len(old)]["Key"].rsplit("/", 1)[-1].split(".")[0])

    now = datetime.now(UTC)
    result = sweep(log.store.client(), {topic: int((now - cut).total_seconds() * 1000)}, now=now)

    assert result.deleted == {f"{topic}/0": len(old)}
    assert [o["Key"] for o in log.objects(topic)] == [o["Key"] for o in batches[len(old):]]
    assert log.watermark(topic)["low"] == first_kept == result.low[f"{topic}/0"]
    assert log.watermark(topic)["high"] == 30
    fresh = group(log, "g-fresh-retained", topic)
    assert [v for _, _, v in consume(fresh, 30 - first_kept)] == list(range(first_kept, 30))
    fresh.close()
    lagging = group(log, "g-lagging", topic)  # committed offset 3, below the new log start
    assert [v for _, _, v in consume(lagging, 30 - first_kept)] == list(range(first_kept, 30))
    lagging.close()
    assert sweep(log.store.client(), {topic: int((now - cut).total_seconds() * 1000)}, now=now).total == 0
    produce(log, topic, range(30, 32))
    fresh = group(log, "g-after-sweep", topic)
    assert [v for _, _, v in consume(fresh, 32 - first_kept) + consume(fresh, 1, timeout=3)] == list(
        range(first_kept, 32))
    fresh.close()


def test_consumed_audio_is_trimmed_only_below_what_every_group_committed(log: Log) -> None:
    """Three batches; one group commits past the second, another only into the first: nothing is deleted while
    the slower group holds it; once it commits into the third batch, nothing is deleted either while a group the
    topic names as a reader (a stage whose worker has not started yet) has not committed; without it, the two
    batches below are deleted, the log start moves, and both groups (and a new one) read on from what each
    committed."""
    topic = "audio.chunks.trimmed"
    create(log, topic, 1)
    for values in (range(0, 10), range(10, 20), range(20, 30)):  # one batch object each
        produce(log, topic, values)
    batches = [o["Key"] for o in log.objects(topic)]
    assert len(batches) == 3
    fast, slow = group(log, "g-trim-fast", topic), group(log, "g-trim-slow", topic)
    assert len(consume(fast, 25)) == 25 and len(consume(slow, 5)) == 5
    fast.commit(offsets=[TopicPartition(topic, 0, 25)], asynchronous=False)
    slow.commit(offsets=[TopicPartition(topic, 0, 5)], asynchronous=False)
    fast.close()
    slow.close()
    done: dict[str, int] = {}

    held = trim_consumed(log.store.client(), {topic: ()}, done=done)
    assert held.total == 0 and [o["Key"] for o in log.objects(topic)] == batches, "the slow group holds them"
    assert trim_consumed(log.store.client(), {"audio.chunks.other": ()}).total == 0, "only the topics named"

    slow = group(log, "g-trim-slow", topic)
    assert [v for _, _, v in consume(slow, 17)] == list(range(5, 22))
    slow.commit(offsets=[TopicPartition(topic, 0, 22)], asynchronous=False)
    slow.close()
    late = trim_consumed(log.store.client(), {topic: {"g-trim-fast", "g-trim-slow", "g-trim-not-started"}})
    assert late.total == 0 and [o["Key"] for o in log.objects(topic)] == batches, "a reader yet to commit holds them"
    result = trim_consumed(log.store.client(), {topic: {"g-trim-fast", "g-trim-slow"}}, done=done)

    assert result.deleted == {f"{topic}/0": 2}, "both batches wholly below 22, not the one holding it"
    assert [o["Key"] for o in log.objects(topic)] == batches[2:]
    assert log.watermark(topic)["low"] == 20 == result.low[f"{topic}/0"]
    assert trim_consumed(log.store.client(), {topic: ()}, done=done).total == 0, "nothing moved: nothing to do"
    produce(log, topic, range(30, 35))
    for name, start in (("g-trim-fast", 25), ("g-trim-slow", 22), ("g-trim-new", 20)):
        reader = group(log, name, topic)
        got = consume(reader, 35 - start) + consume(reader, 1, timeout=3)
        reader.close()
        assert [v for _, _, v in got] == list(range(start, 35)), name
