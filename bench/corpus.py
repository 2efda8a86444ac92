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


def write_long_recording(out: Path, speech: Path = SPEECH) -> float:
    """Write the sources as one 16 kHz mono WAV; returns its duration in seconds."""
    pieces = [chunk.frames.astype(np.int32).mean(axis=1).astype(np.int16)
              for src in long_sources(speech) for chunk in decode_chunks(src)]
    audio = np.concatenate(pieces)
    with wave.open(str(out), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(TARGET_RATE)
        w.writeframes(audio.tobytes())
    return len(audio) / TARGET_RATE
