"""The embedded broker's storage engines compared: Tansu with ``memory://`` and with ``s3://`` on SeaweedFS.

    .venv/bin/python bench/broker_storage.py [--engines memory s3] [--records 2000] [--hour 3600] [--go-mem-mb 0]

For each engine, a fresh broker (and, for s3, a fresh ``weed mini``) started the way ``streamscribe up``
starts them, then:
- produce throughput: ``--records`` records of 32 KB over 4 partitions, idempotent, acks=all;
- one-hop latency: 200 small records, one every 20 ms, from a producer to a subscribed consumer
  (fetch.wait.max.ms = the embedded default), send to receive, p50/p95/max;
- an hour of audio: ``--hour`` chunk events of 32 KB (one second of 16 kHz stereo PCM each) produced one by
  one, as ingest does, with a consumer group reading and committing behind them; the broker's RSS (and the
  object store's) sampled every 300 events, and the CPU seconds each used;
- idle: the CPU the broker and object store use while 8 consumer groups poll an empty topic for 30 s.
Prints one JSON object per engine. The machine may be shared: figures are indicative.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
from confluent_kafka import Consumer
from confluent_kafka.admin import NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from foundation.settings import KafkaSettings
from streams.kafka.clients import admin_client, stage_consumer, stage_producer
from streamscribe.stack import broker, seaweed
from streamscribe.stack.ports import free_port, wait_for_port

CHUNK = 32 * 1024


def _start(engine: str, home: Path, go_mem_mb: int) -> tuple[list[subprocess.Popen[bytes]], KafkaSettings]:
    procs = []
    storage, env = broker.MEMORY, {}
    if engine == "s3":
        store = seaweed.Seaweed(home / "seaweed", "bench", os.urandom(16).hex(), memory_limit_mb=go_mem_mb)
        procs.append(store.start(home / "weed.log"))
        assert store.wait_ready(90), "weed mini did not start"
        storage, env = broker.s3_url(seaweed.BUCKET), store.broker_env()
    port = free_port()
    procs.insert(0, broker.start(port, home / "broker.log", storage, env))
    assert wait_for_port(port, 30), "the broker did not start"
    return procs, KafkaSettings(bootstrap_servers=f"127.0.0.1:{port}")


def _topic(kafka: KafkaSettings, name: str, partitions: int) -> None:
    admin = admin_client(kafka)
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(30)


def throughput(kafka: KafkaSettings, records: int) -> dict[str, float]:
    _topic(kafka, "bench.throughput", 4)
    producer = stage_producer(kafka, "bench")
    payload = os.urandom(CHUNK)
    started = time.perf_counter()
    for i in range(records):
        while True:
            try:
                producer.produce("bench.throughput", key=f"s{i % 16}".encode(), value=payload)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    assert producer.flush(120) == 0
    seconds = time.perf_counter() - started
    return {"records": records, "seconds": round(seconds, 2), "mb_per_s": round(records * CHUNK / seconds / 1e6, 1),
            "records_per_s": round(records / seconds)}


def _joined(consumer: Consumer, topic: str) -> Consumer:
    consumer.subscribe([topic])
    deadline = time.monotonic() + 30
    while not consumer.assignment() and time.monotonic() < deadline:
        consumer.poll(0.2)
    return consumer


def latency(kafka: KafkaSettings, count: int = 200) -> dict[str, float]:
    _topic(kafka, "bench.latency", 1)
    consumer = _joined(stage_consumer(kafka, "bench-latency", "bench"), "bench.latency")
    producer = stage_producer(kafka, "bench")
    received: list[float] = []
    for _ in range(count):
        producer.produce("bench.latency", value=str(time.time()).encode())
        producer.poll(0)
        end = time.monotonic() + 0.02
        while time.monotonic() < end:
            msg = consumer.poll(max(0.0, end - time.monotonic()))
            if msg is not None and not msg.error():
                received.append(time.time() - float(msg.value() or b"0"))
    producer.flush(10)
    end = time.monotonic() + 5
    while len(received) < count and time.monotonic() < end:
        msg = consumer.poll(0.1)
        if msg is not None and not msg.error():
            received.append(time.time() - float(msg.value() or b"0"))
    consumer.close()
    ms = sorted(1000 * r for r in received)
    return {"received": len(ms), "p50_ms": round(ms[len(ms) // 2], 1), "p95_ms": round(ms[int(len(ms) * 0.95)], 1),
            "max_ms": round(ms[-1], 1)}


def hour_of_audio(kafka: KafkaSettings, procs: list[subprocess.Popen[bytes]], events: int) -> dict[str, Any]:
    _topic(kafka, "bench.chunks", 4)
    watched = [psutil.Process(p.pid) for p in procs]
    cpu0 = [sum(w.cpu_times()[:2]) for w in watched]
    producer = stage_producer(kafka, "bench-ingest")
    consumer = _joined(stage_consumer(kafka, "bench-vad", "bench"), "bench.chunks")
    payload = os.urandom(CHUNK)
    samples: list[dict[str, int]] = []
    consumed = 0
    started = time.perf_counter()
    for i in range(events):
        producer.produce("bench.chunks", key=f"stream-{i // 600}".encode(), value=payload)
        producer.flush(30)  # one at a time, as ingest drains after each chunk
        msg = consumer.poll(0)
        while msg is not None:
            if not msg.error():
                consumed += 1
                consumer.commit(message=msg, asynchronous=True)
            msg = consumer.poll(0)
        if i % 300 == 0 or i == events - 1:
            samples.append({"events": i + 1, **{n: w.memory_info().rss // 2**20 for n, w in
                                                 zip(("broker_mb", "objectstore_mb"), watched, strict=False)}})
    seconds = time.perf_counter() - started
    consumer.close()
    cpu = [round(sum(w.cpu_times()[:2]) - c, 1) for w, c in zip(watched, cpu0, strict=True)]
    return {"events": events, "written_mb": round(events * CHUNK / 2**20), "seconds": round(seconds, 1),
            "consumed_while_producing": consumed, "cpu_s": dict(zip(("broker", "objectstore"), cpu, strict=False)),
            "rss_samples": samples}


def idle(kafka: KafkaSettings, procs: list[subprocess.Popen[bytes]], seconds: float = 30, groups: int = 8
         ) -> dict[str, float]:
    """CPU the broker (and its object store) burn while ``groups`` consumers poll an empty 4-partition topic, as
    the stack's workers do between jobs."""
    _topic(kafka, "bench.idle", 4)
    consumers = [stage_consumer(kafka, f"bench-idle-{i}", "bench") for i in range(groups)]
    for consumer in consumers:
        consumer.subscribe(["bench.idle"])
    for consumer in consumers:  # joined
        consumer.poll(5)
    watched = [psutil.Process(p.pid) for p in procs]
    cpu0 = [sum(w.cpu_times()[:2]) for w in watched]
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for consumer in consumers:
            consumer.poll(0.01)
    cpu = [sum(w.cpu_times()[:2]) - c for w, c in zip(watched, cpu0, strict=True)]
    for consumer in consumers:
        consumer.close()
    return {f"{n}_cpu_percent": round(100 * c / seconds, 1) for n, c in zip(("broker", "objectstore"), cpu,
                                                                             strict=False)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engines", nargs="+", default=["memory", "s3"], choices=["memory", "s3"])
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--hour", type=int, default=3600, help="chunk events (one per second of audio)")
    parser.add_argument("--go-mem-mb", type=int, default=0, help="the object store's GOMEMLIMIT (0: none)")
    args = parser.parse_args()
    for engine in args.engines:
        with tempfile.TemporaryDirectory(prefix=f"bench-{engine}-") as tmp:
            procs, kafka = _start(engine, Path(tmp), args.go_mem_mb)
            try:
                result = {"engine": engine, "throughput": throughput(kafka, args.records), "latency": latency(kafka),
                          "idle": idle(kafka, procs),
                          "hour_of_audio": hour_of_audio(kafka, procs, args.hour)}
            finally:
                for proc in procs:
                    proc.kill()
                    proc.wait()
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
