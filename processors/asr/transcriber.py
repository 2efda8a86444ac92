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
from typing import Any

import ctranslate2
import numpy as np
from faster_whisper import BatchedInferencePipeline, WhisperModel
from faster_whisper.tokenizer import Tokenizer

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
    # Short audio context for short live utterances: the encoder reads max(10 s, the audio + 1 s) instead of
    # Whisper's padded 30 s, about 4 x cheaper; on the LJ read set its WER equals the padded decoding.
    quick: bool = False


MIN_CONTEXT_FRAMES = 1000  # 10 s of 10 ms mel frames: shorter contexts make Whisper repeat itself


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

    def _quick(self, model: WhisperModel, requests: list[Request], opts: DecodeOptions) -> list[Result]:
        """Decoding over a shortened encoder context (see DecodeOptions.quick), with word timings by alignment."""
        started = time.monotonic()
        feats = [model.feature_extractor(r.audio.astype(np.float32, copy=False))[..., :-1] for r in requests]
        frames = max(MIN_CONTEXT_FRAMES, max(f.shape[1] for f in feats) + 100)
        frames = min(3000, frames + (-frames) % 100)
        batch = np.zeros((len(feats), feats[0].shape[0], frames), dtype=np.float32)
        for i, f in enumerate(feats):
            n = min(f.shape[1], frames)
            batch[i, :, :n] = f[:, :n]
        language = opts.language or "en"
        tokenizer = Tokenizer(model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language=language)
        prompt = [*tokenizer.sot_sequence, tokenizer.no_timestamps]
        seconds = max(len(r.audio) for r in requests) / RATE
        encoded = model.model.encode(ctranslate2.StorageView.from_array(batch), to_cpu=False)
        out = model.model.generate(encoded, [prompt] * len(requests), beam_size=opts.beam_size, suppress_blank=True,
                                   max_length=len(prompt) + int(10 + 8 * seconds), return_scores=True)
        tokens = [[t for t in o.sequences_ids[0] if t < tokenizer.eot] for o in out]
        words: list[list[Word]] = [[] for _ in requests]
        if opts.word_timestamps and any(tokens):
            content = max(f.shape[1] for f in feats) // 2  # encoder frames (20 ms) holding audio
            aligned = model.find_alignment(tokenizer, [t or [tokenizer.eot] for t in tokens], encoded, content)
            for i, req in enumerate(requests):
                if tokens[i]:
                    words[i] = _merge_punctuation(aligned[i], req.offset, len(req.audio) / RATE)
        elapsed = time.monotonic() - started
        results = []
        for i, o in enumerate(out):
            logprob = float(o.scores[0]) / max(1, len(tokens[i]) + 1) if o.scores else None
            results.append(Result(text=tokenizer.decode(tokens[i]).strip(), words=words[i], language=language,
                                  language_probability=1.0,
                                  avg_logprob=round(logprob, 4) if logprob is not None else None,
                                  seconds=elapsed / len(requests)))
        return results

    def warm_up(self, name: str) -> None:
        """Load a model and run it once on a second of silence, so the first job does not pay for it."""
        self.load(name)
        silence = np.zeros(RATE, dtype=np.float32)
        self.transcribe([Request(silence, 0.0, DecodeOptions(model=name, beam_size=1)),
                         Request(silence, 0.0, DecodeOptions(model=name, beam_size=1, quick=True))])

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
        if opts.quick and (opts.language or not model.model.is_multilingual):
            return self._quick(model, requests, opts)
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
