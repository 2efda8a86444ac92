"""What a job left in PostgreSQL, compared with a clean run of the same recording: the check of every crash and
chaos test (tests/integration/test_crash_recovery.py, tests/chaos/)."""

from __future__ import annotations

import difflib
import json
from itertools import pairwise
from typing import Any

from tests.integration.conftest import Stack

Shape = tuple[str, float, float, str]


async def rows(stack: Stack, job_id: str, revision: int | None = None) -> list[dict[str, Any]]:
    """The transcript segments of a job's revision (default: the job's current one), in order."""
    conn = await stack.db()
    try:
        if revision is None:
            revision = await conn.fetchval("SELECT revision FROM jobs WHERE job_id = $1", job_id)
        found = await conn.fetch(
            "SELECT segment_id, idx, start_s, end_s, text, speaker FROM transcript_segments "
            "WHERE job_id = $1 AND revision = $2 ORDER BY start_s, idx", job_id, revision)
    finally:
        await conn.close()
    return [dict(r) for r in found]


def shape(found: list[dict[str, Any]]) -> list[Shape]:
    """(id without the stream, start, end, speaker: text) per segment."""
    return [(r["segment_id"].split(":", 1)[1], r["start_s"], r["end_s"], f"{r['speaker']}: {r['text']}")
            for r in found]


def window(segment: str) -> str:
    """The recogniser window a segment id (as ``shape`` gives it: ``m:000130780.3``) was cut from."""
    return segment.rsplit(".", 1)[0]


def sampled_windows(stack: Stack) -> frozenset[str]:
    """The windows (``m:000130780``) the stack's recognisers decoded by sampling, in any job: faster-whisper's
    temperature fallback, whose words another recognition of the window may not repeat
    (``processors.asr.decoding``)."""
    out = set()
    for path in (stack.home / "logs").glob("asr*.log"):
        for line in path.read_text(errors="replace").splitlines():
            if '"window decoded by sampling"' in line:
                out.add(json.loads(line)["segment_id"].split(":", 1)[1])
    return frozenset(out)


def assert_intact(found: list[dict[str, Any]], reference: list[Shape], sampled: frozenset[str] = frozenset()) -> None:
    """Nothing lost, nothing duplicated: the same segment ids, speakers and texts as the clean run. A window in
    ``sampled`` (``sampled_windows``) was decoded by sampling in one of the runs: its words, and so its segments,
    may differ (even be none: the kept sample may be silence), and it is left out of the comparison."""
    ids = [r["segment_id"] for r in found]
    assert len(ids) == len(set(ids)), "duplicated segments"
    assert all(a["end_s"] <= b["start_s"] + 1e-6 for a, b in pairwise(found)), "overlapping segments"
    got = shape(found)
    got = [g for g in got if window(g[0]) not in sampled]
    reference = [r for r in reference if window(r[0]) not in sampled]
    assert len(got) == len(reference), f"{len(got)} segments after the crash, {len(reference)} without" + _diff(
        got, reference)
    assert [g[0] for g in got] == [r[0] for r in reference], "segment ids differ from the run without a crash" + _diff(
        got, reference)
    assert [g[3] for g in got] == [r[3] for r in reference], ("speakers or texts differ from the run without a crash"
                                                              + _diff(got, reference))
    # A window recognised again after a crash may share an ASR batch with other windows than before; batched
    # int8 arithmetic can then move a word boundary by a frame or two (20-40 ms). Windows are cut identically.
    for g, r in zip(got, reference, strict=True):
        assert abs(g[1] - r[1]) <= 0.3 and abs(g[2] - r[2]) <= 0.3, (g, r)


def _diff(got: list[Shape], reference: list[Shape]) -> str:
    """Where the segments part from the clean run's (id, speaker and text of each), for the failure's message."""
    lines = difflib.unified_diff([f"{r[0]} {r[3]}" for r in reference], [f"{g[0]} {g[3]}" for g in got],
                                 "without a crash", "after the crash", n=1, lineterm="")
    return "\n" + "\n".join(list(lines)[:40])
