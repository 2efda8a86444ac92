"""Post stage: asr.segments (+ speaker.turns) -> transcripts.

Each FINAL window becomes readable transcript segments (``processors.post.split``). Without diarization, and
with speakers from channels (the window's channel is its speaker), they are published at once, so subscribers
and the database see text while a long job still runs. With acoustic diarization the windows wait (as
per-stream state) for the stream's FINAL speaker turns; every word then gets the speaker talking at its time
and the others heard with it (``processors.post.speakers``), and segments are also cut where the speaker
changes. PARTIAL turns (provisional speakers of a live session) are for the live channel, not transcripts.

When the stream's END (and, with diarization, its turns: the speakers of the COMPLETED event) have arrived,
the stage checks that every window VAD announced was recognised and closes the revision: COMPLETED with its
summary and speakers, or FAILED with the reason (source error, lost window, no speech at all).
"""

from __future__ import annotations

import json
from typing import Any

from foundation.events import TranscriptEvent, TranscriptKind
from foundation.logs import get_logger
from foundation.settings import Settings
from processors.diarization.labels import channel_speaker
from processors.post.redact import KINDS, redact_segments
from processors.post.speakers import Attribution, attribute
from processors.post.split import split_segment
from streams.kafka.topics import ASR_SEGMENTS, SPEAKER_TURNS, TRANSCRIPTS
from streams.runtime.stage import BaseStage, Context, Record, StageSpec
from streams.stages.vad import stream_key

log = get_logger(__name__)


def redaction_kinds(options: dict[str, str]) -> tuple[str, ...]:
    """The job's ``redact`` option ("all", or some of email,phone,card,id) as detector kinds."""
    wanted = options.get("redact", "").strip()
    if not wanted or wanted == "off":
        return ()
    return KINDS if wanted == "all" else tuple(k for k in KINDS if k in wanted.split(","))


def _new_state() -> dict[str, Any]:
    return {"seen": [], "pieces": 0, "words": 0, "chars": 0, "languages": {}, "errors": [], "ended": False,
            "end": None, "turns": None, "waiting": []}


