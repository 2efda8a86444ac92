"""The recogniser alone (processors/asr, no broker, no database), against faster-whisper on the same audio.

    .venv/bin/python bench/recogniser.py fallback      [--runs 3] [--models tiny.en base]
    .venv/bin/python bench/recogniser.py throughput    [--runs 3] [--default-only]
    .venv/bin/python bench/recogniser.py latency       [--runs 5]
    .venv/bin/python bench/recogniser.py conditioning  [--models tiny.en base]

The audio is bench/corpus.py's 7.7 minutes of real speech (LJ Speech reads, AMI meeting excerpts, a phone call),
cut by the pipeline's own VAD into the windows an upload is recognised in (merge mode, up to 28 s). Models are
loaded once, as the workers do; every figure is the median of --runs runs.

- fallback: the cost of faster-whisper's per-window safeguards on this speech: the recogniser with its
  fallback schedule against the same recogniser decoding once at temperature 0; how many windows fell back.
- throughput: tiny.en int8 with batch sizes 1-16, beam 1 and 5, 1, 2 and 4 CPU threads, against faster-whisper's
  BatchedInferencePipeline on the same file (its own VAD, as a user runs it) and on the same windows
  (``clip_timestamps``), with the same beam and threads, word timestamps on.
- latency: what a window waits for when the recogniser decodes in batches: wall time of one batch of b windows
  (b = 1..16; a window arriving meanwhile waits for the batch in progress) and the cost per window at each b, for
  upload windows (30 s context) and for live utterances (short context, ``quick``).
- conditioning: WER of faster-whisper's sequential ``transcribe`` on the read-speech set laid end to end, with
  and without conditioning on previous text, and of the recogniser on the pipeline's windows.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.corpus import SPEECH, long_sources, mono_pcm, read_sources, write_wav
from foundation.settings import VadSettings
from processors.asr.models import ModelRegistry
from processors.asr.transcriber import DecodeOptions, Request, Transcriber
from processors.audio.timeline import pack
from processors.vad.segmenter import Cut, Segmenter
from streams.stages.vad import segmenter_config

RATE = 16_000


def cut_windows(pcm: np.ndarray, mode: str = "merge") -> list[Cut]:
    """The FINAL windows the VAD stage cuts from this audio (its default settings)."""
    seg = Segmenter(segmenter_config(VadSettings(), "merge" if mode == "merge" else "utterance"))
    cuts: list[Cut] = []
    for i in range(0, len(pcm), RATE):
        cuts += seg.feed(pcm[i:i + RATE])
    cuts += seg.finish()
    return [c for c in cuts if c.kind == "FINAL"]


def requests(cuts: list[Cut], options: DecodeOptions) -> list[Request]:
    """What the ASR stage recognises: each window's pieces of speech laid end to end (processors.audio.timeline)."""
    out = []
    for c in cuts:
        audio = c.audio.astype(np.float32) / 32768
        if c.pieces:
            audio = pack(audio, c.start_s, [(a / RATE, b / RATE) for a, b in c.pieces]).audio
        out.append(Request(audio, c.start_s, options, group_hint="bench"))
    return out



def timed(fn: Callable[[], Any], runs: int) -> tuple[list[float], Any]:
    times, out = [], None
    for _ in range(runs):
        started = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - started)
    return times, out


def med(times: list[float]) -> float:
    return round(statistics.median(times), 3)


def header(args: argparse.Namespace, audio_s: float, windows: int) -> dict[str, Any]:
    return {"date": date.today().isoformat(), "machine": _machine(), "load_average": os.getloadavg(),
            "command": args.command, "runs": args.runs, "audio_s": round(audio_s, 1), "windows": windows}


def fallback(args: argparse.Namespace) -> dict[str, Any]:
    pcm = mono_pcm(long_sources())
    cuts = cut_windows(pcm)
    report = header(args, len(pcm) / RATE, len(cuts))
    registry = ModelRegistry()
    for name in args.models:
        tr = Transcriber(registry, batch_size=8)
        tr.warm_up(name)
        once = requests(cuts, DecodeOptions(model=name, temperatures=(0.0,)))
        guarded = requests(cuts, DecodeOptions(model=name))
        t_once, t_guarded = [], []
        for _ in range(args.runs):  # interleaved, so drifting load hits both alike
            t, r_once = timed(lambda q=once, tr=tr: tr.transcribe(q), 1)
            t_once += t
            t, r_guarded = timed(lambda q=guarded, tr=tr: tr.transcribe(q), 1)
            t_guarded += t
        fired = [i for i, r in enumerate(r_guarded) if r.attempts > 1]
        report[name] = {
            "temperature_0_only_s": med(t_once), "with_fallback_s": med(t_guarded),
            "ratio": round(med(t_guarded) / med(t_once), 3), "windows_fallen_back": len(fired),
            "fallback_temperatures": [r_guarded[i].temperature for i in fired],
            "same_text_elsewhere": all(a.text == b.text for i, (a, b) in enumerate(zip(r_once, r_guarded, strict=True))
                                       if i not in fired),
            "runs_s": {"once": [round(x, 2) for x in t_once], "fallback": [round(x, 2) for x in t_guarded]},
        }
    return report


