"""Decode a batch of encoded Whisper windows with faster-whisper's temperature fallback, window by window.

The whole batch is decoded once at the first temperature (beam search as configured). Each window's result is
checked with the rules of ``processors.asr.fallback``; only the windows that fail are decoded again, batched
among themselves, at the next temperature (sampling ``best_of`` candidates, as faster-whisper does), until
every window passes or the schedule ends. On clean speech the first pass passes everywhere, so the fallback
costs nothing there.

A sampled decoding is random, as it is in faster-whisper: CTranslate2 draws samples from a generator of its own
worker thread, seeded once when the thread starts (``ctranslate2.set_random_seed`` before a call does not reset
it), and from one stream for the whole batch. A window that needed the fallback may therefore get other words
when it is recognised again (a retry, a replay, a batch handled again after a crash); a window the first pass
accepted gets the same words in any batch. The recogniser logs each window it sampled (``streams.stages.asr``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import ctranslate2
import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import get_suppressed_tokens

from processors.asr.fallback import Attempt, Safeguards, is_silence, needs_fallback, settle


@dataclass(frozen=True)
class Decoded:
    """What one window's decoding kept, after how many attempts, and whether it is silence (no text)."""

    kept: Attempt
    attempts: int
    silent: bool


@dataclass(frozen=True)
class Generation:
    """Decoding settings shared by the windows of one batch."""

    beam_size: int
    max_length: int
    temperatures: tuple[float, ...]
    guards: Safeguards
    # token ids never generated; None: faster-whisper's default (``suppressed_tokens``); [-1]: the model's own
    # list from its config.json (CTranslate2's default)
    suppress_tokens: list[int] | None = None


def suppressed_tokens(tokenizer: Tokenizer) -> list[int]:
    """faster-whisper's default ``suppress_tokens=[-1]``: non-speech symbols and the special task tokens."""
    return list(get_suppressed_tokens(tokenizer, [-1]) or [])


def decode_windows(model: WhisperModel, tokenizer: Tokenizer, encoded: ctranslate2.StorageView,
                   prompts: Sequence[list[int]], gen: Generation) -> list[Decoded]:
    """Decode every window of ``encoded`` (one prompt each) with the fallback schedule of ``gen``."""
    if not gen.temperatures:
        raise ValueError("the temperature schedule is empty")
    suppress = suppressed_tokens(tokenizer) if gen.suppress_tokens is None else gen.suppress_tokens
    history: list[list[Attempt]] = [[] for _ in prompts]
    pending = list(range(len(prompts)))
    array: np.ndarray | None = None
    for temperature in gen.temperatures:
        if not pending:
            break
        if len(pending) == len(prompts):
            features = encoded
        else:  # only the failing windows, batched among themselves
            array = np.asarray(encoded) if array is None else array
            features = ctranslate2.StorageView.from_array(np.ascontiguousarray(array[pending]))
        attempts = _generate(model, tokenizer, features, [prompts[i] for i in pending], temperature, suppress, gen)
        for i, attempt in zip(pending, attempts, strict=True):
            history[i].append(attempt)
        pending = [i for i in pending if needs_fallback(history[i][-1], gen.guards)]
    out = []
    for tries in history:
        kept = settle(tries, gen.guards)
        out.append(Decoded(kept, len(tries), is_silence(kept, gen.guards)))
    return out


def _generate(model: WhisperModel, tokenizer: Tokenizer, features: ctranslate2.StorageView,
              prompts: list[list[int]], temperature: float, suppress: list[int], gen: Generation) -> list[Attempt]:
    """One pass of ``generate`` with faster-whisper's settings for this temperature
    (``WhisperModel.generate_with_fallback``)."""
    kwargs: dict[str, Any]
    if temperature > 0:
        kwargs = {"beam_size": 1, "num_hypotheses": gen.guards.best_of, "sampling_topk": 0,
                  "sampling_temperature": temperature}
    else:
        kwargs = {"beam_size": gen.beam_size, "patience": 1.0}
    results = model.model.generate(
        features, prompts, length_penalty=1.0, repetition_penalty=1.0, no_repeat_ngram_size=0,
        max_length=gen.max_length, return_scores=True, return_no_speech_prob=True, suppress_blank=True,
        suppress_tokens=suppress, **kwargs)
    attempts = []
    for result in results:
        tokens = tuple(t for t in result.sequences_ids[0] if t < tokenizer.eot)
        # the score is the log-probability normalised by length (length_penalty 1): recover faster-whisper's
        # average, which counts the end-of-text token
        seq_len = len(result.sequences_ids[0])
        avg_logprob = float(result.scores[0]) * seq_len / (seq_len + 1)
        attempts.append(Attempt(tokens, tokenizer.decode(list(tokens)), avg_logprob, float(result.no_speech_prob),
                                temperature))
    return attempts
