"""ASR stage: audio.speech lanes (high first) -> asr.segments.

Stateless: every speech segment carries its own audio, so a restarted worker simply re-recognises what was
not committed, and the result keeps the segment's deterministic id. Segments of a consumed batch are
recognised together; per-stream order is kept on output (END follows the stream's last segment). A revision
that does not run recognition (a re-diarization, ``foundation.revision``) is left alone: ingest publishes its
stored words instead.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from foundation.events import AsrSegment, Word
from foundation.logs import get_logger
from foundation.revision import runs
from foundation.settings import AsrSettings, Settings
from processors.asr.models import ModelRegistry, UnknownModel
from processors.asr.transcriber import DecodeOptions, Request, Result, Transcriber
from processors.asr.transcriber import Word as RecognisedWord
from processors.audio.pcm import decode_pcm, to_float
from processors.audio.timeline import Packed, pack
from streams.kafka.topics import ASR_SEGMENTS, SPEECH_LANES
from streams.runtime.metrics import AUDIO_SECONDS, REAL_TIME_FACTOR
from streams.runtime.stage import BaseStage, Context, Record, StageSpec

log = get_logger(__name__)


class AsrStage(BaseStage):
    transient_errors: tuple[type[BaseException], ...] = (MemoryError,)

    def __init__(self, settings: AsrSettings, transcriber: Transcriber, pipeline_version: str) -> None:
        self.settings = settings
        self.transcriber = transcriber
        self.pipeline_version = pipeline_version

    def decode_options(self, options: dict[str, str], partial: bool = False) -> DecodeOptions:
        """Finals decode with the job's settings; partials (which a later partial or the final replaces) use
        greedy search without word timings, to answer quickly."""
        language = options.get("language") or None
        return DecodeOptions(
            model=options.get("model") or self.settings.default_model,
            language=None if language in (None, "auto") else language,
            beam_size=1 if partial else int(options.get("beam_size") or self.settings.beam_size),
            word_timestamps=self.settings.word_timestamps and not partial,
            quick=partial or options.get("segmentation") == "utterance",
            initial_prompt=options.get("initial_prompt") or None,
            hotwords=options.get("hotwords") or None,
        )

    def handle(self, record: Record, ctx: Context) -> None:
        self.handle_batch([record], ctx)

    def handle_batch(self, records: Sequence[Record], ctx: Context) -> bool:
        """Finals (and ENDs) first, published at once; then the partials still worth answering: the newest of
        each segment, not older than ``partial_max_age_s``, of a stream that has not ended in this batch, at most
        ``partials_per_batch`` of them."""
        records = [r for r in records if runs(r.value["options"], "asr")]
        latest: dict[str, int] = {}
        ended: set[str] = set()
        for i, r in enumerate(records):
            if r.value["kind"] == "END":
                ended.add(r.value["stream_id"])
            else:
                latest[r.value["segment_id"]] = i
        now = datetime.now(UTC)
        finals = [i for i, r in enumerate(records) if r.value["kind"] == "END"
                  or (r.value["kind"] == "FINAL" and latest[r.value["segment_id"]] == i)]
        partials = [i for i, r in enumerate(records) if r.value["kind"] == "PARTIAL" and latest.get(
            r.value["segment_id"]) == i and r.value["stream_id"] not in ended and _age(r.value, now)
            <= self.settings.partial_max_age_s]
        # a bounded share of each batch goes to partials (the longest-waiting first), so finals never queue
        # behind a long run of partials; the rest are dropped, their streams send newer ones
        waiting = sorted(partials, key=lambda i: -_age(records[i].value, now))
        partials = sorted(waiting[: self.settings.partials_per_batch])
        started = time.monotonic()
        self._answer(records, finals, ctx)
        took = time.monotonic() - started
        if partials:
            ctx.drain()  # finals go out before the partials are computed
            self._answer(records, partials, ctx)
        log.debug("asr batch", events=len(records), finals=len(finals), partials=len(partials),
                  dropped=len(waiting) - len(partials), finals_s=round(took, 3),
                  total_s=round(time.monotonic() - started, 3))
        return True

    def _answer(self, records: Sequence[Record], indices: list[int], ctx: Context) -> None:
        results, failures = self._recognise(records, indices)
        progress: dict[str, dict[str, Any]] = {}
        for i in indices:
            seg = records[i].value
            if seg["kind"] == "END":
                self._emit(ctx, seg, None, error=seg.get("error"))
                if not seg.get("error"):
                    ctx.job_event(seg, "COMPLETED", progress=1.0,
                                  message=f"recognised {seg.get('segment_count') or 0} segments")
                continue
            if i in failures:
                self._emit(ctx, seg, None, error=failures[i])
                ctx.job_event(seg, "FAILED", error=failures[i])
            elif i in results:
                self._emit(ctx, seg, results[i])
                if seg["kind"] == "FINAL":
                    progress[seg["stream_id"]] = seg
                    if results[i].attempts > 1:  # its words were sampled: another run may give others
                        log.info("window decoded by sampling", segment_id=seg["segment_id"],
                                 temperature=results[i].temperature, attempts=results[i].attempts)
        for seg in progress.values():
            total = float(seg["options"].get("duration") or 0)
            ctx.job_event(seg, "RUNNING", progress=min(1.0, seg["end"] / total) if total > 0 else None,
                          message=f"recognised {seg['index'] + 1} segments")

    def _recognise(self, records: Sequence[Record],
                   indices: list[int]) -> tuple[dict[int, Result], dict[int, str]]:
        """Results of the segments at ``indices`` that name a model this worker has, and why the others failed."""
        todo: list[int] = []
        requests: list[Request] = []
        failures: dict[int, str] = {}
        packed: dict[int, Packed] = {}
        for i in indices:
            seg = records[i].value
            if seg["kind"] == "END":
                continue
            try:
                opts = self.decode_options(seg["options"], partial=seg["kind"] == "PARTIAL")
                self.transcriber.registry.get(opts.model)
            except (UnknownModel, ValueError) as exc:
                failures[i] = str(exc)
                continue
            todo.append(i)
            request, timeline = _request(seg, opts)
            requests.append(request)
            if timeline is not None:
                packed[i] = timeline
        results = dict(zip(todo, self.transcriber.transcribe(requests), strict=True)) if requests else {}
        for i, timeline in packed.items():
            results[i] = in_stream_time(results[i], timeline)
        for i, req in zip(todo, requests, strict=True):
            seconds = len(req.audio) / 16_000
            kind = records[i].value["kind"].lower()
            if kind == "final":
                AUDIO_SECONDS.labels("asr").inc(seconds)
            if seconds > 0:
                REAL_TIME_FACTOR.labels(kind).observe(results[i].seconds / seconds)
        return results, failures

    def _emit(self, ctx: Context, seg: dict[str, Any], res: Result | None, error: str | None = None) -> None:
        opts = seg["options"]
        ctx.emit(ASR_SEGMENTS, AsrSegment(
            stream_id=seg["stream_id"], job_id=seg["job_id"], revision=seg["revision"], kind=seg["kind"],
            segment_id=seg["segment_id"], index=seg["index"], channel=seg["channel"], start=seg["start"],
            end=seg["end"], text=res.text if res else "",
            words=[Word(start=w.start, end=w.end, word=w.word, probability=w.probability) for w in res.words]
            if res else [],
            language=res.language if res else None,
            language_probability=res.language_probability if res else None,
            avg_logprob=res.avg_logprob if res else None, no_speech_prob=res.no_speech_prob if res else None,
            model=opts.get("model") or self.settings.default_model, pipeline_version=self.pipeline_version,
            options=opts, source=seg["source"], segment_count=seg.get("segment_count"),
            duration=seg.get("duration"), error=error, processing_seconds=round(res.seconds, 4) if res else None))


def _request(seg: dict[str, Any], opts: DecodeOptions) -> tuple[Request, Packed | None]:
    """What to recognise of a speech segment: its audio, or what a long window lists to read of it, laid end to
    end (with the timeline that maps their word timings back to the stream)."""
    if seg["sample_rate"] != 16_000:
        raise ValueError(f"speech segments must be 16 kHz, got {seg['sample_rate']}")
    audio = to_float(decode_pcm(seg["audio"], 1)[:, 0])
    if not seg.get("speech"):
        return Request(audio, seg["start"], opts, group_hint=seg["stream_id"]), None
    timeline = pack(audio, seg["start"], [(piece["start"], piece["end"]) for piece in seg["speech"]])
    return Request(timeline.audio, 0.0, opts, group_hint=seg["stream_id"]), timeline


def in_stream_time(result: Result, timeline: Packed) -> Result:
    """A packed window's result with its word timings where the words were said in the stream."""
    words = [RecognisedWord(round(timeline.to_stream(w.start), 3), round(timeline.to_stream(w.end, end=True), 3),
                            w.word, w.probability) for w in result.words]
    return replace(result, words=words)


