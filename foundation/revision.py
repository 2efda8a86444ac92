"""Which stages a revision of a job runs.

A job's first run goes through every stage. A replay may run only some of them (``POST /v1/replays`` with
``stages``, ``POST /v1/jobs/{id}/rediarize``): the revision's options then carry ``stages`` (comma-separated)
and ``source_revision``, the revision whose stored results stand in for the stages that do not run (its
recognised words when ``asr`` does not run, its speaker turns when ``diarization`` does not). Post-processing
always runs: it assembles the revision's transcript.
"""

from __future__ import annotations

from collections.abc import Mapping

MODEL_STAGES = ("asr", "diarization")
STAGES = (*MODEL_STAGES, "post")


def stages_run(options: Mapping[str, str]) -> frozenset[str]:
    """The stages the revision runs (every stage when the options do not say)."""
    named = options.get("stages")
    if not named:
        return frozenset(STAGES)
    return frozenset(s.strip() for s in named.split(",") if s.strip()) | {"post"}


def runs(options: Mapping[str, str], stage: str) -> bool:
    return stage in stages_run(options)


def source_revision(options: Mapping[str, str]) -> int | None:
    """The revision whose stored results a partial replay reuses."""
    value = options.get("source_revision", "")
    return int(value) if value.isdigit() else None


def needs_audio(options: Mapping[str, str]) -> bool:
    """Whether the revision's audio must be decoded again: some stage that listens to it runs."""
    return bool(stages_run(options) & set(MODEL_STAGES))
