"""Ingest stage: ingest.requests -> audio.chunks (and, for a partial replay, the stored results it reuses).

Reads a stored recording (the claim check in the request), decodes it and publishes it as a stream of
<= 1 s chunks with contiguous ``seq``. A file that cannot be decoded fails its own job: the stream is closed
with an end-of-stream chunk carrying the reason, and the job gets a FAILED event; other jobs keep flowing.
A worker that dies mid-file re-publishes the file from the start on restart; VAD skips the seqs it has seen.

A revision that runs only some stages (``foundation.revision``; e.g. re-diarization runs diarization and
post-processing) gets the results of the others from the revision it names (``source_revision``), read back
from PostgreSQL: its recognised words as ``asr.segments`` (a FINAL per recognised window, then END; the asr
stage leaves such a revision alone) when recognition does not run, its speaker turns as a FINAL
``speaker.turns`` when diarization does not. The audio is decoded only if a stage that listens to it runs.
Ids are the stored ones, so a redelivered request publishes the same events again and post-processing skips
them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from connectors.ingest.decode import TARGET_RATE, DecodeError, channels_identical, decode_chunks, probe
from connectors.storage.base import ObjectNotFound, SyncStore
from connectors.storage.crypto import DecryptionError
from connectors.storage.factory import store_from_settings
from connectors.storage.spool import decrypted, process_dir
from foundation.events import AsrSegment, AudioChunk, SpeakerTurns, Word
from foundation.events import Turn as TurnRecord
from foundation.logs import get_logger
from foundation.revision import needs_audio, runs, source_revision
from foundation.settings import Settings
from processors.post.restore import windows_from_segments
from repositories.stored_results import (
    TRANSIENT_STORED_ERRORS,
    NoStoredResults,
    StoredResults,
    StoredRevision,
    stored_results,
)
from streams.kafka.lanes import chunk_lane
from streams.kafka.topics import ASR_SEGMENTS, CHUNK_LANES, INGEST_REQUESTS, SPEAKER_TURNS
from streams.runtime.stage import BaseStage, Context, Record, StageSpec
from streams.stages.vad import resolve_diarization

log = get_logger(__name__)


class IngestStage(BaseStage):
    def __init__(self, store: SyncStore, spool: Path, chunk_seconds: float = 1.0,
                 stored: StoredResults | None = None) -> None:
        self.spool = spool
        self.store = store
        self.chunk_seconds = chunk_seconds
        self.stored = stored
        self.transient_errors = TRANSIENT_STORED_ERRORS  # the database is away: retried after a restart

    def handle(self, record: Record, ctx: Context) -> None:
        req = record.value
        options = dict(req["options"])
        log.info("ingesting", job_id=req["job_id"], stream_id=req["stream_id"], object_key=req["object_key"],
                 stages=options.get("stages") or "all")
        reused: StoredRevision | None = None
        if not (runs(options, "asr") and runs(options, "diarization")):
            reused = self._stored(req, options, ctx)
            if reused is None:
                return
        channels = 1
        if needs_audio(options):
            channels = self._decode(req, options, ctx)
            if channels == 0:
                return  # the stream failed; its end-of-stream chunk says why
        if reused is not None:
            options["diarize"] = self._diarize(options, channels, reused)
            self._reuse(req, options, reused, ctx)

    # -- the recording ---------------------------------------------------------------------------------
    def _decode(self, req: dict[str, Any], options: dict[str, str], ctx: Context) -> int:
        """Publish the recording as chunks; the number of channels, or 0 if it could not be decoded."""
        ctx.job_event(req, "RUNNING", progress=0.0, message="decoding")
        seq = 0
        samples = 0
        channels = 1
        error: str | None = None
        try:
            with decrypted(self.store, req["object_key"], self.spool) as path:  # no plaintext on disk
                info = probe(path)
                channels = max(1, info.channels)
                if info.duration:
                    options["duration"] = f"{info.duration:.3f}"
                if info.channels > 1:
                    options["channels_identical"] = str(channels_identical(path)).lower()
                options.setdefault("codec", info.codec)
                for chunk in decode_chunks(path, self.chunk_seconds):
                    channels = chunk.frames.shape[1]
                    self._chunk(ctx, req, seq, chunk.start_sample, channels, chunk.frames.tobytes(), options, False)
                    seq += 1
                    samples = chunk.start_sample + len(chunk.frames)
                    ctx.drain()
        except ObjectNotFound:
            error = "the uploaded file is missing from storage"
        except DecryptionError as exc:
            error = f"the stored file could not be decrypted ({type(exc).__name__}); see docs/storage.md"
        except DecodeError as exc:
            error = str(exc)
        self._chunk(ctx, req, seq, samples, channels, b"", options, True, error)
        if error:
            ctx.job_event(req, "FAILED", error=error)
            return 0
        ctx.job_event(req, "COMPLETED", progress=1.0, message=f"decoded {samples / TARGET_RATE:.1f} s",
                      details={"duration": f"{samples / TARGET_RATE:.3f}", "channels": str(channels)})
        return channels

    @staticmethod
    def _chunk(ctx: Context, req: dict[str, Any], seq: int, start: int, channels: int, data: bytes,
               options: dict[str, str], last: bool, error: str | None = None) -> None:
        ctx.emit(chunk_lane(options, "upload"), AudioChunk(
            stream_id=req["stream_id"], job_id=req["job_id"], revision=req["revision"], seq=seq, start_sample=start,
            sample_rate=TARGET_RATE, channels=channels, encoding="PCM_S16LE", data=data, end_of_stream=last,
            error=error, options=options if seq == 0 else {}, source="upload"))

    # -- the results a partial replay reuses -----------------------------------------------------------
    def _stored(self, req: dict[str, Any], options: dict[str, str], ctx: Context) -> StoredRevision | None:
        source = source_revision(options)
        error = None
        if self.stored is None or source is None:
            error = "a replay of some stages needs source_revision, the revision whose results it reuses"
        else:
            try:
                return self.stored(req["job_id"], source)
            except NoStoredResults as exc:
                error = str(exc)
        ctx.job_event(req, "FAILED", error=error)
        return None

    @staticmethod
    def _diarize(options: dict[str, str], channels: int, reused: StoredRevision) -> str:
        """The diarization mode post-processing works in, as VAD resolves it for the stages that run; with no
        audio decoded, from the stored speakers (channels, acoustic or none)."""
        if needs_audio(options):
            return resolve_diarization(options, channels)
        if options.get("diarize") == "off" or not reused.turns:
            return "off"
        return "channels" if any(t["speaker"].startswith("CHANNEL_") for t in reused.turns) else "acoustic"

    def _reuse(self, req: dict[str, Any], options: dict[str, str], reused: StoredRevision, ctx: Context) -> None:
        source = str(source_revision(options))
        common = {"stream_id": req["stream_id"], "job_id": req["job_id"], "revision": req["revision"]}
        if not runs(options, "diarization") and options["diarize"] != "off":
            mode = options["diarize"]
            ctx.emit(SPEAKER_TURNS, SpeakerTurns(
                **common, kind="FINAL", mode=mode, backend=f"revision {source}", options=options,
                turns=[TurnRecord(start=t["start"], end=t["end"], speaker=t["speaker"]) for t in reused.turns],
                speakers=reused.speakers))
        if runs(options, "asr"):
            if not needs_audio(options):
                ctx.job_event(req, "COMPLETED", message=f"reusing the speaker turns of revision {source}")
            return
        windows = windows_from_segments(reused.segments)
        for w in windows:
            ctx.emit(ASR_SEGMENTS, AsrSegment(
                **common, kind="FINAL", segment_id=w.segment_id, index=w.index, channel=w.channel, start=w.start,
                end=w.end, text=w.text, words=[Word(start=x["start"], end=x["end"], word=x["word"],
                                                    probability=x["probability"]) for x in w.words],
                language=reused.language, model=reused.model, pipeline_version=reused.pipeline_version,
                options=options, source="upload"))
        duration = reused.duration or 0.0
        ctx.emit(ASR_SEGMENTS, AsrSegment(
            **common, kind="END", segment_id=f"{req['stream_id']}:end", index=len(windows), start=duration,
            end=duration, model=reused.model, pipeline_version=reused.pipeline_version, options=options,
            source="upload", segment_count=len(windows), duration=reused.duration))
        ctx.job_event(req, "RUNNING" if needs_audio(options) else "COMPLETED", progress=None,
                      message=f"reusing the recognition of revision {source} ({len(windows)} windows)")


def build(settings: Settings) -> IngestStage:
    return IngestStage(SyncStore(store_from_settings(settings)), process_dir(settings.spool_root, "ingest"),
                       settings.chunk_seconds, stored_results(settings.database_url))


# one file at a time: a file is thousands of chunks, drained as they are decoded
SPEC = StageSpec(name="ingest", doc="decodes stored recordings (claim checks) into audio chunks of at most 1 s; for a "
                 "partial replay, publishes the stored results of the stages it does not run",
                 inputs=(INGEST_REQUESTS,), outputs=(*CHUNK_LANES, ASR_SEGMENTS, SPEAKER_TURNS), build=build, batch=1)