def _age(seg: dict[str, Any], now: datetime) -> float:
    produced = seg.get("produced_at")
    return (now - produced).total_seconds() if isinstance(produced, datetime) else 0.0


# Below the smallest speech segment there is: one 30 ms frame of 16-bit audio (VAD drops shorter ones), so only a
# stream's END (no audio) is smaller; the fair pool hands an END out with the window before it.
END_BYTES = 960


def build(settings: Settings) -> AsrStage:
    a = settings.asr
    transcriber = Transcriber(ModelRegistry(a.model_paths, settings.model_cache), compute_type=a.compute_type,
                              cpu_threads=a.cpu_threads, batch_size=a.batch_size, max_loaded=a.loaded_models)
    transcriber.warm_up(a.default_model)  # load and warm the default model once per worker, not per job
    return AsrStage(a, transcriber, settings.pipeline_version)


def consume_batch(settings: Settings) -> int:
    """STREAMSCRIBE_ASR__CONSUME_BATCH"""
    return settings.asr.consume_batch


def lookahead(settings: Settings) -> int:
    """STREAMSCRIBE_ASR__FAIR_LOOKAHEAD_MB"""
    return settings.asr.fair_lookahead_mb * 2**20


SPEC = StageSpec(name="asr", doc="recognises speech segments with faster-whisper, batched across streams",
                 inputs=SPEECH_LANES, outputs=(ASR_SEGMENTS,), lanes=SPEECH_LANES, build=build,
                 batch=consume_batch, lookahead=lookahead, free_bytes=END_BYTES)
