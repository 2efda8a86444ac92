"""Real speech for benchmarks and long tests, laid end to end from the shared recordings (never copied into
the project: the file is written to a temporary place at run time)."""

from __future__ import annotations

import os
import wave
from pathlib import Path

import numpy as np

from connectors.ingest.decode import TARGET_RATE, decode_chunks

SHARED = Path(os.environ.get("STREAMSCRIBE_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
SPEECH = SHARED / "data" / "speech"


def long_sources(speech: Path = SPEECH) -> list[Path]:
    """LJ Speech reads, AMI meeting excerpts and a phone call: about 6.2 minutes of real speech."""
    return (sorted((speech / "read").glob("LJ*.wav")) + sorted((speech / "meetings").glob("ami_*.flac"))
            + [speech / "calls" / "call_center_phone_call.mp3"])


def read_sources(speech: Path = SPEECH) -> list[Path]:
    """The LJ Speech reads and jfk.flac, which have reference transcripts (about two minutes)."""
    return [*sorted((speech / "read").glob("LJ*.wav")), speech / "read" / "jfk.flac"]


def mono_pcm(sources: list[Path]) -> np.ndarray:
    """The sources decoded as the ingest stage does (16 kHz, channels mixed), laid end to end; int16."""
    return np.concatenate([chunk.frames.astype(np.int32).mean(axis=1).astype(np.int16)
                           for src in sources for chunk in decode_chunks(src)])


def write_wav(out: Path, audio: np.ndarray) -> float:
    """Write int16 mono PCM as a 16 kHz WAV; returns its duration in seconds."""
    with wave.open(str(out), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(TARGET_RATE)
        w.writeframes(audio.tobytes())
    return len(audio) / TARGET_RATE


def write_long_recording(out: Path, speech: Path = SPEECH) -> float:
    """Write the sources as one 16 kHz mono WAV; returns its duration in seconds."""
    return write_wav(out, mono_pcm(long_sources(speech)))
