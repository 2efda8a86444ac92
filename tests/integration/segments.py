"""What a job left in PostgreSQL, compared with a clean run of the same recording: the check of every crash and
chaos test (tests/integration/test_crash_recovery.py, tests/chaos/)."""

from __future__ import annotations

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


def assert_intact(found: list[dict[str, Any]], reference: list[Shape]) -> None:
    """Nothing lost, nothing duplicated: the same segment ids, speakers and texts as the clean run."""
    ids = [r["segment_id"] for r in found]
    assert len(ids) == len(set(ids)), "duplicated segments"
    assert all(a["end_s"] <= b["start_s"] + 1e-6 for a, b in pairwise(found)), "overlapping segments"
    got = shape(found)
    assert len(got) == len(reference), f"{len(got)} segments after the crash, {len(reference)} without"
    assert [g[0] for g in got] == [r[0] for r in reference], "segment ids differ from the run without a crash"
    assert [g[3] for g in got] == [r[3] for r in reference], "speakers or texts differ from the run without a crash"
    # A window recognised again after a crash may share an ASR batch with other windows than before; batched
    # int8 arithmetic can then move a word boundary by a frame or two (20-40 ms). Windows are cut identically.
    for g, r in zip(got, reference, strict=True):
        assert abs(g[1] - r[1]) <= 0.3 and abs(g[2] - r[2]) <= 0.3, (g, r)