class PostStage(BaseStage):
    def handle(self, record: Record, ctx: Context) -> None:
        ev = record.value
        if ev["kind"] == "PARTIAL":
            return  # live partials and provisional speakers are for the live channel; transcripts hold finals
        key = stream_key(ev["stream_id"], ev["revision"])
        raw = ctx.get(key)
        st: dict[str, Any] = json.loads(raw) if raw else _new_state()
        if st["ended"]:
            return
        if record.topic == SPEAKER_TURNS:
            if st["turns"] is None:
                st["turns"] = {"turns": ev["turns"], "speakers": ev["speakers"], "error": ev.get("error")}
        elif ev["kind"] == "FINAL":
            if ev["index"] in st["seen"]:
                return  # redelivered window
            st["seen"].append(ev["index"])
            if ev.get("error"):
                st["errors"].append(ev["error"])
            if ev.get("language"):
                st["languages"][ev["language"]] = st["languages"].get(ev["language"], 0.0) + ev["end"] - ev["start"]
            if self._waits(ev):
                ctx.put(f"{key}/win/{ev['index']:06d}", json.dumps(ev, default=str).encode())
                st["waiting"].append(ev["index"])
            else:
                self._publish(ctx, ev, st, None)
        else:
            st["end"] = {k: v for k, v in ev.items() if k not in ("words",)}
        if st["end"] is not None and (not self._diarized(st["end"]) or st["turns"] is not None):
            self._close(ctx, key, st)
        ctx.put(key, json.dumps(st, separators=(",", ":"), default=str).encode())

    @staticmethod
    def _diarized(ev: dict[str, Any]) -> bool:
        """The stream's speakers come from diarization (its COMPLETED waits for them)."""
        return ev["options"].get("diarize") in ("acoustic", "channels")

    @staticmethod
    def _waits(ev: dict[str, Any]) -> bool:
        """A window waits for the stream's turns unless its speaker is already known (its channel) or there is
        none to know."""
        mode = ev["options"].get("diarize")
        return mode == "acoustic" or (mode == "channels" and ev.get("channel") is None)

    def _publish(self, ctx: Context, seg: dict[str, Any], st: dict[str, Any],
                 turns: list[dict[str, Any]] | None) -> None:
        attribution: list[Attribution] | None = None
        if seg["options"].get("diarize") == "channels" and seg.get("channel") is not None:
            attribution = [Attribution(channel_speaker(seg["channel"]))] * len(seg["words"])
        elif turns is not None:
            attribution = attribute(seg["words"], turns)
        events = [p.to_event(st["pieces"] + i) for i, p in enumerate(split_segment(seg, attribution=attribution))]
        kinds = redaction_kinds(seg["options"])
        redacted, findings = redact_segments(events, kinds) if kinds else (events, [])
        for original, shown in zip(events, redacted, strict=True):
            found = [{"type": f["type"], "start": f["start"], "end": f["end"]} for f in findings
                     if f["segment_id"] == original["id"]]
            self._emit(ctx, seg, "SEGMENT", segment=shown, original=original if found else None, redactions=found)
            st["pieces"] += 1
            st["words"] += len(shown["words"])
            st["chars"] += len(shown["text"])

    def _close(self, ctx: Context, key: str, st: dict[str, Any]) -> None:
        end = st["end"]
        turns = st["turns"] or {"turns": [], "speakers": [], "error": None}
        for index in sorted(st["waiting"]):
            raw = ctx.get(f"{key}/win/{index:06d}")
            ctx.put(f"{key}/win/{index:06d}", None)
            if raw is not None:
                self._publish(ctx, json.loads(raw), st, turns["turns"])
        st["ended"] = True
        expected = end.get("segment_count") or 0
        missing = sorted(set(range(expected)) - set(st["seen"]))
        error = end.get("error") or (st["errors"][0] if st["errors"] else None) or turns.get("error")
        if not error and missing:
            error = (f"{len(missing)} of {expected} speech segments were not recognised (see the dead-letter "
                     f"topics); first missing index {missing[0]}")
        if not error and st["chars"] == 0:
            error = f"no speech detected in {end.get('duration') or 0.0:.1f} s of audio"
        language = max(st["languages"], key=st["languages"].get) if st["languages"] else None
        if error:
            self._emit(ctx, end, "FAILED", error=error, language=language)
            ctx.job_event(end, "FAILED", error=error)
        else:
            self._emit(ctx, end, "COMPLETED", language=language, segment_count=st["pieces"],
                       speakers=turns["speakers"])
            ctx.job_event(end, "COMPLETED", progress=1.0,
                          message=f"{st['pieces']} transcript segments, {st['words']} words"
                          + (f", {len(turns['speakers'])} speakers" if turns["speakers"] else ""))
        st.update(seen=[], waiting=[], turns=None, end=None)

    @staticmethod
    def _emit(ctx: Context, src: dict[str, Any], kind: TranscriptKind, *, segment: dict[str, Any] | None = None,
              error: str | None = None, language: str | None = None, segment_count: int | None = None,
              speakers: list[dict[str, Any]] | None = None, original: dict[str, Any] | None = None,
              redactions: list[dict[str, Any]] | None = None) -> None:
        ctx.emit(TRANSCRIPTS, TranscriptEvent(
            stream_id=src["stream_id"], job_id=src["job_id"], revision=src["revision"], kind=kind, segment=segment,
            model=src["model"], pipeline_version=src["pipeline_version"], language=language or src.get("language"),
            duration=src.get("duration"), segment_count=segment_count, source=src["source"], error=error,
            speakers=speakers or [], original=original, redactions=redactions or [],
            options=src.get("options") or {}))


def build(_settings: Settings) -> PostStage:
    return PostStage()


SPEC = StageSpec(name="post", doc="turns recognised windows (and speaker turns) into transcript segments; closes jobs",
                 inputs=(ASR_SEGMENTS, SPEAKER_TURNS), outputs=(TRANSCRIPTS,), stateful=True, build=build,
                 batch=200)
