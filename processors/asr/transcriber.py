"""Recognise speech segments with faster-whisper.

Segments that share a model and decoding options are recognised together: their audio is laid end to end
and handed to ``BatchedInferencePipeline`` with one clip per segment, so two cores decode several Whisper
windows per pass. Results are mapped back to their segments and to stream time.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from faster_whisper import BatchedInferencePipeline, WhisperModel

from processors.asr.models import ModelRegistry

RATE = 16_000
ALIGN = 320  # samples: 20 ms, one Whisper timestamp step
LEAD = 160 * ALIGN  # 3.2 s of silence before each laid-out segment (see _transcribe_group)


@dataclass(frozen=True)
class DecodeOptions:
    model: str
    language: str | None = None
    beam_size: int = 5
    word_timestamps: bool = True
    initial_prompt: str | None = None
    hotwords: str | None = None


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


class Transcriber:
    def __init__(self, registry: ModelRegistry, *, compute_type: str = "int8", cpu_threads: int = 2,
                 batch_size: int = 8, max_loaded: int = 2) -> None:
        self.registry = registry
        self.compute_type = compute_type
        self.cpu_threads = cpu_threads
        self.batch_size = batch_size
        self.max_loaded = max_loaded
        self._models: OrderedDict[str, tuple[WhisperModel, BatchedInferencePipeline]] = OrderedDict()
        self._lock = threading.Lock()

    def load(self, name: str) -> tuple[WhisperModel, BatchedInferencePipeline]:
        """Load a model once (LRU of ``max_loaded``); raises UnknownModel for names not installed."""
        with self._lock:
            if name in self._models:
                self._models.move_to_end(name)
                return self._models[name]
            info = self.registry.get(name)
            model = WhisperModel(str(info.path), device="cpu", compute_type=self.compute_type,
                                 cpu_threads=self.cpu_threads)
            entry = (model, BatchedInferencePipeline(model))
            self._models[name] = entry
            while len(self._models) > self.max_loaded:
                self._models.popitem(last=False)
            return entry

    def warm_up(self, name: str) -> None:
        """Load a model and run it once on a second of silence, so the first job does not pay for it."""
        self.load(name)
        self.transcribe([Request(np.zeros(RATE, dtype=np.float32), 0.0, DecodeOptions(model=name, beam_size=1))])

    def transcribe(self, requests: Sequence[Request]) -> list[Result]:
        results: list[Result | None] = [None] * len(requests)
        groups: dict[tuple[DecodeOptions, str], list[int]] = {}
        for i, req in enumerate(requests):
            hint = req.group_hint if req.options.language is None else ""
            groups.setdefault((req.options, hint), []).append(i)
        for (options, _), idx in groups.items():
            for i, res in zip(idx, self._transcribe_group([requests[i] for i in idx], options), strict=True):
                results[i] = res
        return [r for r in results if r is not None]

    def _transcribe_group(self, requests: list[Request], opts: DecodeOptions) -> list[Result]:
        model, pipeline = self.load(opts.model)
        started = time.monotonic()
        # Segments are laid out one after another, each after LEAD of silence and on a 20 ms grid, so that a
        # segment's word timings do not depend on what it is batched with: faster-whisper rounds word times
        # (absolute in the laid-out audio) to 10 ms, and its first-word heuristic looks at the time since the
        # previous clip's last word. Only the clips are recognised; the silence between them costs nothing.
        clips, bounds, pieces, pos = [], [], [], 0
        for req in requests:
            audio = req.audio.astype(np.float32, copy=False)
            n = max(len(audio), 1)
            pieces.append(np.zeros(LEAD, dtype=np.float32))
            pos += LEAD
            pieces += [audio, np.zeros(n + (-n) % ALIGN - len(audio), dtype=np.float32)]
            bounds.append((pos, pos + n))
            # +0.5 sample: faster-whisper truncates seconds * rate to an int sample index
            clips.append({"start": (pos + 0.5) / RATE, "end": (pos + n + 0.5) / RATE})
            pos += n + (-n) % ALIGN
        audio = np.concatenate(pieces)
        language = opts.language
        if language is None and not model.model.is_multilingual:
            language = "en"
        segments, info = pipeline.transcribe(
            audio, language=language, clip_timestamps=clips, batch_size=self.batch_size,
            beam_size=opts.beam_size, word_timestamps=opts.word_timestamps,
            initial_prompt=opts.initial_prompt, hotwords=opts.hotwords, without_timestamps=True,
        )
        texts: list[list[str]] = [[] for _ in requests]
        words: list[list[Word]] = [[] for _ in requests]
        logprobs: list[list[float]] = [[] for _ in requests]
        nospeech: list[list[float]] = [[] for _ in requests]
        starts = np.array([b[0] for b in bounds]) / RATE
        for seg in segments:
            mid = (seg.start + seg.end) / 2
            k = int(np.clip(np.searchsorted(starts, mid, side="right") - 1, 0, len(requests) - 1))
            shift = requests[k].offset - starts[k]
            texts[k].append(seg.text.strip())
            logprobs[k].append(seg.avg_logprob)
            nospeech[k].append(seg.no_speech_prob)
            lo = requests[k].offset
            hi = lo + (bounds[k][1] - bounds[k][0]) / RATE
            for w in seg.words or []:
                # word timings are kept inside the segment's audio, so segments never overlap
                start = min(max(w.start + shift, lo), hi)
                end = min(max(w.end + shift, start), hi)
                words[k].append(Word(round(float(start), 3), round(float(end), 3), w.word,
                                     round(float(w.probability), 4)))
        elapsed = time.monotonic() - started
        total = sum(b - a for a, b in bounds)
        return [
            Result(
                text=" ".join(t for t in texts[k] if t),
                words=words[k],
                language=info.language,
                language_probability=round(float(info.language_probability), 4),
                avg_logprob=round(float(np.mean(logprobs[k])), 4) if logprobs[k] else None,
                no_speech_prob=round(float(np.mean(nospeech[k])), 4) if nospeech[k] else None,
                seconds=elapsed * (bounds[k][1] - bounds[k][0]) / total,
            )
            for k in range(len(requests))
        ]
