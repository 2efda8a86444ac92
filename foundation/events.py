"""Typed builders of the events on the pipeline's topics: one frozen dataclass per contract in
``schemas/avro/<SCHEMA>.avsc``, with the same fields in the same order (``tests/unit/test_events.py`` fails
when they drift apart).

Whoever publishes an event builds it here, and nowhere by hand: ``ctx.emit(topic, AudioChunk(...))`` in a
stage, ``publisher.publish(topic, IngestRequest(...))`` in the gateway. The serde checks that an event's
``SCHEMA`` is the contract of the topic it is written to. Readers receive the decoded record as a plain
``dict`` (what Avro resolution against the current contract gives).

To add a field: add it to the ``.avsc`` (with a default, so old events stay readable), to the dataclass
below (same name, same place), then to the readers that need it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Literal, TypedDict


def now_ms() -> int:
    """Wall-clock milliseconds, the unit of every ``timestamp-millis`` field."""
    return int(time.time() * 1000)


class Word(TypedDict):
    start: float
    end: float
    word: str
    probability: float


class SpeechPiece(TypedDict):
    start: float
    end: float


class Turn(TypedDict):
    start: float
    end: float
    speaker: str


# Nested records that processors build as plain dicts (see their .avsc for the fields): a speaker
# (id, label, channel, talk_time, identified_as, name, similarity), a transcript segment (id, index, start,
# end, text, speaker, channel, confidence, words with their speaker and overlap, overlap) and a redaction
# (type, start, end); and the parts of a call's analytics (processors.analytics.call: gaps, monologues,
# interruptions, speaker metrics, phrase hits...).
Speaker = dict[str, Any]
TranscriptSegment = dict[str, Any]
Redaction = dict[str, Any]
AnalyticsPart = dict[str, Any]
AudioEncoding = Literal["PCM_S16LE", "MULAW"]
TranscriptKind = Literal["SEGMENT", "COMPLETED", "FAILED"]
AUDIO_ENCODINGS: dict[str, AudioEncoding] = {"pcm_s16le": "PCM_S16LE", "mulaw": "MULAW"}


@dataclass(frozen=True, kw_only=True)
class Event:
    """An event for one topic's contract. ``partition_key`` is its Kafka key (the stream id for stream events,
    so that a stream's events keep their order in one partition)."""

    SCHEMA: ClassVar[str]

    @property
    def partition_key(self) -> str | None:
        return getattr(self, "stream_id", None)

    def to_record(self) -> dict[str, Any]:
        """The Avro record (field name -> value), in the contract's field order."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, kw_only=True)
class IngestRequest(Event):
    """A stored recording to decode (a claim check on ``ingest.requests``)."""

    SCHEMA: ClassVar[str] = "ingest_request"
    stream_id: str
    job_id: str
    revision: int = 1
    object_key: str
    filename: str | None = None
    content_type: str | None = None
    size_bytes: int = 0
    options: dict[str, str] = field(default_factory=dict)
    submitted_at: int = field(default_factory=now_ms)


@dataclass(frozen=True, kw_only=True)
class AudioChunk(Event):
    """At most one second of inline PCM of one stream, ``seq`` contiguous from 0 (``audio.chunks`` lanes)."""

    SCHEMA: ClassVar[str] = "audio_chunk"
    stream_id: str
    job_id: str | None = None
    revision: int = 1
    seq: int
    start_sample: int
    sample_rate: int
    channels: int
    encoding: AudioEncoding = "PCM_S16LE"
    data: bytes
    end_of_stream: bool = False
    error: str | None = None
    options: dict[str, str] = field(default_factory=dict)
    source: str = "producer"
    produced_at: int = field(default_factory=now_ms)


SpeechKind = Literal["PARTIAL", "FINAL", "END"]


@dataclass(frozen=True, kw_only=True)
class SpeechSegment(Event):
    """A speech window found by VAD, with its 16 kHz mono PCM (``audio.speech`` lanes)."""

    SCHEMA: ClassVar[str] = "speech_segment"
    stream_id: str
    job_id: str | None = None
    revision: int = 1
    kind: SpeechKind
    segment_id: str
    index: int
    channel: int | None = None
    start: float
    end: float
    sample_rate: int = 16000
    audio: bytes
    options: dict[str, str] = field(default_factory=dict)
    source: str = "producer"
    segment_count: int | None = None
    duration: float | None = None
    error: str | None = None
    produced_at: int = field(default_factory=now_ms)
    speech: list[SpeechPiece] | None = None  # what a recogniser reads of a long upload window; None: all of it


@dataclass(frozen=True, kw_only=True)
class AsrSegment(Event):
    """Recognised text of a speech window with word timings (``asr.segments``)."""

    SCHEMA: ClassVar[str] = "asr_segment"
    stream_id: str
    job_id: str | None = None
    revision: int = 1
    kind: SpeechKind
    segment_id: str
    index: int
    channel: int | None = None
    start: float
    end: float
    text: str = ""
    words: list[Word] = field(default_factory=list)
    language: str | None = None
    language_probability: float | None = None
    avg_logprob: float | None = None
    no_speech_prob: float | None = None
    model: str
    pipeline_version: str
    options: dict[str, str] = field(default_factory=dict)
    source: str = "producer"
    segment_count: int | None = None
    duration: float | None = None
    error: str | None = None
    processing_seconds: float | None = None
    produced_at: int = field(default_factory=now_ms)


@dataclass(frozen=True, kw_only=True)
class SpeakerTurns(Event):
    """Who spoke when in one stream, and its speakers (``speaker.turns``): FINAL for the whole stream, PARTIAL
    for one speech segment of a live session (``segment_id``), labelled provisionally."""

    SCHEMA: ClassVar[str] = "speaker_turns"
    stream_id: str
    job_id: str | None = None
    revision: int = 1
    kind: Literal["PARTIAL", "FINAL"]
    mode: str
    turns: list[Turn] = field(default_factory=list)
    speakers: list[Speaker] = field(default_factory=list)
    backend: str = ""
    options: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    produced_at: int = field(default_factory=now_ms)
    segment_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class TranscriptEvent(Event):
    """A finished transcript segment, or a revision's completion or failure (``transcripts``)."""

    SCHEMA: ClassVar[str] = "transcript_event"
    stream_id: str
    job_id: str | None = None
    revision: int = 1
    kind: TranscriptKind
    segment: TranscriptSegment | None = None
    model: str
    pipeline_version: str
    language: str | None = None
    duration: float | None = None
    segment_count: int | None = None
    source: str = "producer"
    error: str | None = None
    produced_at: int = field(default_factory=now_ms)
    speakers: list[Speaker] = field(default_factory=list)
    original: TranscriptSegment | None = None
    redactions: list[Redaction] = field(default_factory=list)
    options: dict[str, str] = field(default_factory=dict)


