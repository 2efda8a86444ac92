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

The audio lanes (``audio.chunks*``, ``audio.speech*``) are also trimmed of what every consumer group has read: a
fetch lists *all* of a partition's batch objects (about 0.18 s of the object store's CPU per 1000 objects), so
a week of audio events makes every hop of the pipeline slower as history builds up, and 16 live calls filled
the partitions faster than the stages could list them. ``trim_consumed`` deletes, every few seconds while
there is something to delete, the leading batches that lie wholly below the lowest offset any group has committed
on the partition (Tansu keeps committed offsets as objects too). A group that is behind holds the trim back, and so
does a stage that reads the topic but has not committed on the partition yet (a worker still loading its models
after a restart, or after the broker lost its history: what it has not read yet must still be there when it comes);
a partition no group has committed on is left alone. These topics carry audio on its way through the stages (the
recording itself is stored apart), so this is how Kafka Streams purges its repartition topics; any other consumer
group created later reads them from what is left, as it would after retention.

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
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from foundation.logs import get_logger
from foundation.settings import Settings
from streams.kafka.topics import CHUNK_LANES, SPEECH_LANES, all_topics
from streams.stages.registry import stages, state_groups
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


Readers = Mapping[str, Collection[str]]  # topic -> the consumer groups that must have read a record before it goes


def trimmed_topics(settings: Settings) -> dict[str, frozenset[str]]:
    """The topics trimmed of what every group has consumed (the audio lanes), each with the consumer groups of the
    stages that read it (full names, with the deployment's prefix)."""
    prefix = settings.kafka.topic_prefix
    return {prefix + topic: frozenset(prefix + spec.group for spec in stages() if topic in spec.inputs)
            for topic in (*CHUNK_LANES, *SPEECH_LANES)}


def committed_offsets(client: Any, readers: Readers, bucket: str = BUCKET, cluster: str = CLUSTER) -> dict[str, int]:
    """The lowest offset any consumer group has committed on each partition of the topics of ``readers``, keyed by
    its prefix ``clusters/<cluster>/topics/<topic>/partitions/<p>/`` (Tansu writes each group's commit to
    ``clusters/<cluster>/groups/consumers/<group>/offsets/<topic>/partitions/<p>.json``). A partition is left out
    while one of the groups its topic names has not committed on it."""
    root = f"clusters/{cluster}/groups/consumers/"
    lowest: dict[str, int] = {}
    seen: dict[str, set[str]] = {}
    for page in _pages(client, Bucket=bucket, Prefix=root):
        for obj in page.get("Contents", []):
            parts = obj["Key"][len(root):].split("/")
            if len(parts) != 5 or parts[1] != "offsets" or parts[2] not in readers or parts[3] != "partitions":
                continue
            try:
                offset = int(json.loads(client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())["offset"])
            except (ClientError, KeyError, ValueError, TypeError):  # deleted meanwhile, or not an offset commit
                continue
            if offset < 0:
                continue
            prefix = f"clusters/{cluster}/topics/{parts[2]}/partitions/{parts[4].split('.', 1)[0]}/"
            lowest[prefix] = min(lowest.get(prefix, offset), offset)
            seen.setdefault(prefix, set()).add(parts[0])
    return {prefix: offset for prefix, offset in lowest.items()
            if set(readers[prefix.split("/")[3]]) <= seen[prefix]}


def trim_partition(client: Any, bucket: str, partition_prefix: str, committed: int) -> tuple[int, int | None]:
    """Delete the leading batches that end below ``committed`` (a batch ends where the next one begins, so the
    last batch is always kept); (deleted, new low offset or None)."""
    keys: list[str] = []
    for page in _pages(client, Bucket=bucket, Prefix=partition_prefix + "records/"):
        keys += [obj["Key"] for obj in page.get("Contents", [])]  # sorted by base offset: zero-padded
    consumed = [k for k, after in pairwise(keys) if _base_offset(after) <= committed]
    if not consumed:
        return 0, None
    for start in range(0, len(consumed), 1000):
        client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in consumed[start:start + 1000]],
                                                     "Quiet": True})
    return len(consumed), _set_low(client, bucket, partition_prefix + "watermark.json",
                                   _base_offset(keys[len(consumed)]))


def trim_consumed(client: Any, readers: Readers, bucket: str = BUCKET, cluster: str = CLUSTER,
                  done: dict[str, int] | None = None) -> SweepResult:
    """One pass over the topics of ``readers`` (topic -> the groups that must read it): delete what every group
    that committed on a partition has consumed, once each group named has. ``done`` (the committed offsets of the
    last pass, updated here) skips partitions whose offsets have not moved."""
    result = SweepResult()
    for prefix, committed in committed_offsets(client, readers, bucket, cluster).items():
        if done is not None and done.get(prefix) == committed:
            continue
        deleted, low = trim_partition(client, bucket, prefix, committed)
        if done is not None:
            done[prefix] = committed
        if deleted:
            parts = prefix.rstrip("/").split("/")
            name = f"{parts[3]}/{int(parts[5])}"
            result.deleted[name] = deleted
            if low is not None:
                result.low[name] = low
    return result


class Sweeper:
    """Runs ``sweep`` every ``settings.embedded.retention_sweep_interval_s`` in a thread of the supervisor, and
    ``trim_consumed`` on the audio lanes every ``trim_interval_s`` while it finds something to delete (backing
    off to ``retention_sweep_interval_s`` / 5 at most while it does not: an idle stack is left alone)."""

    def __init__(self, settings: Settings, seaweed: Seaweed) -> None:
        self.settings = settings
        self.seaweed = seaweed
        self.interval = settings.embedded.retention_sweep_interval_s
        self.trim_interval = settings.embedded.trim_interval_s
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
        trimmed = trimmed_topics(self.settings)
        done: dict[str, int] = {}
        now = time.monotonic()
        next_sweep = now + self.interval
        trim_wait = self.trim_interval
        next_trim = now + trim_wait if self.trim_interval > 0 else float("inf")
        while not self._stop.wait(max(0.0, min(next_sweep, next_trim) - time.monotonic())):
            now = time.monotonic()
            if now >= next_trim:
                found = self._pass("trim of consumed audio", lambda c: trim_consumed(c, trimmed, done=done))
                # every trim_interval_s while there is something to delete; up to 12x longer while there is not
                trim_wait = self.trim_interval if found else min(trim_wait * 2, max(self.interval / 5,
                                                                                    self.trim_interval))
                next_trim = time.monotonic() + trim_wait
            if now >= next_sweep:
                self._pass("retention sweep", lambda c: sweep(c, retention))
                next_sweep = time.monotonic() + self.interval

    def _pass(self, what: str, run: Callable[[Any], SweepResult]) -> bool:
        """One pass with a fresh client; whether it deleted anything."""
        started = time.monotonic()
        try:
            client = self.seaweed.client()
            try:
                result = run(client)
            finally:
                client.close()
        except (BotoCoreError, ClientError, OSError) as exc:  # the object store may be restarting
            log.warning("broker log pass failed; next time", what=what, error=str(exc))
            return False
        if result.total:
            log.info("broker log pass", what=what, deleted=result.deleted, low=result.low,
                     seconds=round(time.monotonic() - started, 2))
        return bool(result.total)
