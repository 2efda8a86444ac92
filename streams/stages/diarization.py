"""Diarization stage: audio.speech lanes (high first) -> speaker.turns, and speakers.enrollments -> speakers.profiles.

For every FINAL speech window of a stream that asks for speakers, the stage computes speaker embeddings right
away with the stream's backend (``diarization_backend``, recorded in the stream's state at its first window and
kept to its end, since the states of two backends do not mix) and keeps them as per-stream state (a changelog
record per window), so the work is spread over the stream and survives a restart. At the stream's END it
clusters them into speakers (acoustic mode) or takes each channel as a speaker (channels mode), matches the
speakers to enrolled voice profiles, and publishes the turns (FINAL).

- Channels mode needs no acoustic work: the channel is the speaker. Embeddings are computed only when the
  organisation has enrolled voice profiles to match the channels' voices with.
- Live sessions (utterance mode, acoustic): each utterance's embeddings get provisional speakers at once by
  online clustering (``processors.diarization.online``), published as PARTIAL turns of that speech segment;
  at END the labels are revised from the whole session and published as FINAL.
- A revision that reuses another's speaker turns (a replay without ``diarization`` among its stages) is not
  this stage's: ingest publishes the stored turns.

Enrollment requests become voice profiles computed with the default backend.
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
from foundation.revision import runs
from foundation.settings import DiarizationSettings, Settings
from processors.audio.pcm import decode_pcm, to_float
from processors.diarization.backend import Clustering, Turn, WindowEmbeddings
from processors.diarization.backends import Backends
from processors.diarization.identify import identify
from processors.diarization.labels import channel_speaker, display_name, speaker_bounds, speaker_names
from processors.diarization.online import OnlineConfig, OnlineSpeakers, finish_online, label_window
from repositories.profiles import TRANSIENT_PROFILE_ERRORS, ProfileSource, profile_source
from streams.kafka.topics import SPEAKER_ENROLLMENTS, SPEAKER_PROFILES, SPEAKER_TURNS, SPEECH_LANES
from streams.runtime.metrics import DIARIZATION_SECONDS
from streams.runtime.stage import BaseStage, Context, Record, StageSpec
from streams.stages.vad import stream_key

log = get_logger(__name__)


def _new_meta() -> dict[str, Any]:
    # backend: the stream's backend; embed: whether its windows get embeddings; online: live labels
    return {"seen": [], "windows": [], "ended": False, "backend": None, "embed": None, "online": False,
            "provisional": []}


def _online(options: dict[str, str], mode: str) -> bool:
    """Live sessions (utterance segmentation) get provisional speakers as they go."""
    return mode == "acoustic" and options.get("segmentation") == "utterance"


class DiarizationStage(BaseStage):
    def __init__(self, backends: Backends, profiles: ProfileSource, store: SyncStore, spool: Path,
                 settings: DiarizationSettings, transient: tuple[type[BaseException], ...] = ()) -> None:
        self.spool = spool
        self.backends = backends
        self.profiles = profiles
        self.store = store
        self.settings = settings
        self.transient_errors = transient  # e.g. the profile database being unreachable

    def handle(self, record: Record, ctx: Context) -> None:
        if record.topic == SPEAKER_ENROLLMENTS:
            self._enroll(record.value, ctx)
            return
        seg = record.value
        opts = seg["options"]
        mode = opts.get("diarize", "off")
        if seg["kind"] == "PARTIAL" or mode not in ("acoustic", "channels") or not runs(opts, "diarization"):
            return
        key = stream_key(seg["stream_id"], seg["revision"])
        raw = ctx.get(key)
        meta: dict[str, Any] = {**_new_meta(), **json.loads(raw)} if raw else _new_meta()
        if meta["ended"]:
            return
        if seg["kind"] == "FINAL":
            if seg["index"] in meta["seen"]:
                return
            self._window(key, seg, meta, mode, ctx)
        else:
            self._finish(key, seg, meta, mode, ctx)
        ctx.put(key, json.dumps(meta, separators=(",", ":")).encode())

    # -- per window ------------------------------------------------------------------------------------
    def _window(self, key: str, seg: dict[str, Any], meta: dict[str, Any], mode: str, ctx: Context) -> None:
        opts = seg["options"]
        meta["seen"].append(seg["index"])
        if meta["backend"] is None:  # the stream's first window decides, for the whole stream
            meta["backend"] = self.backends.name_for(opts)
            meta["embed"] = mode == "acoustic" or self._has_profiles(opts)
            meta["online"] = _online(opts, mode)
        meta["windows"].append([seg["index"], seg["channel"], seg["start"], seg["end"]])
        message = f"{len(meta['seen'])} segments, channel speakers"
        if meta["embed"]:
            backend = self.backends.get(meta["backend"])
            audio = to_float(decode_pcm(seg["audio"], 1)[:, 0])
            with DIARIZATION_SECONDS.labels(meta["backend"], "embed").time():
                window = backend.embed(audio, seg["start"])
            if len(window.embeddings):
                ctx.put(f"{key}/emb/{seg['index']:06d}", window.to_bytes())
            if meta["online"]:
                self._label(key, seg, meta, window, ctx)
            message = f"speaker embeddings for {len(meta['seen'])} segments"
        total = float(opts.get("duration") or 0)
        ctx.job_event(seg, "RUNNING", progress=min(1.0, seg["end"] / total) if total > 0 else None, message=message)

    def _label(self, key: str, seg: dict[str, Any], meta: dict[str, Any], window: WindowEmbeddings,
               ctx: Context) -> None:
        """Provisional speakers of a live utterance, published at once (PARTIAL turns of that segment)."""
        online = OnlineSpeakers.from_bytes(ctx.get(f"{key}/online"))
        _, hi = speaker_bounds(seg["options"])
        config = OnlineConfig(threshold=self.settings.live_threshold, max_speakers=hi or 20)
        turns = label_window(self.backends.get(meta["backend"]), window, online, config)
        ctx.put(f"{key}/online", online.to_bytes())
        meta["provisional"] += [[t.start, t.end, t.speaker] for t in turns]
        names = speaker_names(seg["options"])
        ctx.emit(SPEAKER_TURNS, SpeakerTurns(
            stream_id=seg["stream_id"], job_id=seg["job_id"], revision=seg["revision"], kind="PARTIAL",
            mode="acoustic", turns=[TurnRecord(start=t.start, end=t.end, speaker=t.speaker) for t in turns],
            speakers=[Speaker(id=s, label=display_name(s, names), channel=None, talk_time=0.0, identified_as=None,
                              name=None, similarity=None) for s in sorted({t.speaker for t in turns})],
            backend=meta["backend"], options=seg["options"], segment_id=seg["segment_id"]))

    def _has_profiles(self, opts: dict[str, str]) -> bool:
        """Whether the organisation has voice profiles the channels' speakers could be matched with."""
        return bool(self.profiles(opts.get("org_id", "default")))

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
        online_raw = ctx.get(f"{key}/online")
        if online_raw is not None:
            ctx.put(f"{key}/online", None)
        error = end.get("error")
        turns: list[Turn] = []
        speakers: list[dict[str, Any]] = []
        name = meta["backend"] or self.backends.name_for(opts)
        if not error:
            with DIARIZATION_SECONDS.labels(name, "cluster").time():
                clustering = self._speakers(meta, windows, OnlineSpeakers.from_bytes(online_raw), mode, opts)
            turns = clustering.turns
            speakers = self._describe(clustering, opts)
        ctx.emit(SPEAKER_TURNS, SpeakerTurns(
            stream_id=end["stream_id"], job_id=end["job_id"], revision=end["revision"], kind="FINAL", mode=mode,
            turns=[TurnRecord(start=t.start, end=t.end, speaker=t.speaker) for t in turns],
            speakers=speakers, backend=name if meta["embed"] or mode == "acoustic" else "", options=opts,
            error=error))
        if not error:
            ctx.job_event(end, "COMPLETED", progress=1.0,
                          message=f"{len(speakers)} speakers, {len(turns)} turns ({mode})")
        meta.update(windows=[], seen=[], provisional=[])
        # Clustering a stream builds matrices that grow with the square of its length; glibc keeps the freed heap
        # unless told (streams.runtime.memory; bench/diarization_memory.py measures it). After the commit: the
        # turns are published first.
        ctx.release_memory_after_commit()

    def _speakers(self, meta: dict[str, Any], windows: dict[int, WindowEmbeddings], online: OnlineSpeakers,
                  mode: str, opts: dict[str, str]) -> Clustering:
        if mode == "channels":
            return self._channels(meta, windows)
        if not windows:
            return Clustering([], {})
        backend = self.backends.get(meta["backend"] or self.backends.name_for(opts))
        lo, hi = speaker_bounds(opts)
        ordered = [windows[i] for i in sorted(windows)]
        if meta["online"]:
            provisional = [(float(a), float(b), str(s)) for a, b, s in meta["provisional"]]
            return finish_online(backend, ordered, online, provisional, lo, hi)
        return backend.cluster(ordered, lo, hi)

    def _describe(self, clustering: Clustering, opts: dict[str, str]) -> list[dict[str, Any]]:
        """The speakers with their talk time, names and the enrolled profiles they match."""
        profiles = self.profiles(opts.get("org_id", "default")) if clustering.centroids else []
        matches = identify(clustering.centroids, profiles, float(opts.get("speaker_threshold") or
                                                                  self.settings.identify_threshold))
        talk: dict[str, float] = {}
        for t in clustering.turns:
            talk[t.speaker] = talk.get(t.speaker, 0.0) + t.end - t.start
        names = speaker_names(opts)
        speakers: list[dict[str, Any]] = []
        for label in sorted(set(talk) | set(clustering.centroids)):
            channel = int(label.rsplit("_", 1)[1]) - 1 if label.startswith("CHANNEL_") else None
            m = matches.get(label)
            speakers.append(Speaker(id=label, label=display_name(label, names), channel=channel,
                                    talk_time=round(talk.get(label, 0.0), 3),
                                    identified_as=m.profile_id if m else None, name=m.name if m else None,
                                    similarity=m.similarity if m else None))
        return speakers

    @staticmethod
    def _channels(meta: dict[str, Any], windows: dict[int, WindowEmbeddings]) -> Clustering:
        turns = [Turn(round(start, 3), round(stop, 3), channel_speaker(channel))
                 for _i, channel, start, stop in sorted(meta["windows"], key=lambda w: w[2]) if channel is not None]
        by_channel: dict[str, list[np.ndarray]] = {}
        for index, channel, _start, _stop in meta["windows"]:
            if channel is not None and index in windows and len(windows[index].embeddings):
                by_channel.setdefault(channel_speaker(channel), []).append(windows[index].embeddings)
        return Clustering(turns, {k: np.concatenate(v).mean(axis=0) for k, v in by_channel.items()})

    # -- enrollment ------------------------------------------------------------------------------------
    def _enroll(self, req: dict[str, Any], ctx: Context) -> None:
        error: str | None = None
        embedding = np.zeros(0, np.float32)
        voiced = 0.0
        backend = self.backends.get(self.backends.default)
        try:
            pieces = []
            for key in req["object_keys"]:
                with decrypted(self.store, key, self.spool) as path:  # no plaintext on disk
                    pieces += [c.frames.astype(np.float32).mean(axis=1) / 32768.0 for c in decode_chunks(path)]
            embedding, voiced = backend.voiceprint(np.concatenate(pieces)) if pieces else (embedding, 0.0)
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
            backend=self.backends.default, error=error))


