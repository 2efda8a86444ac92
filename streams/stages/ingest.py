"""Ingest stage: ingest.requests -> audio.chunks.

Reads a stored recording (the claim check in the request), decodes it and publishes it as a stream of
<= 1 s chunks with contiguous ``seq``. A file that cannot be decoded fails its own job: the stream is closed
with an end-of-stream chunk carrying the reason, and the job gets a FAILED event; other jobs keep flowing.
A worker that dies mid-file re-publishes the file from the start on restart; VAD skips the seqs it has seen.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from connectors.ingest.decode import TARGET_RATE, DecodeError, channels_identical, decode_chunks, probe
from connectors.storage.base import ObjectNotFound, SyncStore
from connectors.storage.crypto import DecryptionError
from connectors.storage.factory import store_from_settings
from connectors.storage.spool import decrypted, process_dir
from foundation.events import AudioChunk
from foundation.logs import get_logger
from foundation.settings import Settings
from streams.kafka.lanes import chunk_lane
from streams.kafka.topics import CHUNK_LANES, INGEST_REQUESTS
from streams.runtime.stage import BaseStage, Context, Record, StageSpec

log = get_logger(__name__)


class IngestStage(BaseStage):
    def __init__(self, store: SyncStore, spool: Path, chunk_seconds: float = 1.0) -> None:
        self.spool = spool
        self.store = store
        self.chunk_seconds = chunk_seconds

    def handle(self, record: Record, ctx: Context) -> None:
        req = record.value
        log.info("ingesting", job_id=req["job_id"], stream_id=req["stream_id"], object_key=req["object_key"])
        ctx.job_event(req, "RUNNING", progress=0.0, message="decoding")
        seq = 0
        samples = 0
        channels = 1
        error: str | None = None
        options = dict(req["options"])
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
        else:
            ctx.job_event(req, "COMPLETED", progress=1.0, message=f"decoded {samples / TARGET_RATE:.1f} s",
                          details={"duration": f"{samples / TARGET_RATE:.3f}", "channels": str(channels)})

    @staticmethod
    def _chunk(ctx: Context, req: dict[str, Any], seq: int, start: int, channels: int, data: bytes,
               options: dict[str, str], last: bool, error: str | None = None) -> None:
        ctx.emit(chunk_lane(options, "upload"), AudioChunk(
            stream_id=req["stream_id"], job_id=req["job_id"], revision=req["revision"], seq=seq, start_sample=start,
            sample_rate=TARGET_RATE, channels=channels, encoding="PCM_S16LE", data=data, end_of_stream=last,
            error=error, options=options if seq == 0 else {}, source="upload"))


def build(settings: Settings) -> IngestStage:
    return IngestStage(SyncStore(store_from_settings(settings)), process_dir(settings.spool_root, "ingest"),
                       settings.chunk_seconds)


# one file at a time: a file is thousands of chunks, drained as they are decoded
SPEC = StageSpec(name="ingest", doc="decodes stored recordings (claim checks) into audio chunks of at most 1 s",
                 inputs=(INGEST_REQUESTS,), outputs=CHUNK_LANES, build=build, batch=1)
