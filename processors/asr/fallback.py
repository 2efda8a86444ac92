"""Faster-whisper's per-window safeguards, as pure decisions on decoding attempts.

faster-whisper's sequential ``transcribe`` checks every 30-second window it decodes
(``WhisperModel.generate_with_fallback`` and the no-speech check after it, faster_whisper/transcribe.py):

- a result whose text compresses too well (gzip ratio above ``compression_ratio_threshold``: a repetition
  loop such as "or, or, or, ...") or whose average token log-probability is below ``log_prob_threshold`` is
  decoded again at the next temperature of the schedule (0.2, 0.4, ... 1.0, sampling ``best_of`` candidates);
- a result that looks like silence (no-speech probability above ``no_speech_threshold`` and a low
  log-probability) is not retried;
- when every temperature fails, the attempt with the best average log-probability among those under the
  compression threshold (or among all, if none is) is kept;
- a window whose kept result is silence (no-speech probability above the threshold, unless its
  log-probability clears ``log_prob_threshold``) yields no text.

Its ``BatchedInferencePipeline`` decodes once at the first temperature and applies none of this. The functions
here repeat the sequential rules exactly, so that the batched recogniser can apply them window by window
(``processors.asr.decoding`` decodes the failing windows of a batch again, batched among themselves).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from faster_whisper.transcribe import get_compression_ratio

TEMPERATURES: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)  # faster-whisper's default schedule


@dataclass(frozen=True)
class Safeguards:
    """faster-whisper's defaults (``WhisperModel.transcribe``); ``None`` disables a check as it does there."""

    compression_ratio_threshold: float | None = 2.4
    log_prob_threshold: float | None = -1.0
    no_speech_threshold: float | None = 0.6
    best_of: int = 5  # candidates sampled per window at a temperature above 0


@dataclass(frozen=True)
class Attempt:
    """One decoding of one window."""

    tokens: tuple[int, ...]
    text: str
    avg_logprob: float
    no_speech_prob: float
    temperature: float

    @property
    def compression_ratio(self) -> float:
        return float(get_compression_ratio(self.text.strip()))


def looks_silent(attempt: Attempt, guards: Safeguards) -> bool:
    """A failed attempt that is silence rather than a bad decoding: retrying it would only invent words."""
    return (guards.no_speech_threshold is not None and attempt.no_speech_prob > guards.no_speech_threshold
            and guards.log_prob_threshold is not None and attempt.avg_logprob < guards.log_prob_threshold)


def too_repetitive(attempt: Attempt, guards: Safeguards) -> bool:
    return (guards.compression_ratio_threshold is not None
            and attempt.compression_ratio > guards.compression_ratio_threshold)


def too_improbable(attempt: Attempt, guards: Safeguards) -> bool:
    return guards.log_prob_threshold is not None and attempt.avg_logprob < guards.log_prob_threshold


def needs_fallback(attempt: Attempt, guards: Safeguards) -> bool:
    """Whether the window must be decoded again at the next temperature."""
    failed = too_repetitive(attempt, guards) or too_improbable(attempt, guards)
    return failed and not looks_silent(attempt, guards)


def settle(attempts: Sequence[Attempt], guards: Safeguards) -> Attempt:
    """The result faster-whisper keeps after trying ``attempts`` (in temperature order) on one window: the last
    one if it passed, otherwise the most probable of those under the compression threshold (or of all), reported
    at the last temperature tried (which is what faster-whisper's prompt reset looks at)."""
    if not attempts:
        raise ValueError("a window needs at least one decoding attempt")
    last = attempts[-1]
    if not needs_fallback(last, guards):
        return last
    candidates = [a for a in attempts if guards.compression_ratio_threshold is not None
                  and not too_repetitive(a, guards)] or list(attempts)
    best = max(candidates, key=lambda a: a.avg_logprob)
    return Attempt(best.tokens, best.text, best.avg_logprob, best.no_speech_prob, last.temperature)


def is_silence(attempt: Attempt, guards: Safeguards) -> bool:
    """The no-speech check on the kept result: such a window yields no text."""
    if guards.no_speech_threshold is None or attempt.no_speech_prob <= guards.no_speech_threshold:
        return False
    return not (guards.log_prob_threshold is not None and attempt.avg_logprob > guards.log_prob_threshold)