# torch and the backends' models are imported by ``backends`` and ``build`` alone: every process imports this
# module through the stage registry, and only the diarization worker should pay for torch (~600 MB, seconds)


def backends(settings: DiarizationSettings) -> Backends:
    """Both backends, the preloaded ones built and warmed now, the other at its first stream."""
    from processors.diarization.overlap_backend import OverlapBackend
    from processors.diarization.senko_backend import SenkoBackend

    return Backends({"overlap": lambda: OverlapBackend(workers=settings.workers),
                     "senko": lambda: SenkoBackend(threads=settings.threads)},
                    default=settings.backend, preload=settings.preload)


def build(settings: Settings) -> DiarizationStage:
    import torch

    from processors.diarization.senko_backend import numba_cache_dir

    numba_cache_dir(str(settings.home))
    # one torch thread by default: the recogniser works on the same windows at the same time on the other core
    torch.set_num_threads(settings.diarization.threads)
    held = backends(settings.diarization)
    log.info("diarization backends loaded", loaded=list(held.loaded), seconds=held.load_seconds,
             default=held.default)
    return DiarizationStage(held, profile_source(settings.database_url), SyncStore(store_from_settings(settings)),
                            process_dir(settings.spool_root, "diarization"), settings.diarization,
                            transient=TRANSIENT_PROFILE_ERRORS)


# enrollments are never paused: only the speech lanes take turns
SPEC = StageSpec(name="diarization", doc="speaker embeddings per speech window (live: provisional speakers at once), "
                 "speakers and turns at the end of a stream; voice profiles from enrollments",
                 inputs=(*SPEECH_LANES, SPEAKER_ENROLLMENTS), outputs=(SPEAKER_TURNS, SPEAKER_PROFILES),
                 lanes=SPEECH_LANES, stateful=True, build=build, batch=2)