JobState = Literal["QUEUED", "RUNNING", "COMPLETED", "FAILED"]


@dataclass(frozen=True, kw_only=True)
class JobEvent(Event):
    """A stage's progress or failure report on a job (``jobs.events``)."""

    SCHEMA: ClassVar[str] = "job_event"
    job_id: str
    stream_id: str
    revision: int = 1
    stage: str
    state: JobState
    progress: float | None = None
    message: str | None = None
    error: str | None = None
    details: dict[str, str] = field(default_factory=dict)
    at: int = field(default_factory=now_ms)


@dataclass(frozen=True, kw_only=True)
class SpeakerEnrollment(Event):
    """Recordings of one voice to turn into a profile (``speakers.enrollments``), keyed by profile."""

    SCHEMA: ClassVar[str] = "speaker_enrollment"
    profile_id: str
    org_id: str = "default"
    name: str
    object_keys: list[str]
    submitted_at: int = field(default_factory=now_ms)

    @property
    def partition_key(self) -> str | None:
        return self.profile_id


@dataclass(frozen=True, kw_only=True)
class SpeakerProfile(Event):
    """A computed voice profile (``speakers.profiles``), keyed by profile."""

    SCHEMA: ClassVar[str] = "speaker_profile"
    profile_id: str
    org_id: str = "default"
    embedding: list[float] = field(default_factory=list)
    voiced_seconds: float = 0.0
    backend: str = ""
    error: str | None = None
    produced_at: int = field(default_factory=now_ms)

    @property
    def partition_key(self) -> str | None:
        return self.profile_id


