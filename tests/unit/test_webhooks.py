"""Webhooks without a stack: signatures, the retry schedule, target checks, event mapping, sealed secrets."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket

import pytest

from connectors.storage.crypto import Keyring
from connectors.webhooks import backoff, events, signing
from connectors.webhooks.dispatch import GuardedResolver
from connectors.webhooks.sealing import SealError, generate_secret, hint, seal, unseal
from connectors.webhooks.targets import TargetError, blocked_address, check_url

SECRET = "whsec_unit-test-secret"
BODY = b'{"id":"evt_1","type":"job.completed","data":{"job_id":"j1"}}'
TS = 1_767_225_600


# -- signing ---------------------------------------------------------------------------------------------
def test_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET.encode(), f"{TS}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert signing.sign(SECRET, TS, BODY) == f"sha256={expected}"
    assert signing.sign(SECRET.encode(), str(TS), BODY.decode()) == f"sha256={expected}"


def test_verify_accepts_a_genuine_delivery() -> None:
    sig = signing.sign(SECRET, TS, BODY)
    assert signing.verify(SECRET, str(TS), BODY, sig, now=TS + 10)
    assert signing.verify(SECRET, TS, BODY, sig, tolerance_s=None)


@pytest.mark.parametrize("change", ["body", "secret", "timestamp", "signature", "scheme"])
def test_verify_rejects_tampering(change: str) -> None:
    sig = signing.sign(SECRET, TS, BODY)
    body, secret, ts = BODY, SECRET, str(TS)
    if change == "body":
        body = BODY.replace(b"j1", b"j2")
    elif change == "secret":
        secret = "whsec_someone-else"
    elif change == "timestamp":
        ts = str(TS + 1)
    elif change == "signature":
        sig = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    else:
        sig = sig.replace("sha256=", "sha1=")
    assert not signing.verify(secret, ts, body, sig, now=TS)


def test_verify_rejects_stale_future_and_malformed_timestamps() -> None:
    sig = signing.sign(SECRET, TS, BODY)
    assert not signing.verify(SECRET, TS, BODY, sig, now=TS + 301)  # a replay of an old delivery
    assert not signing.verify(SECRET, TS, BODY, sig, now=TS - 301)
    assert signing.verify(SECRET, TS, BODY, sig, now=TS + 299)
    for ts in (None, "", "-5", "1.5", "abc", "9" * 20):
        assert not signing.verify(SECRET, ts, BODY, sig, tolerance_s=None)
    assert not signing.verify(SECRET, TS, BODY, None, tolerance_s=None)
    assert not signing.verify(SECRET, TS, BODY, "sha256=é", tolerance_s=None)


def test_verify_accepts_any_of_several_signatures() -> None:
    header = f"{signing.sign('whsec_old-secret-xx', TS, BODY)}, {signing.sign(SECRET, TS, BODY)}"
    assert signing.verify(SECRET, TS, BODY, header, now=TS)
    assert not signing.verify("whsec_third-secret", TS, BODY, header, now=TS)


def test_delivery_headers() -> None:
    h = signing.delivery_headers(SECRET, BODY, event_type="job.completed", delivery_id="dlv_1", timestamp=TS)
    assert h["X-Streamscribe-Event"] == "job.completed"
    assert h["X-Streamscribe-Delivery"] == "dlv_1"
    assert h["X-Streamscribe-Timestamp"] == str(TS)
    assert signing.verify(SECRET, h["X-Streamscribe-Timestamp"], BODY, h["X-Streamscribe-Signature"], now=TS)


# -- backoff ---------------------------------------------------------------------------------------------
def test_default_schedule_gives_eight_attempts_then_up() -> None:
    assert backoff.max_attempts(backoff.DEFAULT_SCHEDULE) == 8
    delays = [backoff.retry_delay(n, jitter=0) for n in range(1, 8)]
    assert delays == [5.0, 30.0, 120.0, 600.0, 1800.0, 3600.0, 10800.0]
    assert backoff.retry_delay(8) is None
    assert backoff.retry_delay(1, ()) is None


def test_jitter_stays_within_bounds_and_varies() -> None:
    lo = backoff.retry_delay(2, jitter=0.2, rand=lambda: 0.0)
    hi = backoff.retry_delay(2, jitter=0.2, rand=lambda: 0.999999)
    assert lo == pytest.approx(24.0) and hi == pytest.approx(36.0, rel=1e-5)
    seen = {backoff.retry_delay(3) for _ in range(50)}
    assert len(seen) > 40 and all(96.0 <= d <= 144.0 for d in seen if d is not None)
    # with up to 20 % jitter each retry still waits longer than the one before
    assert all(backoff.DEFAULT_SCHEDULE[i] * 1.2 < backoff.DEFAULT_SCHEDULE[i + 1] * 0.8
               for i in range(len(backoff.DEFAULT_SCHEDULE) - 1))


def test_backoff_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        backoff.retry_delay(0)
    with pytest.raises(ValueError):
        backoff.retry_delay(1, jitter=1.5)


# -- targets ---------------------------------------------------------------------------------------------
def test_public_http_urls_are_accepted_and_normalized() -> None:
    assert check_url("https://Hooks.Example.com/in?x=1#frag") == "https://hooks.example.com/in?x=1"
    assert check_url("http://example.com") == "http://example.com/"
    assert check_url("https://93.184.216.34:8443/h") == "https://93.184.216.34:8443/h"


@pytest.mark.parametrize("url", [
    "ftp://example.com/x", "file:///etc/passwd", "javascript:alert(1)", "example.com/x", "https://", "",
    "https://user:pw@example.com/", "https://example.com:0/", "https://exa mple.com/", "https://example.com:99999/",
    "http://localhost:8080/", "http://api.localhost/", "http://printer.local/", "http://db.internal/",
    "http://intranet/", "http://127.0.0.1/", "http://10.1.2.3/", "http://192.168.0.1/", "http://172.16.5.5/",
    "http://169.254.169.254/latest/meta-data/", "http://100.64.0.1/", "http://0.0.0.0/", "http://[::1]/",
    "http://[fe80::1]/", "http://[fd00::1]/", "http://[::ffff:127.0.0.1]/", "http://224.0.0.1/",
])
def test_unsafe_or_invalid_urls_are_rejected(url: str) -> None:
    with pytest.raises(TargetError):
        check_url(url)


def test_private_targets_can_be_allowed_for_development() -> None:
    assert check_url("http://127.0.0.1:9000/hook", allow_private=True) == "http://127.0.0.1:9000/hook"
    assert check_url("http://localhost/", allow_private=True) == "http://localhost/"
    with pytest.raises(TargetError):
        check_url("ftp://127.0.0.1/", allow_private=True)
    with pytest.raises(TargetError):
        check_url(42)


def test_blocked_addresses() -> None:
    for ip in ("127.0.0.1", "10.0.0.1", "::1", "::ffff:10.0.0.1", "169.254.1.1", "fe80::1%eth0", "bogus"):
        assert blocked_address(ip), ip
    for ip in ("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "8.8.8.8"):
        assert not blocked_address(ip), ip


async def test_resolver_refuses_names_that_resolve_to_internal_addresses() -> None:
    guarded = GuardedResolver(allow_private=False)
    try:
        with pytest.raises(OSError, match="non-public"):
            await guarded.resolve("localhost", 80, socket.AF_INET)
        with pytest.raises(OSError):
            await guarded.resolve("2130706433", 80, socket.AF_INET)  # 127.0.0.1 spelled as a number
    finally:
        await guarded.close()
    allowed = GuardedResolver(allow_private=True)
    try:
        assert (await allowed.resolve("localhost", 80, socket.AF_INET))[0]["host"] == "127.0.0.1"
    finally:
        await allowed.close()


# -- events ----------------------------------------------------------------------------------------------
def _transcript(kind: str, **kw: object) -> dict[str, object]:
    return {"stream_id": "s1", "job_id": "j1", "revision": 2, "kind": kind, "segment": None, "model": "tiny.en",
            "pipeline_version": "1", "language": "en", "duration": 3.5, "segment_count": 2, "error": None,
            "produced_at": 1_767_225_600_000, "speakers": [{"id": "S1", "label": "SPEAKER_1", "name": "Alice"}],
            **kw}


def _job(state: str, stage: str = "asr", **kw: object) -> dict[str, object]:
    return {"job_id": "j1", "stream_id": "s1", "revision": 2, "stage": stage, "state": state, "progress": 0.5,
            "message": None, "error": None, "details": {}, "at": 1_767_225_600_000, **kw}


def test_completed_transcript_maps_to_job_and_transcript_completed_without_text() -> None:
    out = events.from_transcript_event(_transcript("COMPLETED"))
    assert [e.type for e in out] == ["job.completed", "transcript.completed"]
    job_done, transcript_done = (e.payload("org-1") for e in out)
    assert job_done["data"] == {"job_id": "j1", "stream_id": "s1", "org_id": "org-1", "revision": 2,
                                "status": "completed", "error": None,
                                "links": {"job": "/v1/jobs/j1", "transcript": "/v1/jobs/j1/transcript"}}
    assert job_done["created_at"] == "2026-01-01T00:00:00.000Z"
    assert transcript_done["data"]["transcript"]["speaker_count"] == 1
    assert "Alice" not in json.dumps(transcript_done)  # no names, no text
    assert events.from_transcript_event(_transcript("SEGMENT")) == []


def test_event_ids_are_deterministic_and_failures_from_both_topics_collapse() -> None:
    a = events.from_transcript_event(_transcript("COMPLETED"))
    b = events.from_transcript_event(_transcript("COMPLETED", produced_at=1_767_225_999_000))
    assert [e.id for e in a] == [e.id for e in b]  # a redelivered or re-emitted event is the same event
    assert len({e.id for e in a}) == 2
    other_revision = events.from_transcript_event(_transcript("COMPLETED", revision=3))
    assert other_revision[0].id != a[0].id
    failed_post = events.from_transcript_event(_transcript("FAILED", error="no speech"))
    failed_stage = events.from_job_event(_job("FAILED", error="could not decode"))
    assert failed_post[0].type == failed_stage[0].type == "job.failed"
    assert failed_post[0].id == failed_stage[0].id
    assert failed_stage[0].payload("o")["data"]["error"] == "could not decode"


def test_stage_progress_collapses_to_one_event_per_stage_and_state() -> None:
    first = events.from_job_event(_job("RUNNING", progress=0.1))
    later = events.from_job_event(_job("RUNNING", progress=0.9))
    done = events.from_job_event(_job("COMPLETED", progress=1.0))
    other_stage = events.from_job_event(_job("RUNNING", stage="vad"))
    assert first[0].type == "job.running" and first[0].id == later[0].id
    assert len({first[0].id, done[0].id, other_stage[0].id}) == 3
    assert done[0].payload("o")["data"]["stage_status"] == "completed"
    prefixed = events.from_job_event(_job("RUNNING", stage="streamscribe-asr"))[0]
    assert prefixed.id == first[0].id and prefixed.payload("o")["data"]["stage"] == "asr"


def test_a_run_queued_again_by_the_reconciler_is_job_requeued_with_its_reason() -> None:
    reason = "stuck: no progress for 200 s, and no stage has anything left to read for it"
    ev = _job("QUEUED", stage="streamscribe-reconciler", progress=None, message=f"run again: {reason}",
              details={"previous_revision": "1", "attempt": "2", "reason": reason})
    out = events.from_job_event(ev)
    assert [e.type for e in out] == ["job.requeued"]
    assert "job.requeued" in events.EVENT_TYPES
    data = out[0].payload("o")["data"]
    assert data["status"] == "queued" and data["revision"] == 2 and data["stage"] == "reconciler"
    assert data["reason"] == reason and data["previous_revision"] == 1 and data["attempt"] == 2
    assert out[0].id == events.from_job_event(ev)[0].id  # redelivered: the same event
    assert out[0].id != events.from_job_event({**ev, "revision": 3})[0].id
    failed = events.from_job_event(_job("FAILED", stage="streamscribe-reconciler", error=reason))[0]
    assert failed.type == "job.failed" and failed.payload("o")["data"]["stage"] == "reconciler"


def test_producer_streams_without_job_id_use_the_stream_id_and_links_are_escaped() -> None:
    ev = events.from_transcript_event(_transcript("COMPLETED", job_id=None, stream_id="call/42"))[0]
    assert ev.job_id == "call/42"
    assert ev.payload("default")["data"]["links"]["job"] == "/v1/jobs/call%2F42"


def test_ping() -> None:
    eid, payload = events.ping("wh_1", "org-1")
    assert payload["type"] == "ping" and payload["id"] == eid and payload["data"]["subscription_id"] == "wh_1"


# -- sealed secrets --------------------------------------------------------------------------------------
def test_sealed_secret_round_trip_binding_and_rotation() -> None:
    old = Keyring({"k1": b"\x01" * 32}, "k1")
    rotated = Keyring({"k1": b"\x01" * 32, "k2": b"\x02" * 32}, "k2")
    secret = generate_secret()
    assert secret.startswith("whsec_") and len(secret) > 40
    sealed = seal(old, secret, "wh_a")
    assert secret not in sealed and sealed.startswith("v1:k1:")
    assert unseal(old, sealed, "wh_a") == secret
    assert unseal(rotated, sealed, "wh_a") == secret  # old ids keep opening after a rotation
    assert seal(rotated, secret, "wh_a").startswith("v1:k2:")
    with pytest.raises(SealError):
        unseal(old, sealed, "wh_b")  # copied onto another subscription
    with pytest.raises(SealError):
        unseal(Keyring({"k1": b"\x03" * 32}, "k1"), sealed, "wh_a")
    with pytest.raises(SealError):
        unseal(Keyring({"k9": b"\x03" * 32}, "k9"), sealed, "wh_a")
    with pytest.raises(SealError):
        unseal(old, "garbage", "wh_a")
    assert hint(secret) == "whsec_..." + secret[-4:]
