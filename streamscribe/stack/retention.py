"""Retention for the embedded broker's log: Tansu keeps every record batch forever, so we delete old ones.

Tansu's ``s3://`` engine writes each produced batch as one object,
``clusters/<cluster>/topics/<topic>/partitions/<p:010>/records/<base offset:020>.batch``, and keeps the
partition's offsets in ``.../watermark.json`` (``{"low", "high", "timestamps"}``). A fetch lists the
partition's batch objects and returns those at or after the fetch offset, so:

- deleting the oldest batches is what Kafka's time-based retention does (whole segments, by their newest
  record): the sweep deletes, per partition, the leading run of batch objects whose ``LastModified`` (when
  the broker wrote them, i.e. their newest record) is older than the topic's ``retention.ms``;
- a consumer whose position (or committed offset) lies below the first remaining batch is served from that
  batch on, as Kafka's ``auto.offset.reset=earliest`` would; ``watermark.json``'s ``low`` is set to the first
  remaining offset (a conditional write, so a concurrent update by the broker wins and the next sweep
  retries), which is what the broker reports as the log start offset.

Limits: topics with ``cleanup.policy=compact`` (state changelogs, voice profiles) are never swept, because
Tansu does not compact and deleting old batches would drop the latest value of quiet keys; they grow with the
number of streams processed (a few kB per stream for VAD, more for diarization), and a worker that takes
over a partition reads its whole changelog. Topics with ``retention.ms`` of -1 (transcripts, dead letters)
are kept forever, as configured.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from foundation.logs import get_logger
from foundation.settings import Settings
from streams.kafka.topics import all_topics
from streams.stages.registry import state_groups
from streamscribe.stack.broker import CLUSTER
from streamscribe.stack.seaweed import BUCKET, Seaweed

log = get_logger(__name__)


def retention_by_topic(settings: Settings) -> dict[str, int]:
    """retention.ms of every catalogued topic that has a finite one and is not compacted."""
    out = {}
    for name, config in all_topics(settings.kafka, state_groups()):
        if config.get("cleanup.policy", "delete") != "delete":
            continue
        ms = int(config.get("retention.ms", "-1"))
        if ms > 0:
            out[name] = ms
    return out


@dataclass
class SweepResult:
    deleted: dict[str, int] = field(default_factory=dict)  # "topic/partition" -> batch objects deleted
    low: dict[str, int] = field(default_factory=dict)  # "topic/partition" -> new log start offset

    @property
    def total(self) -> int:
        return sum(self.deleted.values())


def _pages(client: Any, **kwargs: Any) -> Iterator[dict[str, Any]]:
    yield from client.get_paginator("list_objects_v2").paginate(**kwargs)


def _partitions(client: Any, bucket: str, topic_prefix: str) -> list[str]:
    found = []
    for page in _pages(client, Bucket=bucket, Prefix=topic_prefix, Delimiter="/"):
        found += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
    return found


def _base_offset(key: str) -> int:
    return int(key.rsplit("/", 1)[-1].split(".", 1)[0])


def sweep_partition(client: Any, bucket: str, partition_prefix: str, cutoff: datetime) -> tuple[int, int | None]:
    """Delete the leading run of batches older than ``cutoff``; (deleted, new low offset or None)."""
    expired: list[str] = []
    first_kept: int | None = None
    for page in _pages(client, Bucket=bucket, Prefix=partition_prefix + "records/"):
        for obj in page.get("Contents", []):  # keys sort by offset: zero-padded
            if obj["LastModified"] < cutoff and first_kept is None:
                expired.append(obj["Key"])
            elif first_kept is None:
                first_kept = _base_offset(obj["Key"])
        if first_kept is not None:
            break
    if not expired:
        return 0, None
    for start in range(0, len(expired), 1000):
        client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in expired[start:start + 1000]],
                                                     "Quiet": True})
    low = first_kept if first_kept is not None else None
    return len(expired), _set_low(client, bucket, partition_prefix + "watermark.json", low)


def _set_low(client: Any, bucket: str, key: str, low: int | None) -> int | None:
    """Record the log start offset in watermark.json (only if nobody wrote it meanwhile); with no batch left,
    the log starts at the high watermark."""
    try:
        got = client.get_object(Bucket=bucket, Key=key)
        etag = got["ETag"]
        watermark = json.loads(got["Body"].read())
    except ClientError:
        return None
    if low is None:
        low = watermark.get("high")
    if low is None or watermark.get("low") == low:
        return low
    watermark["low"] = low
    try:
        client.put_object(Bucket=bucket, Key=key, Body=json.dumps(watermark).encode(), IfMatch=etag,
                          ContentType="application/json")
    except ClientError as exc:  # the broker wrote it since we read it: the next sweep sets it
        log.info("watermark changed during the sweep; next time", key=key, error=str(exc))
        return None
    return low


def sweep(client: Any, retention_ms: dict[str, int], now: datetime | None = None, bucket: str = BUCKET,
          cluster: str = CLUSTER) -> SweepResult:
    """One pass over every topic with a retention: delete what is older than it."""
    now = now or datetime.now(UTC)
    result = SweepResult()
    for topic, ms in retention_ms.items():
        cutoff = datetime.fromtimestamp(now.timestamp() - ms / 1000, UTC)
        for prefix in _partitions(client, bucket, f"clusters/{cluster}/topics/{topic}/partitions/"):
            deleted, low = sweep_partition(client, bucket, prefix, cutoff)
            if deleted:
                name = f"{topic}/{int(prefix.rstrip('/').rsplit('/', 1)[-1])}"
                result.deleted[name] = deleted
                if low is not None:
                    result.low[name] = low
    return result


class Sweeper:
    """Runs ``sweep`` every ``settings.embedded.retention_sweep_interval_s`` in a thread of the supervisor."""

    def __init__(self, settings: Settings, seaweed: Seaweed) -> None:
        self.settings = settings
        self.seaweed = seaweed
        self.interval = settings.embedded.retention_sweep_interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="retention", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)

    def _run(self) -> None:
        retention = retention_by_topic(self.settings)
        while not self._stop.wait(self.interval):
            started = time.monotonic()
            try:
                client = self.seaweed.client()
                try:
                    result = sweep(client, retention)
                finally:
                    client.close()
            except (BotoCoreError, ClientError, OSError) as exc:  # the object store may be restarting
                log.warning("broker retention sweep failed; next time", error=str(exc))
                continue
            if result.total:
                log.info("broker retention sweep", deleted=result.deleted, low=result.low,
                         seconds=round(time.monotonic() - started, 2))