def throughput(args: argparse.Namespace) -> dict[str, Any]:
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    pcm = mono_pcm(long_sources())
    cuts = cut_windows(pcm)
    report = header(args, len(pcm) / RATE, len(cuts))
    wav = Path(tempfile.mkdtemp(prefix="ss-bench-")) / "long.wav"
    write_wav(wav, pcm)
    path = ModelRegistry().get("tiny.en").path
    # the same windows for faster-whisper (a window longer than 28 s, which the recogniser reads with its pauses
    # shortened, is one clip of up to 60 s here: faster-whisper reads its first 30 s)
    clips = [{"start": c.start_s, "end": c.end_s} for c in cuts]
    rows = []
    grid = [(8, 5, 2)] if args.default_only else [(b, beam, 2) for beam in (5, 1) for b in (1, 2, 4, 8, 16)] + [
        (8, 5, 1), (8, 5, 4)]
    references: dict[tuple[int, int], dict[str, float]] = {}
    for b, beam, threads in grid:
        if (beam, threads) not in references:
            model = WhisperModel(str(path), device="cpu", compute_type="int8", cpu_threads=threads)
            pipe = BatchedInferencePipeline(model)
            own, _ = timed(lambda p=pipe, bm=beam: list(p.transcribe(str(wav), beam_size=bm, word_timestamps=True,
                                                                     batch_size=8)[0]), args.runs)
            same, _ = timed(lambda p=pipe, bm=beam: list(p.transcribe(
                pcm.astype(np.float32) / 32768, beam_size=bm, word_timestamps=True, batch_size=8,
                clip_timestamps=clips, language="en")[0]), args.runs)
            references[(beam, threads)] = {"file": med(own), "windows": med(same)}
        tr = Transcriber(ModelRegistry(), cpu_threads=threads, batch_size=b)
        tr.warm_up("tiny.en")
        q = requests(cuts, DecodeOptions(model="tiny.en", beam_size=beam))
        t, _ = timed(lambda q=q, tr=tr: tr.transcribe(q), args.runs)
        ref = references[(beam, threads)]
        rows.append({"batch": b, "beam": beam, "threads": threads, "recogniser_s": med(t),
                     "batched_pipeline_file_s": ref["file"], "batched_pipeline_same_windows_s": ref["windows"],
                     "ratio_vs_file": round(med(t) / ref["file"], 3),
                     "ratio_vs_same_windows": round(med(t) / ref["windows"], 3)})
        print(json.dumps(rows[-1]), flush=True)
    report["rows"] = rows
    return report


def latency(args: argparse.Namespace) -> dict[str, Any]:
    pcm = mono_pcm(long_sources())
    uploads = cut_windows(pcm)
    utterances = [c for c in cut_windows(mono_pcm(read_sources()), mode="utterance")]
    report = header(args, len(pcm) / RATE, len(uploads))
    tr = Transcriber(ModelRegistry())
    tr.warm_up("tiny.en")
    for kind, cuts, options in (
            ("upload windows (30 s context, beam 5)", uploads, DecodeOptions(model="tiny.en")),
            ("live utterances (quick, beam 5)", utterances, DecodeOptions(model="tiny.en", quick=True))):
        rows = []
        for b in (1, 2, 4, 8, 16):
            chosen = [cuts[i % len(cuts)] for i in range(b)]
            q = requests(chosen, options)
            t, _ = timed(lambda q=q, b=b: tr.transcribe(q, batch_size=b), args.runs)
            rows.append({"batch": b, "batch_s": med(t), "per_window_s": round(med(t) / b, 3),
                         "audio_s": round(sum(len(c.audio) for c in chosen) / RATE, 1)})
            print(kind, json.dumps(rows[-1]), flush=True)
        report[kind] = rows
    return report


def conditioning(args: argparse.Namespace) -> dict[str, Any]:
    import jiwer
    from faster_whisper import WhisperModel

    from tests.conftest import normalize, read_references

    refs = read_references(SPEECH)
    sources = read_sources()
    truth = normalize(" ".join(refs[f.name] for f in sources))
    pcm = mono_pcm(sources)
    cuts = cut_windows(pcm)
    report = header(args, len(pcm) / RATE, len(cuts))
    registry = ModelRegistry()
    for name in args.models:
        info = registry.get(name)
        model = WhisperModel(str(info.path), device="cpu", compute_type="int8", cpu_threads=2)
        audio = pcm.astype(np.float32) / 32768
        row = {}
        for condition in (True, False):
            segments, _ = model.transcribe(audio, beam_size=5, word_timestamps=True,
                                           language=None if info.multilingual else "en",
                                           condition_on_previous_text=condition)
            text = " ".join(s.text.strip() for s in segments)
            row[f"faster_whisper_condition_{condition}".lower()] = round(jiwer.wer(truth, normalize(text)), 4)
        results = Transcriber(registry).transcribe(requests(cuts, DecodeOptions(model=name)))
        row["recogniser_on_vad_windows"] = round(jiwer.wer(truth, normalize(" ".join(r.text for r in results))), 4)
        report[name] = row
    return report


def _machine() -> str:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.machine()}, {cpu}, {len(os.sched_getaffinity(0))} cores"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("fallback", "throughput", "latency", "conditioning"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=["tiny.en", "base"])
    parser.add_argument("--default-only", action="store_true",
                        help="throughput: only the workers' settings (batch 8, beam 5, 2 threads)")
    args = parser.parse_args()
    run = {"fallback": fallback, "throughput": throughput, "latency": latency, "conditioning": conditioning}
    print(json.dumps(run[args.command](args), indent=1))


if __name__ == "__main__":
    main()
