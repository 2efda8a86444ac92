"""The overlap-aware backend on real recordings, cut into the pipeline's VAD windows (merge mode), embedded
window by window and clustered at the end as the diarization stage does: the demo sample's two speakers, a
DER bound on the AMI excerpts, the speaker count honoured, overlapped speech found where people talk at once,
and a compact per-stream state. No broker needed; the real models are."""

from __future__ import annotations

import dataclasses
import itertools
import os
from pathlib import Path

import numpy as np
import pytest
from pyannote.core import Annotation, Segment, Timeline
from pyannote.database.util import load_rttm
from pyannote.metrics.diarization import DiarizationErrorRate

from connectors.ingest.decode import decode_chunks
from foundation.settings import VadSettings
from processors.diarization.backend import Clustering, WindowEmbeddings
from processors.diarization.overlap_backend import OverlapBackend
from processors.diarization.senko_backend import SenkoBackend
from processors.vad.segmenter import RATE, Segmenter
from streams.stages.vad import segmenter_config

pytestmark = pytest.mark.integration

DEMO = Path(__file__).resolve().parents[2] / ".cache" / "demo" / "pyannote" / "audio" / "sample"


def windows(path: Path) -> list[tuple[float, np.ndarray]]:
    mono = np.concatenate([c.frames.astype(np.int32).mean(axis=1).astype(np.int16) for c in decode_chunks(path)])
    seg = Segmenter(segmenter_config(VadSettings(), "merge"))
    cuts = [c for i in range(0, len(mono), RATE) for c in seg.feed(mono[i: i + RATE])] + seg.finish()
    return [(c.start_s, c.audio.astype(np.float32) / 32768.0) for c in cuts if c.kind == "FINAL"]


def annotation(c: Clustering) -> Annotation:
    ann = Annotation()
    for i, t in enumerate(c.turns):
        ann[Segment(t.start, t.end), i] = t.speaker
    return ann


@pytest.fixture(scope="module")
def backend() -> OverlapBackend:
    os.environ.setdefault("NUMBA_CACHE_DIR", "/tmp/numba-cache")
    return OverlapBackend()


@pytest.fixture(scope="module")
def states(backend: OverlapBackend, speech: Path) -> dict[str, tuple[list[WindowEmbeddings], Annotation, float]]:
    """Per recording: the window states the stage would keep, the reference, the audio's length."""
    if not (DEMO / "sample.wav").exists():
        pytest.fail(f"the demo sample is missing at {DEMO}: `make test` fetches it (Makefile target)")
    refs = load_rttm(str(speech / "meetings" / "reference.rttm"))
    sources = {f.stem: (f, refs[f.stem]) for f in sorted((speech / "meetings").glob("ami_*.flac"))}
    sources["sample"] = (DEMO / "sample.wav", load_rttm(str(DEMO / "sample.rttm"))["sample"])
    out = {}
    for name, (path, ref) in sources.items():
        cut = windows(path)
        kept = [w for w in (backend.embed(audio, start) for start, audio in cut) if len(w.embeddings)]
        out[name] = (kept, ref, max(start + len(audio) / RATE for start, audio in cut))
    return out


@pytest.fixture(scope="module")
def senko() -> SenkoBackend:
    return SenkoBackend(warmup=False)


@pytest.fixture(scope="module")
def senko_states(senko: SenkoBackend, speech: Path) -> dict[str, tuple[list[WindowEmbeddings], float]]:
    """Per AMI excerpt: the window states senko's stage would keep and the audio's length. Embedded once for the
    tests of senko below (they embedded the same excerpts each with a backend of its own)."""
    out = {}
    for f in sorted((speech / "meetings").glob("ami_*.flac")):
        cut = windows(f)
        out[f.stem] = ([w for w in (senko.embed(a, start) for start, a in cut) if len(w.embeddings)],
                       max(start + len(a) / RATE for start, a in cut))
    return out


def test_the_demo_sample_has_its_two_speakers(backend: OverlapBackend, states: dict) -> None:
    kept, ref, _ = states["sample"]
    found = backend.cluster(kept, None, None)
    assert len(found.centroids) == 2
    der = DiarizationErrorRate(collar=0.0, skip_overlap=False)(ref, annotation(found))
    assert der <= 0.10, der  # measured 5.7 %
    assert all(c.shape == (192,) for c in found.centroids.values())


def test_der_on_the_ami_excerpts_is_under_the_bound(backend: OverlapBackend, states: dict) -> None:
    metric = DiarizationErrorRate(collar=0.0, skip_overlap=False)
    for name, (kept, ref, _) in states.items():
        if name.startswith("ami_"):
            metric(ref, annotation(backend.cluster(kept, None, None)))
    assert abs(metric) <= 0.30, abs(metric)  # measured 26.9 % (senko in the pipeline: 40.7 %)


