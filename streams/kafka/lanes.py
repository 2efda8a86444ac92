"""Priority lanes: which topic a stream's audio and speech travel on.

Raw audio (``audio.chunks``) and speech (``audio.speech``) each come in three lanes: ``.high``, the plain
topic (normal) and ``.low``. The stages that read them (vad; asr and diarization) take the lanes with strict
priority (``streams.runtime.priority``): while a higher lane has events waiting, the lower lanes are paused,
and while it has been busy lately, work from lower lanes is taken in small batches so that the next urgent
event never waits behind a large batch. A stream keeps one lane from its first chunk to its end marker, so
its events stay in order. Live sessions and phone calls are high unless the stream says otherwise; uploads
are normal unless the job's ``priority`` says otherwise; replays are low unless asked for otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping

from streams.kafka.topics import (
    AUDIO_CHUNKS,
    AUDIO_CHUNKS_HIGH,
    AUDIO_CHUNKS_LOW,
    AUDIO_SPEECH,
    AUDIO_SPEECH_HIGH,
    AUDIO_SPEECH_LOW,
)

PRIORITIES = ("high", "normal", "low")
REAL_TIME_SOURCES = ("live", "telephony")
_SPEECH = {"high": AUDIO_SPEECH_HIGH, "normal": AUDIO_SPEECH, "low": AUDIO_SPEECH_LOW}
_CHUNKS = {"high": AUDIO_CHUNKS_HIGH, "normal": AUDIO_CHUNKS, "low": AUDIO_CHUNKS_LOW}


def priority_of(options: Mapping[str, str], source: str) -> str:
    """The stream's priority: its ``priority`` option when valid, else high for real-time sources."""
    chosen = options.get("priority")
    if chosen in PRIORITIES:
        return str(chosen)
    return "high" if source in REAL_TIME_SOURCES else "normal"


def chunk_lane(options: Mapping[str, str], source: str) -> str:
    """The audio-chunk topic for a stream."""
    return _CHUNKS[priority_of(options, source)]


def speech_lane(options: Mapping[str, str], source: str) -> str:
    """The speech topic for a stream's segments."""
    return _SPEECH[priority_of(options, source)]
