"""The VAD stage's handling of a stream's chunks when some never arrive: an upload (its recording is stored, the
reconciler runs it again) is given up without an END; a live stream has its hole filled with silence and goes on."""

from __future__ import annotations

from typing import Any

from foundation.settings import VadSettings
from streams.kafka.topics import CHUNK_LANES, JOBS_EVENTS
from streams.runtime.stage import Context, Record
from streams.runtime.state import StateStore
from streams.stages.vad import VadStage

RATE = 16000


class MemoryStore(StateStore):
    """The stage's state table for partition 0, in memory (no changelog)."""

    def __init__(self) -> None:
        super().__init__("vad-state", lambda: None, None)  # type: ignore[arg-type,return-value]
        self._tables[0] = {}


def _chunk(seq: int, *, source: str = "upload", end: bool = False) -> Record:
    value: dict[str, Any] = {
        "stream_id": "s1", "job_id": "j1", "revision": 1, "seq": seq, "start_sample": seq * RATE,
        "sample_rate": RATE, "channels": 1, "encoding": "PCM_S16LE", "data": b"\0\0" * RATE,
        "end_of_stream": end, "error": None, "options": {"diarize": "off", "duration": "6"} if seq == 0 else {},
        "source": source}
    return Record(CHUNK_LANES[0], 0, seq, "s1", value, 0)


def _run(records: list[Record]) -> Context:
    stage, store = VadStage(VadSettings()), MemoryStore()
    ctx = Context("vad", store)
    for record in records:
        ctx.partition = record.partition
        stage.handle(record, ctx)
        store.apply_staged()
    return ctx


def _speech_kinds(ctx: Context) -> list[str]:
    return [event.kind for topic, event in ctx.outbox if topic != JOBS_EVENTS]  # type: ignore[attr-defined]


def _messages(ctx: Context) -> list[str]:
    return [event.message or "" for topic, event in ctx.outbox if topic == JOBS_EVENTS]  # type: ignore[attr-defined]


def test_an_upload_missing_chunks_is_given_up_without_an_end() -> None:
    ctx = _run([_chunk(0), _chunk(1), _chunk(4), _chunk(5, end=True)])
    assert "END" not in _speech_kinds(ctx)
    lost = [m for m in _messages(ctx) if "lost in transit" in m]
    assert lost == ["audio lost in transit (chunks 2 to 3 never arrived, at chunk 4); finding speech stopped, and "
                    "the job runs again from its stored recording"]


def test_an_upload_missing_its_first_chunk_is_given_up() -> None:
    ctx = _run([_chunk(1), _chunk(2, end=True)])
    assert "END" not in _speech_kinds(ctx)
    assert any("chunks 0 to 0 never arrived" in m for m in _messages(ctx))


def test_an_upload_with_every_chunk_ends() -> None:
    ctx = _run([_chunk(0), _chunk(1), _chunk(1), _chunk(2, end=True)])  # a redelivered chunk is skipped
    assert _speech_kinds(ctx)[-1] == "END"
    assert not any("lost" in m for m in _messages(ctx))


def test_a_live_stream_missing_chunks_goes_on_with_silence() -> None:
    ctx = _run([_chunk(0, source="live"), _chunk(3, source="live"), _chunk(4, source="live", end=True)])
    ends = [event for topic, event in ctx.outbox if topic != JOBS_EVENTS and event.kind == "END"]  # type: ignore[attr-defined]
    assert len(ends) == 1 and ends[0].duration == 5.0  # type: ignore[attr-defined]
    assert not any("lost" in m for m in _messages(ctx))
