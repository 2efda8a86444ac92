"""The recogniser's per-window safeguards: faster-whisper's fallback rules, and the batched re-decoding of only
the failing windows. A scripted stand-in for CTranslate2's ``generate`` decides what each window decodes to at
each temperature; the tokenizer is tiny.en's real one. The real model on real speech is in
tests/integration/test_asr_loop.py."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ctranslate2
import numpy as np
import pytest
import tokenizers
from faster_whisper import WhisperModel
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import TranscriptionOptions

from processors.asr.decoding import Generation, decode_windows
from processors.asr.fallback import (
    TEMPERATURES,
    Attempt,
    Safeguards,
    is_silence,
    needs_fallback,
    settle,
)
from processors.asr.models import ModelRegistry

GUARDS = Safeguards()
LOOP = "Printing, or, or, or, or, or, or, or, or, or, or, or, or, or, or, or, or, or, or, or, or, or, or."
GOOD = "It was a matter of course that the forms of printed letters should be beautiful."


def attempt(text: str = GOOD, logprob: float = -0.2, no_speech: float = 0.01, temperature: float = 0.0) -> Attempt:
    return Attempt((), text, logprob, no_speech, temperature)


def test_a_looping_or_improbable_result_is_retried_and_a_good_one_is_kept() -> None:
    assert attempt(LOOP).compression_ratio > 2.4
    assert needs_fallback(attempt(LOOP), GUARDS)
    assert needs_fallback(attempt(logprob=-1.3), GUARDS)
    assert not needs_fallback(attempt(), GUARDS)
    assert not needs_fallback(attempt(logprob=-1.0), GUARDS)  # the threshold itself passes, as in faster-whisper


def test_silence_is_not_retried_and_yields_no_text() -> None:
    silent = attempt(" you", logprob=-1.5, no_speech=0.9)
    assert not needs_fallback(silent, GUARDS)
    assert is_silence(silent, GUARDS)
    # a probable text wins over a high no-speech probability
    assert not is_silence(attempt(no_speech=0.9, logprob=-0.5), GUARDS)
    assert not is_silence(attempt(no_speech=0.5, logprob=-1.5), GUARDS)
    # a loop over a high no-speech probability is still retried: its log-probability is high
    assert needs_fallback(attempt(LOOP, no_speech=0.9, logprob=-0.3), GUARDS)


def test_disabled_checks_never_fire() -> None:
    off = Safeguards(compression_ratio_threshold=None, log_prob_threshold=None, no_speech_threshold=None)
    assert not needs_fallback(attempt(LOOP, logprob=-3.0), off)
    assert not is_silence(attempt(no_speech=0.99, logprob=-3.0), off)
    assert is_silence(attempt(no_speech=0.99, logprob=-0.1), Safeguards(log_prob_threshold=None))


def test_when_every_temperature_fails_the_most_probable_non_looping_attempt_is_kept() -> None:
    tries = [attempt(LOOP, -0.1, temperature=0.0), attempt("a b c", -1.4, temperature=0.2),
             attempt("a b d", -1.2, temperature=0.4), attempt(LOOP, -0.05, temperature=0.6)]
    kept = settle(tries, GUARDS)
    assert (kept.text, kept.avg_logprob, kept.temperature) == ("a b d", -1.2, 0.6)
    loops = [attempt(LOOP, -0.3, temperature=0.0), attempt(LOOP + " or", -0.2, temperature=0.2)]
    assert settle(loops, GUARDS).avg_logprob == -0.2  # nothing under the threshold: the best of all
    assert settle([attempt(LOOP), attempt(temperature=0.2)], GUARDS).text == GOOD
    with pytest.raises(ValueError):
        settle([], GUARDS)


# -- the batched re-decoding, against a scripted generate ---------------------------------------------------


@dataclass
class Scripted:
    sequences_ids: list[list[int]]
    scores: list[float]
    no_speech_prob: float


class ScriptedWhisper:
    """Stands in for ``ctranslate2.models.Whisper``: window ``w`` (row ``w`` of the encoder output is filled with
    ``w``) decodes at temperature ``t`` to ``script[w][t]`` = (text, average log-probability, no-speech)."""

    def __init__(self, tokenizer: Tokenizer, script: dict[int, dict[float, tuple[str, float, float]]]) -> None:
        self.tokenizer = tokenizer
        self.script = script
        self.calls: list[tuple[float, list[int], dict[str, Any]]] = []

    def generate(self, features: Any, prompts: list[list[int]], **kw: Any) -> list[Scripted]:
        rows = np.asarray(features)
        windows = [int(rows[i, 0, 0]) for i in range(rows.shape[0])]
        temperature = kw.get("sampling_temperature", 0.0) if kw.get("sampling_topk") == 0 else 0.0
        self.calls.append((temperature, windows, kw))
        out = []
        for w in windows:
            text, logprob, no_speech = self.script[w][temperature]
            tokens = self.tokenizer.encode(" " + text)
            # CTranslate2 reports the log-probability normalised by length; faster-whisper's average counts EOT
            out.append(Scripted([tokens], [logprob * (len(tokens) + 1) / len(tokens)], no_speech))
        return out


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    path = Path(ModelRegistry().get("tiny.en").path) / "tokenizer.json"
    return Tokenizer(tokenizers.Tokenizer.from_file(str(path)), False, task="transcribe", language="en")


def _model(fake: ScriptedWhisper) -> WhisperModel:
    model = WhisperModel.__new__(WhisperModel)  # only the parts generate_with_fallback reads
    model.model = fake  # type: ignore[assignment]
    model.max_length, model.time_precision, model.logger = 448, 0.02, logging.getLogger("test")
    return model


def _encoded(n: int) -> ctranslate2.StorageView:
    return ctranslate2.StorageView.from_array(np.repeat(np.arange(n, dtype=np.float32), 6).reshape(n, 2, 3))


def _row(w: int) -> ctranslate2.StorageView:
    return ctranslate2.StorageView.from_array(np.full((1, 2, 3), w, dtype=np.float32))


def test_only_failing_windows_are_decoded_again_batched_among_themselves(tokenizer: Tokenizer) -> None:
    ok = {t: (GOOD, -0.2, 0.01) for t in TEMPERATURES}
    script = {
        0: ok,
        1: {0.0: (LOOP, -0.1, 0.01), 0.2: (GOOD, -0.3, 0.01)},  # loops, mended at 0.2
        2: ok,
        3: {0.0: ("mumble", -1.6, 0.02), 0.2: ("mumble", -1.5, 0.02), 0.4: ("numbers", -0.4, 0.02)},
        4: {0.0: ("you", -1.8, 0.95)},  # silence: never retried, no text
    }
    fake = ScriptedWhisper(tokenizer, script)
    gen = Generation(beam_size=5, max_length=448, temperatures=TEMPERATURES, guards=GUARDS)
    decoded = decode_windows(_model(fake), tokenizer, _encoded(5), [[1]] * 5, gen)

    assert [(t, w) for t, w, _ in fake.calls] == [(0.0, [0, 1, 2, 3, 4]), (0.2, [1, 3]), (0.4, [3])]
    assert fake.calls[0][2]["beam_size"] == 5
    assert fake.calls[1][2]["beam_size"] == 1 and fake.calls[1][2]["num_hypotheses"] == GUARDS.best_of
    assert [d.attempts for d in decoded] == [1, 2, 1, 3, 1]
    assert [d.kept.temperature for d in decoded] == [0.0, 0.2, 0.0, 0.4, 0.0]
    assert decoded[1].kept.text.strip() == GOOD and decoded[3].kept.text.strip() == "numbers"
    assert [d.silent for d in decoded] == [False, False, False, False, True]


def test_a_single_temperature_never_retries(tokenizer: Tokenizer) -> None:
    fake = ScriptedWhisper(tokenizer, {0: {0.0: (LOOP, -0.1, 0.01)}})
    gen = Generation(beam_size=1, max_length=448, temperatures=(0.0,), guards=GUARDS)
    decoded = decode_windows(_model(fake), tokenizer, _encoded(1), [[1]], gen)
    assert len(fake.calls) == 1 and decoded[0].attempts == 1 and decoded[0].kept.text.strip() == LOOP


def test_the_kept_result_is_the_one_faster_whisper_keeps(tokenizer: Tokenizer) -> None:
    """Random scripts of attempts through faster-whisper's own ``generate_with_fallback`` (one window at a time)
    and through the batched decoder: the same text, log-probability and temperature for every window."""
    rng = random.Random(15)
    texts = [GOOD, LOOP, "a", "the the the the the the the the the the the the the the the the the"]
    n = 300
    script = {w: {t: (rng.choice(texts), rng.choice([-0.2, -1.0, -1.1, -1.3, -1.7]),
                      rng.choice([0.01, 0.5, 0.61, 0.9])) for t in TEMPERATURES} for w in range(n)}
    fake = ScriptedWhisper(tokenizer, script)
    gen = Generation(beam_size=5, max_length=448, temperatures=TEMPERATURES, guards=GUARDS)
    batched = decode_windows(_model(fake), tokenizer, _encoded(n), [[1]] * n, gen)
    # the script covers every path: passed at once, mended by a retry, every temperature failed, silence
    assert {1, 2, 6} <= {d.attempts for d in batched} and any(d.silent for d in batched)
    assert sum(d.attempts == 6 and needs_fallback(d.kept, GUARDS) for d in batched) >= 2

    options = TranscriptionOptions(
        beam_size=5, best_of=5, patience=1, length_penalty=1, repetition_penalty=1, no_repeat_ngram_size=0,
        log_prob_threshold=-1.0, no_speech_threshold=0.6, compression_ratio_threshold=2.4,
        condition_on_previous_text=False, prompt_reset_on_temperature=0.5, temperatures=list(TEMPERATURES),
        initial_prompt=None, prefix=None, suppress_blank=True, suppress_tokens=[-1], without_timestamps=True,
        max_initial_timestamp=1.0, word_timestamps=False, prepend_punctuations="", append_punctuations="",
        multilingual=False, max_new_tokens=None, clip_timestamps="0", hallucination_silence_threshold=None,
        hotwords=None)
    for w in range(n):
        result, avg_logprob, temperature, _ = _model(fake).generate_with_fallback(_row(w), [1], tokenizer, options)
        kept = batched[w].kept
        assert kept.text == tokenizer.decode(result.sequences_ids[0]), w
        assert (round(kept.avg_logprob, 6), kept.temperature) == (round(avg_logprob, 6), temperature), w