def test_the_speaker_count_is_honoured_on_real_audio(backend: OverlapBackend, states: dict) -> None:
    for name, (kept, ref, _) in states.items():
        n = len(ref.labels())
        assert len(backend.cluster(kept, n, n).centroids) == n, name
        bounded = backend.cluster(kept, 2, 3)
        assert 2 <= len(bounded.centroids) <= 3, name
    kept, _, _ = states["sample"]
    assert len(backend.cluster(kept, 1, 1).centroids) == 1


def test_overlapped_speech_is_found_where_the_reference_has_it(backend: OverlapBackend, states: dict) -> None:
    for name in ("sample", "ami_trn08", "ami_trn09"):  # 1.9 s, 11.1 s and 13.2 s of overlap in the references
        kept, ref, _ = states[name]
        hyp = annotation(backend.cluster(kept, None, None))
        ref_overlap, hyp_overlap = ref.get_overlap(), hyp.get_overlap()
        both = ref_overlap.crop(hyp_overlap, mode="intersection") if len(hyp_overlap) else Timeline()
        assert both.duration() >= 0.4 * ref_overlap.duration(), (name, both.duration(), ref_overlap.duration())
        assert both.duration() >= 0.8 * hyp_overlap.duration(), (name, both.duration(), hyp_overlap.duration())


def test_the_state_kept_per_stream_is_small(states: dict) -> None:
    total_bytes = sum(len(w.to_bytes()) for kept, _, _ in states.values() for w in kept)
    minutes = sum(seconds for _, _, seconds in states.values()) / 60
    assert total_bytes / minutes < 64 * 1024  # measured about 27-35 KB per minute of audio
    for kept, _, _ in states.values():
        for w in kept:
            back = WindowEmbeddings.from_bytes(w.to_bytes())
            assert back.activity is not None and np.array_equal(back.activity, w.activity)


def test_a_voiceprint_is_computed_from_speech_only(backend: OverlapBackend, speech: Path) -> None:
    audio = np.concatenate([c.frames.astype(np.float32).mean(axis=1) / 32768.0
                            for c in decode_chunks(speech / "read" / "LJ001-0001.wav")])
    silence = np.zeros(RATE * 3, np.float32)
    embedding, voiced = backend.voiceprint(np.concatenate([silence, audio, silence]))
    assert embedding.shape == (192,)
    assert 0.5 * len(audio) / RATE <= voiced <= len(audio) / RATE + 0.5
    nothing, none = backend.voiceprint(silence)
    assert nothing.size == 0 and none == 0.0


def shifted(w: WindowEmbeddings, seconds: float) -> WindowEmbeddings:
    """The same window ``seconds`` later in the stream."""
    grid = None if w.grid is None else np.concatenate([[w.grid[0] + seconds], w.grid[1:]]).astype(w.grid.dtype)
    return dataclasses.replace(w, subsegments=w.subsegments + np.float32(seconds), grid=grid)


def meeting_of(parts: list[tuple[list[WindowEmbeddings], float]], minutes: float) -> list[WindowEmbeddings]:
    """The AMI excerpts' windows laid end to end, again and again, into a meeting of at least ``minutes``."""
    out: list[WindowEmbeddings] = []
    at = 0.0
    while at < minutes * 60:
        for kept, seconds in parts:
            out += [shifted(w, at) for w in kept]
            at += seconds
    return out


def test_the_speaker_count_is_honoured_past_twenty_minutes(backend: OverlapBackend, states: dict,
                                                           senko: SenkoBackend, senko_states: dict) -> None:
    # senko clusters recordings past 20 minutes with UMAP + HDBSCAN, which takes no count: the backends must
    # still give what a job asks for. 21 minutes of the AMI excerpts' real windows, repeated.
    overlap_long = meeting_of([(kept, seconds) for name, (kept, _, seconds) in sorted(states.items())
                               if name.startswith("ami_")], 21)
    senko_long = meeting_of([senko_states[name] for name in sorted(senko_states)], 21)
    assert senko_long[-1].subsegments[-1, 1] > 1200
    for name, b, kept in (("overlap", backend, overlap_long), ("senko", senko, senko_long)):
        for lo, hi, allowed in ((3, 3, {3}), (7, 7, {7}), (2, 4, {2, 3, 4}), (1, 1, {1})):
            found = b.cluster(kept, lo, hi)
            assert len(found.centroids) in allowed, (name, lo, hi, len(found.centroids))
            assert len({t.speaker for t in found.turns}) in allowed, (name, lo, hi)


@pytest.mark.parametrize(("name", "count"), [("ami_trn03", 2), ("ami_trn05", 4)])
def test_senko_gives_the_count_asked_for_in_its_turns(senko: SenkoBackend, senko_states: dict, name: str,
                                                      count: int) -> None:
    """On these excerpts senko's bounded re-clustering finds the count, but its turn merging (which drops
    turns of 0.78 s or less) used to leave one of the speakers without any turn."""
    kept, _ = senko_states[name]
    found = senko.cluster(kept, count, count)
    assert len(found.centroids) == count
    assert len({t.speaker for t in found.turns}) == count, found.turns
    turns = sorted(found.turns, key=lambda t: t.start)
    assert all(a.end <= b.start + 1e-3 for a, b in itertools.pairwise(turns)), "turns overlap"
