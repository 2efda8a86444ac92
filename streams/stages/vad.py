"""VAD stage: audio.chunks lanes (high first) -> audio.speech (the stream's lane: .high, normal or .low).

Each stream's chunks are resampled to 16 kHz, mixed to mono (or split per channel) and fed to a
``processors.vad.Segmenter``. The segmenter's state and the audio it still needs live in the stage's
changelog, keyed by stream, so a worker that dies mid-utterance resumes it exactly on restart. Chunks are
recognised by their per-stream ``seq``: a redelivered chunk is skipped.

An upload's chunks come from ingest with every ``seq`` from 0, so a chunk missing from that run of numbers (or an
audio piece missing from the changelog) was lost in transit: a broker that loses records it acknowledged (Tansu
killed with ``kill -9``) is the one way seen. Finding speech around the hole would complete the job without the
words that were in it, so the stream is given up instead: no END is published, the stage reports why, and the
reconciler runs the job again from its stored recording (``streamscribe.recovery``). Live and producer streams
have no stored recording to run again from; there a hole is filled with silence, so the time stays right.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from foundation.events import SpeechPiece, SpeechSegment
from foundation.logs import get_logger
from foundation.settings import Settings, VadSettings
from processors.audio.pcm import PIPELINE_RATE, StreamResampler, decode_pcm, mix_down
from processors.vad.segmenter import Cut, Segmenter, SegmenterConfig, SegmenterState
from streams.kafka.lanes import speech_lane
from streams.kafka.topics import CHUNK_LANES, SPEECH_LANES
from streams.runtime.metrics import AUDIO_SECONDS
from streams.runtime.stage import BaseStage, Context, Record, StageSpec

log = get_logger(__name__)

# Sources whose chunks carry every seq from 0 and whose recording is stored, so a job can run again from it.
REPLAYABLE_SOURCES = frozenset({"upload"})


@dataclass
class StreamMeta:
    stream_id: str
    job_id: str | None
    revision: int
    options: dict[str, str]
    source: str
    mode: str  # merge | utterance
    split: bool
    seq: int = -1
    source_samples: int = 0  # per channel, at the source rate
    finals: int = 0
    next_report: float = 0.1
    channels: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> segmenter state + pieces
    ended: bool = False

    def dumps(self) -> bytes:
        return json.dumps(self.__dict__, separators=(",", ":")).encode()

    @classmethod
    def loads(cls, raw: bytes) -> StreamMeta:
        return cls(**json.loads(raw))


def resolve_diarization(options: dict[str, str], channels: int) -> str:
    """auto -> channels when the audio has distinct channels (one party each), acoustic otherwise."""
    requested = options.get("diarize", "auto")
    distinct = channels > 1 and options.get("channels_identical") != "true"
    if requested == "auto":
        return "channels" if distinct else "acoustic"
    return requested if requested in ("channels", "acoustic", "off") else "off"


def segmenter_config(s: VadSettings, mode: str) -> SegmenterConfig:
    """How the stage cuts a stream: ``merge`` (uploads: windows of utterances) or ``utterance`` (live)."""
    if mode == "merge":
        return SegmenterConfig(aggressiveness=s.aggressiveness, frame_ms=s.frame_ms, end_silence_ms=s.end_silence_ms,
                               pad_ms=s.pad_ms, max_segment_s=s.max_segment_s, max_window_span_s=s.max_window_span_s,
                               partial_interval_s=s.partial_interval_s, mode="merge")
    return SegmenterConfig(aggressiveness=s.aggressiveness, frame_ms=s.frame_ms,
                           end_silence_ms=s.utterance_end_silence_ms, pad_ms=s.pad_ms, max_segment_s=s.max_segment_s,
                           partial_interval_s=s.partial_interval_s, mode="utterance")


def stream_key(stream_id: str, revision: int) -> str:
    return f"{stream_id}#{revision}"


def _piece(start: int, pcm: np.ndarray) -> bytes:
    return struct.pack(">q", start) + pcm.astype("<i2").tobytes()


def _unpiece(raw: bytes) -> tuple[int, np.ndarray]:
    (start,) = struct.unpack(">q", raw[:8])
    return start, np.frombuffer(raw[8:], dtype="<i2").astype(np.int16)


class VadStage(BaseStage):
    def __init__(self, settings: VadSettings) -> None:
        self.settings = settings
        self._cache: dict[str, tuple[int, dict[str, Segmenter]]] = {}
        # Resamplers for sources not at 16 kHz (telephony, producers) live in memory only: after a restart a
        # fresh one continues the stream (a few samples of filter history differ at that point, no more).
        self._resamplers: dict[tuple[str, str], StreamResampler] = {}

    # -- Stage protocol ------------------------------------------------------------------------------
    def forget(self, record: Record) -> None:
        v = record.value
        key = stream_key(v.get("stream_id", ""), v.get("revision", 1))
        self._cache.pop(key, None)
        for k in [k for k in self._resamplers if k[0] == key]:
            del self._resamplers[k]

    def _resampler(self, key: str, channel: str, rate: int) -> StreamResampler:
        r = self._resamplers.get((key, channel))
        if r is None or r.rate != rate:
            r = self._resamplers[(key, channel)] = StreamResampler(rate)
        return r

    def close(self) -> None:
        self._cache.clear()

    def handle(self, record: Record, ctx: Context) -> None:
        chunk = record.value
        key = stream_key(chunk["stream_id"], chunk["revision"])
        raw = ctx.get(key)
        meta = StreamMeta.loads(raw) if raw else None
        if meta is not None and (meta.ended or chunk["seq"] <= meta.seq):
            return  # redelivered
        if meta is None:
            meta = self._open(chunk, ctx)
        if chunk["seq"] != meta.seq + 1 and meta.source in REPLAYABLE_SOURCES:
            self._give_up(key, meta, chunk, f"chunks {meta.seq + 1} to {chunk['seq'] - 1} never arrived", ctx)
            return
        segmenters = self._segmenters(key, meta, ctx)
        if segmenters is None:
            self._give_up(key, meta, chunk, "audio the stage kept for the stream is missing from its changelog", ctx)
            return

        frames = decode_pcm(chunk["data"], chunk["channels"], chunk["encoding"])
        gap = chunk["start_sample"] - meta.source_samples
        if gap > 0:  # the producer skipped audio: keep time straight with silence
            log.warning("gap in stream", stream_id=meta.stream_id, samples=gap)
            frames = np.concatenate([np.zeros((gap, frames.shape[1]), dtype=np.int16), frames])
        elif gap < 0:
            frames = frames[-gap:]
        meta.source_samples += len(frames)
        meta.seq = chunk["seq"]
        AUDIO_SECONDS.labels("vad").inc(len(frames) / chunk["sample_rate"])

        channels = {"m": mix_down(frames)} if not meta.split else {str(c): frames[:, c] for c in range(frames.shape[1])}
        cuts: list[tuple[str, Cut]] = []
        for name, mono in channels.items():
            pcm = self._resampler(key, name, chunk["sample_rate"])(mono, last=chunk["end_of_stream"])
            seg = segmenters.setdefault(name, self._new_segmenter(meta))
            ch = meta.channels.setdefault(name, {"pieces": []})
            ctx.put(f"{key}/pcm/{name}/{chunk['seq']:012d}", _piece(seg.st.total, pcm))
            ch["pieces"].append([chunk["seq"], seg.st.total, len(pcm)])
            cuts += [(name, c) for c in seg.feed(pcm)]
            if chunk["end_of_stream"]:
                cuts += [(name, c) for c in seg.finish()]
            self._trim(key, name, seg, ch, ctx)
            ch["state"] = seg.st.to_json()

        for name, cut in cuts:
            self._emit_cut(meta, name, cut, ctx)

        duration = self._duration(meta, chunk)
        if chunk["end_of_stream"]:
            self._end(key, meta, chunk, duration, ctx)
        else:
            self._report(meta, duration, ctx)
        ctx.put(key, meta.dumps())
        self._cache[key] = (meta.seq, segmenters)

    # -- helpers -------------------------------------------------------------------------------------
    def _open(self, chunk: dict[str, Any], ctx: Context) -> StreamMeta:
        options = dict(chunk["options"])
        mode = options.get("segmentation") or ("merge" if chunk["source"] == "upload" else "utterance")
        options["diarize"] = resolve_diarization(options, chunk["channels"])
        split = options["diarize"] == "channels" or (options.get("channel_mode") == "split" and chunk["channels"] > 1)
        if chunk["seq"] != 0:
            log.warning("stream joined after its first chunk", stream_id=chunk["stream_id"], seq=chunk["seq"])
        meta = StreamMeta(stream_id=chunk["stream_id"], job_id=chunk["job_id"], revision=chunk["revision"],
                          options=options, source=chunk["source"], mode=mode, split=split,
                          source_samples=chunk["start_sample"] if chunk["seq"] != 0 else 0)
        ctx.job_event(chunk, "RUNNING", progress=0.0, message="finding speech")
        return meta

    def _config(self, meta: StreamMeta) -> SegmenterConfig:
        return segmenter_config(self.settings, "merge" if meta.mode == "merge" else "utterance")

    def _new_segmenter(self, meta: StreamMeta) -> Segmenter:
        return Segmenter(self._config(meta))

    def _segmenters(self, key: str, meta: StreamMeta, ctx: Context) -> dict[str, Segmenter] | None:
        """The stream's segmenters, from memory or rebuilt from the changelog; None when an upload's audio piece
        is missing there (lost in transit)."""
        cached = self._cache.get(key)
        if cached is not None and cached[0] == meta.seq:
            return cached[1]
        # rebuild from the changelog: segmenter state plus the audio pieces it still needs
        out: dict[str, Segmenter] = {}
        for name, ch in meta.channels.items():
            state = SegmenterState.from_json(ch["state"])
            stored = [ctx.get(f"{key}/pcm/{name}/{seq:012d}") for seq, _, _ in ch["pieces"]]
            if None in stored and meta.source in REPLAYABLE_SOURCES:
                return None
            pieces = [_unpiece(raw) for raw in stored if raw is not None]
            start = pieces[0][0] if pieces else state.total
            buf = np.concatenate([p for _, p in pieces]) if pieces else np.zeros(0, dtype=np.int16)
            out[name] = Segmenter(self._config(meta), state, buf, start)
        return out

    def _trim(self, key: str, name: str, seg: Segmenter, ch: dict[str, Any], ctx: Context) -> None:
        keep = seg.retain_from()
        pieces = ch["pieces"]
        while pieces and pieces[0][1] + pieces[0][2] <= keep:
            seq = pieces.pop(0)[0]
            ctx.put(f"{key}/pcm/{name}/{seq:012d}", None)
        seg.trim(pieces[0][1] if pieces else seg.st.total)

    def _emit_cut(self, meta: StreamMeta, name: str, cut: Cut, ctx: Context) -> None:
        channel = None if name == "m" else int(name)
        index = meta.finals
        if cut.kind == "FINAL":
            meta.finals += 1
        ctx.emit(speech_lane(meta.options, meta.source), SpeechSegment(
            stream_id=meta.stream_id, job_id=meta.job_id, revision=meta.revision, kind=cut.kind,
            segment_id=f"{meta.stream_id}:{name}:{round(cut.start_s * 1000):09d}", index=index, channel=channel,
            start=round(cut.start_s, 3), end=round(cut.end_s, 3), sample_rate=PIPELINE_RATE,
            audio=cut.audio.astype("<i2").tobytes(), options=meta.options, source=meta.source,
            speech=[SpeechPiece(start=a / PIPELINE_RATE, end=b / PIPELINE_RATE) for a, b in cut.pieces]
            if cut.pieces else None))

    @staticmethod
    def _duration(meta: StreamMeta, chunk: dict[str, Any]) -> float:
        return meta.source_samples / chunk["sample_rate"]

    def _report(self, meta: StreamMeta, position: float, ctx: Context) -> None:
        total = float(meta.options.get("duration") or 0)
        if total <= 0 or position / total < meta.next_report:
            return
        meta.next_report = min(1.0, (int(position / total * 10) + 1) / 10)
        ctx.job_event(meta.__dict__, "RUNNING", progress=min(1.0, position / total),
                      message=f"{meta.finals} speech segments so far")

    def _give_up(self, key: str, meta: StreamMeta, chunk: dict[str, Any], what: str, ctx: Context) -> None:
        """An upload whose audio was lost in transit: no END (nothing downstream completes it without the lost
        words); the reconciler runs the job again from its stored recording once nothing moves it on."""
        reason = (f"audio lost in transit ({what}, at chunk {chunk['seq']}); finding speech stopped, and the "
                  "job runs again from its stored recording")
        log.error("audio lost in transit; stream given up", stream_id=meta.stream_id, job_id=meta.job_id,
                  revision=meta.revision, seq=chunk["seq"], last_seq=meta.seq, reason=what)
        ctx.job_event(meta.__dict__, "RUNNING", message=reason)
        self._close_stream(key, meta, ctx)
        ctx.put(key, meta.dumps())
        self._cache.pop(key, None)

    def _end(self, key: str, meta: StreamMeta, chunk: dict[str, Any], duration: float, ctx: Context) -> None:
        error = chunk.get("error")
        ctx.emit(speech_lane(meta.options, meta.source), SpeechSegment(
            stream_id=meta.stream_id, job_id=meta.job_id, revision=meta.revision, kind="END",
            segment_id=f"{meta.stream_id}:end", index=meta.finals, start=round(duration, 3),
            end=round(duration, 3), sample_rate=PIPELINE_RATE, audio=b"", options=meta.options, source=meta.source,
            segment_count=meta.finals, duration=round(duration, 3), error=error))
        if not error:
            ctx.job_event(meta.__dict__, "COMPLETED", progress=1.0,
                          message=f"{meta.finals} speech segments in {duration:.1f} s of audio")
        self._close_stream(key, meta, ctx)

    def _close_stream(self, key: str, meta: StreamMeta, ctx: Context) -> None:
        """The stream is over (ended or given up): its kept audio and resamplers go; later chunks are skipped."""
        for name, ch in meta.channels.items():
            for seq, _, _ in ch["pieces"]:
                ctx.put(f"{key}/pcm/{name}/{seq:012d}", None)
        meta.channels = {}
        meta.ended = True
        for k in [k for k in self._resamplers if k[0] == key]:
            del self._resamplers[k]


def build(settings: Settings) -> VadStage:
    return VadStage(settings.vad)


SPEC = StageSpec(name="vad", doc="cuts each stream's audio into speech segments (webrtcvad), in the stream's lane",
                 inputs=CHUNK_LANES, outputs=SPEECH_LANES, lanes=CHUNK_LANES, stateful=True, build=build, batch=200)
