"""Post stage: asr.segments -> transcripts.

Each FINAL window becomes readable transcript segments (``processors.post.assemble``) published at once, so
subscribers and the database see text while a long job is still running. When the stream's END arrives the
stage checks that every window VAD announced was recognised and closes the revision: COMPLETED with its
summary, or FAILED with the reason (source error, lost window, no speech at all).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, ClassVar

from processors.post.assemble import split_segment
from streams.runtime import Context, Record, now_ms
from streams.stages.vad import stream_key
from streams.topics import ASR_SEGMENTS, TRANSCRIPTS
from streamscribe.logs import get_logger

log = get_logger(__name__)


class PostStage:
    name: ClassVar[str] = "streamscribe-post"
    inputs: ClassVar[tuple[str, ...]] = (ASR_SEGMENTS,)
    stateful: ClassVar[bool] = True
    transient_errors: ClassVar[tuple[type[BaseException], ...]] = ()

    def handle_batch(self, records: Sequence[Record], ctx: Context) -> bool:
        return False

    def forget(self, record: Record) -> None:
        pass

    def close(self) -> None:
        pass

    def handle(self, record: Record, ctx: Context) -> None:
        seg = record.value
        if seg["kind"] == "PARTIAL":
            return  # live partials are for the live channel; transcripts hold finals only
        key = stream_key(seg["stream_id"], seg["revision"])
        raw = ctx.get(key)
        st: dict[str, Any] = json.loads(raw) if raw else {
            "seen": [], "pieces": 0, "words": 0, "chars": 0, "languages": {}, "errors": [], "ended": False,
        }
        if st["ended"]:
            return
        if seg["kind"] == "FINAL":
            if seg["index"] in st["seen"]:
                return  # redelivered window: its segments were already published
            st["seen"].append(seg["index"])
            if seg.get("error"):
                st["errors"].append(seg["error"])
            for piece in split_segment(seg):
                self._emit(ctx, seg, "SEGMENT", segment=piece.to_event(st["pieces"]))
                st["pieces"] += 1
                st["words"] += len(piece.words)
                st["chars"] += len(piece.text)
            if seg.get("language"):
                st["languages"][seg["language"]] = st["languages"].get(seg["language"], 0.0) + seg["end"] - seg["start"]
        else:
            self._close(ctx, seg, st)
        ctx.put(key, json.dumps(st, separators=(",", ":")).encode())

    def _close(self, ctx: Context, end: dict[str, Any], st: dict[str, Any]) -> None:
        st["ended"] = True
        expected = end.get("segment_count") or 0
        missing = sorted(set(range(expected)) - set(st["seen"]))
        error = end.get("error") or (st["errors"][0] if st["errors"] else None)
        if not error and missing:
            error = (f"{len(missing)} of {expected} speech segments were not recognised (see the dead-letter "
                     f"topics); first missing index {missing[0]}")
        if not error and st["chars"] == 0:
            duration = end.get("duration") or 0.0
            error = f"no speech detected in {duration:.1f} s of audio"
        language = max(st["languages"], key=st["languages"].get) if st["languages"] else None
        if error:
            self._emit(ctx, end, "FAILED", error=error, language=language)
            ctx.job_event(end, "FAILED", error=error)
        else:
            self._emit(ctx, end, "COMPLETED", language=language, segment_count=st["pieces"])
            ctx.job_event(end, "COMPLETED", progress=1.0,
                          message=f"{st['pieces']} transcript segments, {st['words']} words")
        st["seen"] = []

    @staticmethod
    def _emit(ctx: Context, src: dict[str, Any], kind: str, *, segment: dict[str, Any] | None = None,
              error: str | None = None, language: str | None = None, segment_count: int | None = None) -> None:
        ctx.emit(TRANSCRIPTS, src["stream_id"], {
            "stream_id": src["stream_id"], "job_id": src["job_id"], "revision": src["revision"], "kind": kind,
            "segment": segment, "model": src["model"], "pipeline_version": src["pipeline_version"],
            "language": language or src.get("language"), "duration": src.get("duration"),
            "segment_count": segment_count, "source": src["source"], "error": error, "produced_at": now_ms(),
        })
