"""Real speech for benchmarks and long tests, laid end to end from the shared recordings (never copied into
the project: the file is written to a temporary place at run time)."""

from __future__ import annotations

import os
import wave
from pathlib import Path

import numpy as np
import soxr

from connectors.ingest.decode import TARGET_RATE, decode_chunks

SHARED = Path(os.environ.get("STREAMSCRIBE_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
SPEECH = SHARED / "data" / "speech"


def long_sources(speech: Path = SPEECH) -> list[Path]:
    """LJ Speech reads, AMI meeting excerpts and a phone call: about 7.7 minutes of real speech."""
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


def write_mixed_recording(out: Path, speech: Path = SPEECH, call_s: float = 40.0) -> float:
    """The three kinds of speech of ``long_sources`` in about 3.4 minutes (the LJ Speech reads, two AMI meeting
    excerpts, the phone call's first ``call_s`` seconds) as one 16 kHz mono WAV: the recording the crash tests
    kill stages in the middle of. Returns its duration in seconds."""
    parts = mono_pcm(sorted((speech / "read").glob("LJ*.wav")) + sorted((speech / "meetings").glob("ami_*.flac"))[:2])
    call = mono_pcm([speech / "calls" / "call_center_phone_call.mp3"])[: int(call_s * TARGET_RATE)]
    return write_wav(out, np.concatenate([parts, call]))


def write_repeated_recording(out: Path, minutes: float, speech: Path = SPEECH) -> float:
    """The long recording (``long_sources``) laid end to end as often as it takes to last ``minutes`` (a
    one-hour file for fairness and cost measurements), as a 16 kHz mono WAV; returns its duration in seconds."""
    once = mono_pcm(long_sources(speech))
    times = max(1, int(np.ceil(minutes * 60 * TARGET_RATE / len(once))))
    return write_wav(out, np.tile(once, times))


def read_mono(path: Path) -> np.ndarray:
    """One recording as 16 kHz mono int16."""
    return mono_pcm([path])


def write_pcm(out: Path, audio: np.ndarray, rate: int = TARGET_RATE) -> Path:
    """int16 audio at ``rate``, (samples,) or (samples, channels), as a WAV; returns its path."""
    frames = audio if audio.ndim == 2 else audio[:, None]
    with wave.open(str(out), "wb") as w:
        w.setnchannels(frames.shape[1])
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.ascontiguousarray(frames.astype("<i2")).tobytes())
    return out


def write_meeting(out: Path, seconds: float = 120.0, speech: Path = SPEECH) -> Path:
    """AMI meeting excerpts end to end (several speakers, overlaps), cut to ``seconds``."""
    audio = mono_pcm(sorted((speech / "meetings").glob("ami_*.flac")))
    return write_pcm(out, audio[: int(seconds * TARGET_RATE)])


def write_two_party_call(out: Path, seconds: float = 180.0, rate: int = 8000, speech: Path = SPEECH) -> Path:
    """A stereo call at ``rate`` (8 kHz: telephone), one party per channel taking turns with 0.4 s gaps: the LJ
    Speech reader on the left, the customer-service call (itself telephone audio, cut into 6 s turns) on the
    right."""
    left = [read_mono(f) for f in sorted((speech / "read").glob("LJ*.wav"))]
    call = read_mono(speech / "calls" / "call_center_phone_call.mp3")
    turn = 6 * TARGET_RATE
    right = [call[i: i + turn] for i in range(0, len(call), turn)]
    gap = np.zeros(int(0.4 * TARGET_RATE), np.int16)
    channels: list[list[np.ndarray]] = [[], []]
    total = 0
    i = 0
    while total < seconds * TARGET_RATE:
        piece = left[i % len(left)] if i % 2 == 0 else right[(i // 2) % len(right)]
        side = i % 2
        channels[side] += [piece, gap]
        channels[1 - side] += [np.zeros(len(piece), np.int16), gap]
        total += len(piece) + len(gap)
        i += 1
    stereo = np.stack([np.concatenate(c)[: int(seconds * TARGET_RATE)] for c in channels], axis=1)
    resampled = soxr.resample(stereo.astype(np.float32) / 32768.0, TARGET_RATE, rate)
    return write_pcm(out, np.clip(resampled * 32768.0, -32768, 32767).astype(np.int16), rate)


Turns = list[tuple[float, float, str]]


def two_voice_conversation(speech: Path = SPEECH, gap_s: float = 1.0) -> tuple[np.ndarray, Turns]:
    """Two real voices taking turns, 16 kHz mono: the LJ Speech reader (``reader``) and President Kennedy
    (``jfk``, his 11 s split at its pause into two utterances): reader, jfk, reader, jfk, reader, with ``gap_s``
    of silence between turns. Returns the audio and its reference turns (start, end, speaker)."""
    reads = [read_mono(speech / "read" / f"LJ001-000{i}.wav") for i in (1, 2, 3)]
    jfk = read_mono(speech / "read" / "jfk.flac")
    cut = int(8.15 * TARGET_RATE)
    order = [(reads[0], "reader"), (jfk[:cut], "jfk"), (reads[1], "reader"), (jfk[cut:], "jfk"), (reads[2], "reader")]
    gap = np.zeros(int(gap_s * TARGET_RATE), np.int16)
    pieces, turns, at = [gap], [], len(gap)
    for audio, who in order:
        pieces += [audio, gap]
        turns.append((at / TARGET_RATE, (at + len(audio)) / TARGET_RATE, who))
        at += len(audio) + len(gap)
    return np.concatenate(pieces), turns
