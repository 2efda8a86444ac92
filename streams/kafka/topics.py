"""The topic catalogue: every topic the pipeline uses, its contract, partitions and configuration.

Audio flows  ingest.requests -> audio.chunks -> audio.speech -> asr.segments -> transcripts, with
audio.speech -> speaker.turns (diarization) joined into the transcripts by post-processing. Speech runs in
three priority lanes, and so does raw audio (``audio.chunks.high``, ``audio.chunks``, ``audio.chunks.low``;
``streams.kafka.lanes``), so that live calls and urgent jobs pass a backlog of batch work at every stage after
decoding;
every stage reports on jobs.events, and each consumed topic has a ``.dlq`` sibling for poison events.
Transcripts feed the analytics stage: analytics.calls per call, repartitioned by organization into
analytics.calls.by-org for the live aggregates it publishes on analytics.windows.
Topics are created explicitly at start (``streams.kafka.admin.ensure_topics``); nothing relies on auto-creation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from foundation.settings import KafkaSettings

WEEK_MS = 7 * 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    schema: str | None  # schemas/avro/<schema>.avsc, None for opaque state changelogs
    doc: str
    config: dict[str, str] = field(default_factory=dict)
    has_dlq: bool = False


INGEST_REQUESTS = "ingest.requests"
AUDIO_CHUNKS = "audio.chunks"  # the normal lane
AUDIO_CHUNKS_HIGH = "audio.chunks.high"
AUDIO_CHUNKS_LOW = "audio.chunks.low"
CHUNK_LANES = (AUDIO_CHUNKS_HIGH, AUDIO_CHUNKS, AUDIO_CHUNKS_LOW)  # highest priority first
AUDIO_SPEECH = "audio.speech"  # the normal lane
AUDIO_SPEECH_HIGH = "audio.speech.high"
AUDIO_SPEECH_LOW = "audio.speech.low"
SPEECH_LANES = (AUDIO_SPEECH_HIGH, AUDIO_SPEECH, AUDIO_SPEECH_LOW)  # highest priority first
ASR_SEGMENTS = "asr.segments"
TRANSCRIPTS = "transcripts"
JOBS_EVENTS = "jobs.events"
SPEAKER_TURNS = "speaker.turns"
SPEAKER_ENROLLMENTS = "speakers.enrollments"
SPEAKER_PROFILES = "speakers.profiles"
ANALYTICS_CALLS = "analytics.calls"
ANALYTICS_CALLS_BY_ORG = "analytics.calls.by-org"
ANALYTICS_WINDOWS = "analytics.windows"

CATALOGUE: tuple[TopicSpec, ...] = (
    TopicSpec(INGEST_REQUESTS, "ingest_request", "stored recordings to decode (claim checks)",
              {"retention.ms": str(4 * WEEK_MS)}, has_dlq=True),
    TopicSpec(AUDIO_CHUNKS_HIGH, "audio_chunk", "inline PCM of high-priority streams (live calls)",
              {"retention.ms": str(WEEK_MS)}, has_dlq=True),
    TopicSpec(AUDIO_CHUNKS, "audio_chunk", "inline PCM, <= 1 s per event, from every source (normal priority)",
              {"retention.ms": str(WEEK_MS)}, has_dlq=True),
    TopicSpec(AUDIO_CHUNKS_LOW, "audio_chunk", "inline PCM of low-priority streams (replays, bulk)",
              {"retention.ms": str(WEEK_MS)}, has_dlq=True),
    TopicSpec(AUDIO_SPEECH_HIGH, "speech_segment", "speech segments of high-priority streams (live calls)",
              {"retention.ms": str(WEEK_MS)}, has_dlq=True),
    TopicSpec(AUDIO_SPEECH, "speech_segment", "speech segments found by VAD, 16 kHz mono PCM (normal priority)",
              {"retention.ms": str(WEEK_MS)}, has_dlq=True),
    TopicSpec(AUDIO_SPEECH_LOW, "speech_segment", "speech segments of low-priority streams (replays, bulk)",
              {"retention.ms": str(WEEK_MS)}, has_dlq=True),
    TopicSpec(ASR_SEGMENTS, "asr_segment", "recognized text with word timings, partial and final",
              {"retention.ms": str(4 * WEEK_MS)}, has_dlq=True),
    TopicSpec(SPEAKER_TURNS, "speaker_turns", "who spoke when, per stream, from diarization",
              {"retention.ms": str(4 * WEEK_MS)}, has_dlq=True),
    TopicSpec(SPEAKER_ENROLLMENTS, "speaker_enrollment", "recordings to turn into voice profiles",
              {"retention.ms": str(4 * WEEK_MS)}, has_dlq=True),
    TopicSpec(SPEAKER_PROFILES, "speaker_profile", "computed voice profiles (embeddings)",
              {"cleanup.policy": "compact"}, has_dlq=True),
    TopicSpec(TRANSCRIPTS, "transcript_event", "finished transcript segments and completions",
              {"retention.ms": "-1"}, has_dlq=True),
    TopicSpec(JOBS_EVENTS, "job_event", "progress and failure reports from every stage",
              {"retention.ms": str(4 * WEEK_MS)}, has_dlq=True),
    TopicSpec(ANALYTICS_CALLS, "analytics_call", "conversation analytics of each call revision (key stream id)",
              {"retention.ms": "-1"}, has_dlq=True),
    TopicSpec(ANALYTICS_CALLS_BY_ORG, "analytics_call", "the same, keyed by organization: the analytics stage's "
              "repartition feeding its aggregates", {"retention.ms": str(4 * WEEK_MS)}, has_dlq=True),
    TopicSpec(ANALYTICS_WINDOWS, "analytics_window", "live aggregates: each hourly and daily window's latest totals "
              "(key organization/speaker/granularity/start)", {"cleanup.policy": "compact"}, has_dlq=True),
)

DLQ_SUFFIX = ".dlq"
STATE_SUFFIX = ".state"
GROUP_PREFIX = "streamscribe-"


def dlq_name(topic: str) -> str:
    return topic + DLQ_SUFFIX


def stage_group(stage: str) -> str:
    """The consumer group of the stage named ``stage`` (``vad`` -> ``streamscribe-vad``), before the deployment's
    topic prefix. The one place a stage's name becomes its group; the group names its state changelog
    (``state_topic``), and its job events, dead letters and metrics carry it as the stage."""
    return GROUP_PREFIX + stage


def state_topic(group: str) -> str:
    """Changelog of a consumer group's per-stream state, partitioned like the group's input. A faust-hosted
    stage has one per table, named for ``<group>.<table>``."""
    return group + STATE_SUFFIX


def schema_of(topic: str) -> str:
    base = topic.removesuffix(DLQ_SUFFIX)
    if topic.endswith(DLQ_SUFFIX):
        return "dead_letter"
    for spec in CATALOGUE:
        if spec.name == base and spec.schema:
            return spec.schema
    raise KeyError(f"no contract for topic {topic!r}")


def all_topics(kafka: KafkaSettings, state_groups: tuple[str, ...]) -> list[tuple[str, dict[str, str]]]:
    """(full name, config) for every topic the platform needs, DLQs and state changelogs included
    (``state_groups``: what owns a changelog, ``state_topic`` of each)."""
    big = {"max.message.bytes": str(kafka.max_message_bytes)}
    out: list[tuple[str, dict[str, str]]] = []
    for spec in CATALOGUE:
        out.append((kafka.topic_prefix + spec.name, {**spec.config, **big}))
        if spec.has_dlq:
            out.append((kafka.topic_prefix + dlq_name(spec.name), {"retention.ms": "-1", **big}))
    for group in state_groups:
        out.append((kafka.topic_prefix + state_topic(group), {"cleanup.policy": "compact", **big}))
    return out
