"""Chunking must not cost accuracy: the read-speech set through the whole pipeline vs. the same model run
directly with faster-whisper on the same files with the same settings (beam 5, word timestamps)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import jiwer
import pytest
from faster_whisper import WhisperModel

from processors.asr.models import ModelRegistry
from tests.conftest import normalize, read_references
from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration


def direct_transcripts(files: list[Path]) -> list[str]:
    info = ModelRegistry().get("tiny.en")
    model = WhisperModel(str(info.path), device="cpu", compute_type="int8", cpu_threads=2)
    out = []
    for f in files:
        segments, _ = model.transcribe(str(f), beam_size=5, word_timestamps=True, language="en")
        out.append(" ".join(s.text.strip() for s in segments))
    return out


async def test_pipeline_wer_matches_direct_faster_whisper(stack: Stack, speech: Path) -> None:
    refs = read_references(speech)
    files = [*sorted((speech / "read").glob("LJ*.wav")), speech / "read" / "jfk.flac"]
    results = await asyncio.gather(*(stack.transcribe(f) for f in files))
    assert all(job["status"] == "completed" for job, _ in results), [j for j, _ in results]
    pipeline = [t["text"] for _, t in results]
    direct = direct_transcripts(files)

    truth = [normalize(refs[f.name]) for f in files]
    wer_pipeline = jiwer.wer(truth, [normalize(t) for t in pipeline])
    wer_direct = jiwer.wer(truth, [normalize(t) for t in direct])
    print(f"\nWER on {len(files)} files of read speech: pipeline {wer_pipeline:.2%}, "
          f"direct faster-whisper {wer_direct:.2%}")
    assert wer_direct < 0.15  # the baseline itself is sane
    assert wer_pipeline <= wer_direct + 0.01, (wer_pipeline, wer_direct)