@dataclass(frozen=True, kw_only=True)
class DeadLetter(Event):
    """An event a stage could not decode or handle, with the error (``<topic>.dlq``), keyed as the original."""

    SCHEMA: ClassVar[str] = "dead_letter"
    topic: str
    partition: int
    offset: int
    key: bytes | None = None
    value: bytes | None = None
    stage: str
    error_type: str
    error: str
    failed_at: int = field(default_factory=now_ms)

    @property
    def partition_key(self) -> str | None:
        return self.key.decode(errors="replace") if self.key else None

@dataclass(frozen=True, kw_only=True)
class AnalyticsCall(Event):
    """The conversation analytics of one revision of a call (``analytics.calls``, keyed by stream; the same
    record goes to ``analytics.calls.by-org`` keyed by organization)."""

    SCHEMA: ClassVar[str] = "analytics_call"
    stream_id: str
    job_id: str | None = None
    revision: int = 1
    org_id: str = "default"
    model: str = ""
    pipeline_version: str = ""
    source: str = "producer"
    language: str | None = None
    completed_at: int
    duration: float
    timing: str = "segments"
    speech_time: float = 0.0
    overlap_time: float = 0.0
    silence_total: float = 0.0
    longest_silence: AnalyticsPart | None = None
    silences: list[AnalyticsPart] = field(default_factory=list)
    silence_threshold: float = 3.0
    turns: int = 0
    longest_monologue: AnalyticsPart | None = None
    interruptions: list[AnalyticsPart] = field(default_factory=list)
    words: int = 0
    words_per_minute: float | None = None
    sentiment: float | None = None
    speakers: list[AnalyticsPart] = field(default_factory=list)
    phrase_hits: list[AnalyticsPart] = field(default_factory=list)
    required_missing: list[AnalyticsPart] = field(default_factory=list)
    segments: list[AnalyticsPart] = field(default_factory=list)
    produced_at: int = field(default_factory=now_ms)


Granularity = Literal["HOUR", "DAY"]


@dataclass(frozen=True, kw_only=True)
class AnalyticsWindow(Event):
    """The latest totals of one window of the live aggregates (``analytics.windows``, compacted), keyed by the
    window: organization, speaker, granularity and start."""

    SCHEMA: ClassVar[str] = "analytics_window"
    org_id: str
    speaker: str = ""
    granularity: Granularity
    window_start: int
    window_end: int
    calls: int = 0
    audio_ms: int = 0
    speech_ms: int = 0
    talk_ms: int = 0
    talk_share_bp: int = 0
    interruptions: int = 0
    interrupted: int = 0
    overlap_ms: int = 0
    silence_ms: int = 0
    words: int = 0
    required_missing: int = 0
    phrase_hits: dict[str, int] = field(default_factory=dict)
    version: int
    produced_at: int = field(default_factory=now_ms)

    @property
    def partition_key(self) -> str | None:
        return json.dumps([self.org_id, self.speaker, self.granularity, self.window_start])


# every builder by its contract's name
BUILDERS: dict[str, type[Event]] = {cls.SCHEMA: cls for cls in (
    IngestRequest, AudioChunk, SpeechSegment, AsrSegment, SpeakerTurns, TranscriptEvent, JobEvent,
    SpeakerEnrollment, SpeakerProfile, DeadLetter, AnalyticsCall, AnalyticsWindow)}
