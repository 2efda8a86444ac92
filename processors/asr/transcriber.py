"""Recognise speech windows with faster-whisper models (CTranslate2), many windows per pass.

Windows that share a model and decoding options are recognised together, ``batch_size`` at a time: each is one
Whisper window (VAD cuts them at most 28 s long), and a batch is encoded and decoded in one pass, as
faster-whisper's ``BatchedInferencePipeline`` does. Unlike that pipeline, every window gets the safeguards of
faster-whisper's sequential ``transcribe`` (``processors.asr.fallback``): a window whose text loops or is
improbable is decoded again at higher temperatures (only that window, batched with the other failing ones),
and a window that is silence yields no text. Word timings are aligned per window and mapped to stream time.

Windows are not conditioned on each other's text. faster-whisper's sequential path feeds each 30-second window
the text of the one before (it helps continuity inside one long file, and it is also how one bad window's loop
spreads to the next, which is why faster-whisper drops that prompt after a high-temperature fallback); its
batched pipeline never does. Here windows are whole VAD windows (up to 28 s, cut at pauses), decoded in the same
pass, and often from different streams, so the previous window's text is not known when a window is decoded; on
the read-speech set, conditioning does not lower faster-whisper's own WER either (see BENCHMARKS / the i15
report). What a caller wants every window to be conditioned on (``initial_prompt``, ``hotwords``) is given to
every window, as faster-whisper's batched pipeline does.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import ctranslate2
import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.audio import pad_or_trim
from faster_whisper.tokenizer import Tokenizer

from processors.asr.decoding import Decoded, Generation, decode_windows
from processors.asr.fallback import TEMPERATURES, Safeguards
from processors.asr.models import ModelRegistry

RATE = 16_000
HOP = 160  # samples per mel frame (10 ms)
ALIGN = 320  # samples: 20 ms, one Whisper timestamp step
LEAD = 160 * ALIGN  # 3.2 s of virtual silence before each window when aligning words (see _padded_words)
MIN_CONTEXT_FRAMES = 1000  # 10 s of 10 ms mel frames: shorter contexts make Whisper repeat itself
# faster-whisper's defaults for attaching punctuation to words
PREPEND_PUNCTUATIONS = "\"'“¿([{-"
APPEND_PUNCTUATIONS = "\"'.。,，!！?？:：”)]}、"


@dataclass(frozen=True)
class DecodeOptions:
    model: str
    language: str | None = None
    beam_size: int = 5
    word_timestamps: bool = True
    initial_prompt: str | None = None  # given to every window (windows are not conditioned on each other)
    hotwords: str | None = None
    # Short audio context for short live utterances: the encoder reads max(10 s, the audio + 1 s) instead of
    # Whisper's padded 30 s, about 4 x cheaper; on the LJ read set its WER equals the padded decoding.
    quick: bool = False
    # faster-whisper's fallback schedule; (0.0,) decodes once, with no retry (for results that a newer one
    # replaces anyway, such as live partials)
    temperatures: tuple[float, ...] = TEMPERATURES


@dataclass
class Request:
    audio: np.ndarray  # float32 mono, 16 kHz
    offset: float  # stream time of the first sample, seconds
    options: DecodeOptions
    group_hint: str = ""  # requests that must not share language detection (e.g. one stream each)


@dataclass
class Word:
    start: float
    end: float
    word: str
    probability: float


@dataclass
class Result:
    text: str
    words: list[Word] = field(default_factory=list)
    language: str | None = None
    language_probability: float | None = None
    avg_logprob: float | None = None
    no_speech_prob: float | None = None
    seconds: float = 0.0  # share of the recognition time
    temperature: float = 0.0  # of the decoding kept (above 0: the fallback replaced a looping/improbable one)
    attempts: int = 1  # decodings of this window (1 unless the fallback fired)


@dataclass(frozen=True)
class _Group:
    """What the windows of one group share: model, tokenizer, prompt, language."""

    model: WhisperModel
    tokenizer: Tokenizer
    prompt: list[int]
    language: str
    language_probability: float
    options: DecodeOptions
    quick: bool


class Transcriber:
    def __init__(self, registry: ModelRegistry, *, compute_type: str = "int8", cpu_threads: int = 2,
                 batch_size: int = 8, max_loaded: int = 2, guards: Safeguards | None = None) -> None:
        self.registry = registry
        self.compute_type = compute_type
        self.cpu_threads = cpu_threads
        self.batch_size = batch_size
        self.max_loaded = max_loaded
        self.guards = guards or Safeguards()
        self._models: OrderedDict[str, WhisperModel] = OrderedDict()
        self._lock = threading.Lock()

    def load(self, name: str) -> WhisperModel:
        """Load a model once (LRU of ``max_loaded``); raises UnknownModel for names not installed."""
        with self._lock:
            if name in self._models:
                self._models.move_to_end(name)
                return self._models[name]
            info = self.registry.get(name)
            model = WhisperModel(str(info.path), device="cpu", compute_type=self.compute_type,
                                 cpu_threads=self.cpu_threads)
            self._models[name] = model
            while len(self._models) > self.max_loaded:
                self._models.popitem(last=False)
            return model

    def warm_up(self, name: str) -> None:
        """Load a model and run it once on a second of silence, so the first job does not pay for it."""
        self.load(name)
        silence = np.zeros(RATE, dtype=np.float32)
        self.transcribe([Request(silence, 0.0, DecodeOptions(model=name, beam_size=1)),
                         Request(silence, 0.0, DecodeOptions(model=name, beam_size=1, quick=True))])

    def transcribe(self, requests: Sequence[Request], batch_size: int | None = None) -> list[Result]:
        """Recognise every request; results in request order."""
        results: list[Result | None] = [None] * len(requests)
        for done in self.transcribe_batches(requests, batch_size):
            for i, res in done:
                results[i] = res
        return [r for r in results if r is not None]

    def transcribe_batches(self, requests: Sequence[Request],
                           batch_size: int | None = None) -> Iterator[list[tuple[int, Result]]]:
        """Recognise the requests one batch (at most ``batch_size`` windows of one group) at a time, yielding each
        batch's results with their request indices as soon as it is decoded: a caller can publish them, or stop
        between batches for more urgent work."""
        size = max(1, batch_size or self.batch_size)
        groups: dict[tuple[DecodeOptions, str], list[int]] = {}
        for i, req in enumerate(requests):
            hint = req.group_hint if req.options.language is None else ""
            groups.setdefault((req.options, hint), []).append(i)
        for (options, _), idx in groups.items():
            members = [requests[i] for i in idx]
            feats = [_features(self.load(options.model), r.audio) for r in members]
            group = self._group(options, feats)
            for lo in range(0, len(members), size):
                chunk = slice(lo, lo + size)
                results = self._recognise(group, members[chunk], feats[chunk])
                yield list(zip(idx[chunk], results, strict=True))

    def _group(self, opts: DecodeOptions, feats: list[np.ndarray]) -> _Group:
        model = self.load(opts.model)
        multilingual = model.model.is_multilingual
        quick = opts.quick and (opts.language is not None or not multilingual)
        # an English-only model reads English whatever is asked, as faster-whisper does
        language, probability = (opts.language or "en") if multilingual else "en", 1.0
        if multilingual and opts.language is None:
            # as BatchedInferencePipeline does: over the first 30 s of the group's windows laid end to end
            n_mels = model.model.n_mels
            detected, prob, _ = model.detect_language(
                features=np.concatenate([*feats, np.full((n_mels, 1), -1.5, dtype=np.float32)], axis=1),
                language_detection_segments=1, language_detection_threshold=0.5)
            language, probability = detected, float(prob)
        tokenizer = Tokenizer(model.hf_tokenizer, multilingual, task="transcribe", language=language)
        previous = tokenizer.encode(" " + opts.initial_prompt.strip()) if opts.initial_prompt else []
        prompt = model.get_prompt(tokenizer, previous, without_timestamps=True, hotwords=opts.hotwords)
        return _Group(model, tokenizer, prompt, language, probability, opts, quick)

    def _recognise(self, group: _Group, requests: list[Request], feats: list[np.ndarray]) -> list[Result]:
        started = time.monotonic()
        model, opts = group.model, group.options
        if group.quick:
            # a shortened encoder context (see DecodeOptions.quick), and a length cap to match
            frames = max(MIN_CONTEXT_FRAMES, max(f.shape[1] for f in feats) + 100)
            frames = min(3000, frames + (-frames) % 100)
            batch = np.zeros((len(feats), feats[0].shape[0], frames), dtype=np.float32)
            for i, f in enumerate(feats):
                n = min(f.shape[1], frames)
                batch[i, :, :n] = f[:, :n]
            seconds = max(len(r.audio) for r in requests) / RATE
            gen = Generation(opts.beam_size, min(model.max_length, len(group.prompt) + int(10 + 8 * seconds)),
                             opts.temperatures, self.guards, suppress_tokens=[-1])
        else:
            batch = np.stack([pad_or_trim(f) for f in feats])
            gen = Generation(opts.beam_size, model.max_length, opts.temperatures, self.guards)
        encoded = model.model.encode(ctranslate2.StorageView.from_array(batch), to_cpu=False)
        decoded = decode_windows(model, group.tokenizer, encoded, [group.prompt] * len(requests), gen)
        words: list[list[Word]] = [[] for _ in requests]
        if opts.word_timestamps:
            if group.quick:
                words = _quick_words(model, group.tokenizer, encoded, requests, decoded, feats)
            else:
                words = _padded_words(model, group.tokenizer, encoded, requests, decoded)
        elapsed = time.monotonic() - started
        total = sum(max(len(r.audio), 1) for r in requests)
        return [
            Result(text="" if d.silent else d.kept.text.strip(), words=[] if d.silent else words[k],
                   language=group.language, language_probability=round(group.language_probability, 4),
                   avg_logprob=round(d.kept.avg_logprob, 4), no_speech_prob=round(d.kept.no_speech_prob, 4),
                   seconds=elapsed * max(len(requests[k].audio), 1) / total, temperature=d.kept.temperature,
                   attempts=d.attempts)
            for k, d in enumerate(decoded)
        ]


def _features(model: WhisperModel, audio: np.ndarray) -> np.ndarray:
    """Log-mel features of one window, as faster-whisper computes them for a clip (the last frame dropped)."""
    audio = audio.astype(np.float32, copy=False)
    if not len(audio):
        audio = np.zeros(1, dtype=np.float32)
    features: np.ndarray = model.feature_extractor(audio)[..., :-1]
    return features


def _spoken(decoded: list[Decoded]) -> list[int]:
    return [k for k, d in enumerate(decoded) if d.kept.tokens and not d.silent]


def _rows(encoded: ctranslate2.StorageView, rows: list[int], total: int) -> ctranslate2.StorageView:
    if len(rows) == total:
        return encoded
    return ctranslate2.StorageView.from_array(np.ascontiguousarray(np.asarray(encoded)[rows]))


def _padded_words(model: WhisperModel, tokenizer: Tokenizer, encoded: ctranslate2.StorageView,
                  requests: list[Request], decoded: list[Decoded]) -> list[list[Word]]:
    """Word timings by faster-whisper's own alignment and its timing heuristics (``add_word_timestamps``).

    That function reads the windows of a batch as consecutive pieces of one recording: it rounds times to 10 ms
    and it treats a first word that follows a long pause specially, looking at the previous window's last
    word. Each window is therefore placed at a virtual position on the 20 ms grid, 3.2 s after the previous
    one, so that its timings depend only on its own audio, never on its batch company."""
    words: list[list[Word]] = [[] for _ in requests]
    spoken = _spoken(decoded)
    if not spoken:
        return words
    segments: list[list[dict[str, Any]]] = []
    sizes: list[int] = []
    pos = 0  # samples, on the 20 ms grid
    for k in spoken:
        n = max(len(requests[k].audio), 1)
        pos += LEAD
        duration = n / RATE
        seek = pos // HOP
        segments.append([{"seek": seek, "start": seek / model.frames_per_second,
                          "end": seek / model.frames_per_second + duration, "tokens": list(decoded[k].kept.tokens)}])
        sizes.append(int(math.ceil(duration) * model.frames_per_second))
        pos += n + (-n) % ALIGN
    model.add_word_timestamps(segments, tokenizer, _rows(encoded, spoken, len(requests)), sizes,
                              PREPEND_PUNCTUATIONS, APPEND_PUNCTUATIONS, 0.0)
    for segment, k in zip(segments, spoken, strict=True):
        req = requests[k]
        virtual = segment[0]["seek"] / model.frames_per_second
        lo, hi = req.offset, req.offset + max(len(req.audio), 1) / RATE
        for w in segment[0].get("words") or []:
            # word timings are kept inside the window's audio, so windows never overlap
            start = min(max(w["start"] - virtual + lo, lo), hi)
            end = min(max(w["end"] - virtual + lo, start), hi)
            words[k].append(Word(round(float(start), 3), round(float(end), 3), w["word"],
                                 round(float(w["probability"]), 4)))
    return words


def _quick_words(model: WhisperModel, tokenizer: Tokenizer, encoded: ctranslate2.StorageView,
                 requests: list[Request], decoded: list[Decoded], feats: list[np.ndarray]) -> list[list[Word]]:
    """Word timings over a shortened context: alignment only, punctuation attached to the word before it."""
    words: list[list[Word]] = [[] for _ in requests]
    spoken = _spoken(decoded)
    if not spoken:
        return words
    content = max(f.shape[1] for f in feats) // 2  # encoder frames (20 ms) holding audio
    aligned = model.find_alignment(tokenizer, [list(decoded[k].kept.tokens) for k in spoken],
                                   _rows(encoded, spoken, len(requests)), content)
    for k, alignment in zip(spoken, aligned, strict=True):
        req = requests[k]
        words[k] = _merge_punctuation(alignment, req.offset, len(req.audio) / RATE)
    return words


PUNCTUATION = set(".,!?:;\"'»)]}、。，！？")


def _merge_punctuation(aligned: list[dict[str, Any]], offset: float, duration: float) -> list[Word]:
    """Alignment words -> Words in stream time, punctuation attached to the word before it, inside the audio."""
    out: list[Word] = []
    for w in aligned:
        text = w["word"]
        start = min(max(offset + float(w["start"]), offset), offset + duration)
        end = min(max(offset + float(w["end"]), start), offset + duration)
        if out and text.strip() and all(ch in PUNCTUATION for ch in text.strip()) and not text.startswith(" "):
            prev = out[-1]
            out[-1] = Word(prev.start, round(end, 3), prev.word + text, prev.probability)
            continue
        out.append(Word(round(start, 3), round(end, 3), text, round(float(w["probability"]), 4)))
    return out
