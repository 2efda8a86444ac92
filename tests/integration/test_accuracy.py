"""Chunking must not cost accuracy: the read-speech set through the whole pipeline vs. the same model run
directly with faster-whisper on the same files with the same settings (beam 5, word timestamps), for every
installed model. The set is each LJ Speech file and jfk.flac on its own, plus all of them laid end to end as one
long recording (about two minutes), which the pipeline cuts into several windows and faster-whisper reads 30 s at
a time. Speakers are not asked for: words are compared here, and speakers cost about as much CPU as recognition."""

from __future__ import annotations

import asyncio
import difflib
import re
import urllib.request
from pathlib import Path

import jiwer
import numpy as np
import pytest
from faster_whisper import WhisperModel

from bench.corpus import mono_pcm, read_sources, write_wav
from processors.asr.models import ModelRegistry
from tests.conftest import normalize, read_references
from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration

MODELS = ModelRegistry().names()
RATE = 16_000


def test_every_model_the_project_ships_is_installed() -> None:
    # the parity test below runs once per installed model: it must not quietly cover fewer
    assert {"tiny.en", "base"} <= set(MODELS), MODELS


@pytest.fixture(scope="module")
def long_recording(speech: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every source laid end to end as one 16 kHz mono WAV, written at run time (never stored in the repo)."""
    out = tmp_path_factory.mktemp("long") / "read_end_to_end.wav"
    write_wav(out, mono_pcm(read_sources(speech)))
    return out


def direct_transcripts(files: list[Path], model_name: str) -> list[str]:
    info = ModelRegistry().get(model_name)
    model = WhisperModel(str(info.path), device="cpu", compute_type="int8", cpu_threads=2)
    out = []
    for f in files:
        # the pipeline detects the language of a multilingual model's job unless it is given, and so does this
        language = None if info.multilingual else "en"
        segments, _ = model.transcribe(str(f), beam_size=5, word_timestamps=True, language=language)
        out.append(" ".join(s.text.strip() for s in segments))
    return out


@pytest.mark.parametrize("model", MODELS)
async def test_pipeline_wer_matches_direct_faster_whisper(stack: Stack, speech: Path, long_recording: Path,
                                                          model: str) -> None:
    refs = read_references(speech)
    files = [*read_sources(speech), long_recording]
    # speakers have their own tests (test_speakers.py, test_overlap_diarization.py)
    results = await asyncio.gather(*(stack.transcribe(f, model=model, diarize="off") for f in files))
    assert all(job["status"] == "completed" for job, _ in results), [j for j, _ in results]
    pipeline = [t["text"] for _, t in results]
    direct = direct_transcripts(files, model)

    truth = [normalize(refs[f.name]) for f in read_sources(speech)]
    truth.append(" ".join(truth))  # the long recording says everything once more, in the same order
    wer_pipeline = jiwer.wer(truth, [normalize(t) for t in pipeline])
    wer_direct = jiwer.wer(truth, [normalize(t) for t in direct])
    wer_long = (jiwer.wer(truth[-1], normalize(pipeline[-1])), jiwer.wer(truth[-1], normalize(direct[-1])))
    print(f"\n{model}: WER on {len(files)} files of read speech: pipeline {wer_pipeline:.2%}, direct "
          f"faster-whisper {wer_direct:.2%}; the long recording alone: pipeline {wer_long[0]:.2%}, "
          f"direct {wer_long[1]:.2%}")
    assert wer_direct < 0.15  # the baseline itself is sane
    assert wer_pipeline <= wer_direct + 0.01, (wer_pipeline, wer_direct)


def recognised_seconds(stack: Stack) -> float:
    """Seconds of audio the recogniser has read so far (its Prometheus metrics)."""
    port = stack.info["children"]["asr"]["metrics_port"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    found = re.search(r'^streamscribe_audio_seconds_total\{stage="asr"\} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


@pytest.fixture(scope="module")
def paused_recording(speech: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The read set laid end to end with 4 s of silence after each file, as people pause between turns."""
    pause = np.zeros(4 * RATE, dtype=np.int16)
    audio = np.concatenate([part for src in read_sources(speech) for part in (mono_pcm([src]), pause)])
    out = tmp_path_factory.mktemp("paused") / "read_with_pauses.wav"
    write_wav(out, audio)
    return out


async def test_word_timings_match_direct_faster_whisper_where_pauses_were_shortened(
        stack: Stack, paused_recording: Path) -> None:
    # the recogniser reads a long window's speech with the pauses between utterances shortened
    # (processors.vad.segmenter, processors.audio.timeline); each word must still be placed where it was said
    before = recognised_seconds(stack)
    job, transcript = await stack.transcribe(paused_recording, diarize="off")
    assert job["status"] == "completed", job
    read = recognised_seconds(stack) - before
    print(f"\nthe recogniser read {read:.1f} s of {transcript['duration']:.1f} s")
    # windows too long to read whole had their pauses shortened: the segmenter leaves about 47 s of the 185 s
    # unread here, against 29 s (the silence between windows only) when every window is read whole
    assert read < transcript["duration"] - 38, (read, transcript["duration"])
    ours = [(normalize(w["word"]), w["start"]) for s in transcript["segments"] for w in s["words"]]
    model = WhisperModel(str(ModelRegistry().get("tiny.en").path), device="cpu", compute_type="int8", cpu_threads=2)
    direct_segments, _ = model.transcribe(str(paused_recording), beam_size=5, word_timestamps=True, language="en")
    theirs = [(normalize(w.word), w.start) for s in direct_segments for w in s.words or []]
    matcher = difflib.SequenceMatcher(a=[w for w, _ in ours], b=[w for w, _ in theirs], autojunk=False)
    gaps = [abs(ours[block.a + k][1] - theirs[block.b + k][1])
            for block in matcher.get_matching_blocks() for k in range(block.size)]
    assert len(gaps) > 0.8 * len(theirs), (len(gaps), len(theirs))
    print(f"\nword starts against direct faster-whisper: {len(gaps)} words, median {np.median(gaps):.3f} s, "
          f"95th percentile {np.percentile(gaps, 95):.3f} s, max {max(gaps):.3f} s")
    # seconds of pause are left out at a window's seams: a word placed at its packed time would be seconds off
    assert np.median(gaps) < 0.15 and np.percentile(gaps, 95) < 0.5, (np.median(gaps), np.percentile(gaps, 95))
