"""The reconciler's decisions (streamscribe.recovery.rules) and the backlog's partition arithmetic, without a
stack; tests/integration/test_recovery.py runs them on the real one."""

from __future__ import annotations

import dataclasses
import zlib

import pytest

from repositories.jobs import InFlightJob
from streamscribe.recovery.backlog import Backlog, stream_partition
from streamscribe.recovery.rules import Facts, Policy, decide

POLICY = Policy(stall_after_s=180, max_attempts=3, live_idle_s=3600)


def _job(**kw: object) -> InFlightJob:
    base = {"job_id": "j1", "stream_id": "j1", "revision": 1, "status": "running", "source": "upload",
            "object_key": "uploads/j1/a.wav", "filename": "a.wav", "content_type": "audio/wav", "size_bytes": 10,
            "model": "tiny.en", "options": {"model": "tiny.en"}, "attempt": 1, "idle_s": 600.0,
            "started_epoch": 1000.0, "recovered": False}
    return InFlightJob(**{**base, **kw})  # type: ignore[arg-type]


def _facts(**kw: object) -> Facts:
    base = {"holding": (), "audio_stored": True, "gateway_started": None, "handed_off": False}
    return Facts(**{**base, **kw})  # type: ignore[arg-type]


def test_a_job_whose_events_are_still_unread_is_waiting_not_stuck() -> None:
    held = _facts(holding=("streamscribe-asr:audio.speech",))
    assert decide(_job(idle_s=10_000), held, POLICY) is None
    assert decide(_job(idle_s=10_000), dataclasses.replace(held, handed_off=True), POLICY) is None


def test_a_job_with_recent_progress_is_left_alone() -> None:
    assert decide(_job(idle_s=179), _facts(), POLICY) is None


def test_a_stuck_job_runs_again_until_the_attempts_are_spent() -> None:
    first = decide(_job(idle_s=181), _facts(), POLICY)
    assert first is not None and first.kind == "rerun"
    assert "no progress for 181 s" in first.reason and "run 2 of at most 3" in first.reason
    second = decide(_job(idle_s=181, attempt=2), _facts(), POLICY)
    assert second is not None and second.kind == "rerun" and "run 3 of at most 3" in second.reason
    last = decide(_job(idle_s=181, attempt=3), _facts(), POLICY)
    assert last is not None and last.kind == "fail" and "given up after 3 runs" in last.reason


def test_a_stuck_job_without_its_recording_fails_with_the_reason() -> None:
    gone = decide(_job(), _facts(audio_stored=False), POLICY)
    assert gone is not None and gone.kind == "fail" and "stored recording is gone" in gone.reason
    detached = decide(_job(object_key=None), _facts(audio_stored=False), POLICY)  # its file was deleted
    assert detached is not None and detached.kind == "fail" and "stored recording is gone" in detached.reason
    produced = decide(_job(object_key=None, source="producer"), _facts(audio_stored=False), POLICY)
    assert produced is not None and produced.kind == "fail" and "straight to Kafka" in produced.reason


def test_a_job_down_handed_over_is_judged_at_once() -> None:
    action = decide(_job(idle_s=5), _facts(handed_off=True), POLICY)
    assert action is not None and action.kind == "rerun" and "(in flight when the stack stopped)" in action.reason


@pytest.mark.parametrize("source", ["live", "telephony"])
def test_a_live_session_older_than_the_running_gateway_is_closed_then_failed_if_that_does_not_finish_it(
        source: str) -> None:
    live = _job(source=source, object_key="live/j1/audio.wav", started_epoch=1000.0, idle_s=5)
    assert decide(live, _facts(gateway_started=999.0), POLICY) is None  # its gateway is still the one running
    closed = decide(live, _facts(gateway_started=1001.0, holding=("streamscribe-vad:audio.chunks.high",)), POLICY)
    assert closed is not None and closed.kind == "close" and "its gateway stopped" in closed.reason
    after = _job(source=source, recovered=True, attempt=2, idle_s=60)
    assert decide(after, _facts(gateway_started=1001.0), POLICY) is None  # finishing what was heard
    assert decide(dataclasses.replace(after, idle_s=600), _facts(holding=("g:t",)), POLICY) is None
    failed = decide(dataclasses.replace(after, idle_s=600), _facts(audio_stored=False), POLICY)
    assert failed is not None and failed.kind == "fail" and "could not be finalized" in failed.reason


def test_without_a_supervisor_a_live_session_is_cut_only_after_long_silence() -> None:
    quiet = _job(source="live", idle_s=3599)
    assert decide(quiet, _facts(), POLICY) is None
    cut = decide(dataclasses.replace(quiet, idle_s=3601), _facts(), POLICY)
    assert cut is not None and cut.kind == "close" and "nothing was heard from it for 3601 s" in cut.reason


def test_stream_partition_is_librdkafkas_consistent_hash() -> None:
    for key in ("a4c050df4c734c63ab3e0f5476fa93a8", "call-42", "é"):
        assert stream_partition(key, 4) == zlib.crc32(key.encode()) % 4
    assert {stream_partition(f"s{i}", 4) for i in range(100)} == {0, 1, 2, 3}


def test_the_backlog_names_the_groups_holding_a_streams_partition() -> None:
    p = stream_partition("job-7", 4)
    backlog = Backlog({"audio.speech": 4, "asr.segments": 4},
                      {("audio.speech", p): ["streamscribe-asr", "streamscribe-diarization"],
                       ("asr.segments", (p + 1) % 4): ["streamscribe-post"]})
    assert backlog.holding("job-7") == ["streamscribe-asr:audio.speech", "streamscribe-diarization:audio.speech"]
    assert Backlog({"audio.speech": 4}, {}).holding("job-7") == []
