"""Login hardening: failed logins back off per account and per address, passwords are checked on the hashing
threads, never the event loop, and an unknown email costs the same work as a known one."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from gateway.auth import accounts
from gateway.auth.credentials import hash_password
from gateway.auth.throttle import LoginThrottle


def _fail(throttle: LoginThrottle, account: str, address: str, now: float) -> float:
    """One attempt that fails: 0 when it was let through (and counted), else the wait it was told."""
    wait = throttle.begin(account, address, now)
    if wait == 0:
        throttle.failed(account, address, now)
    return wait


def test_an_account_gets_free_attempts_then_a_growing_wait() -> None:
    throttle = LoginThrottle(free_per_account=3, free_per_address=100, backoff_s=1.0, max_backoff_s=8.0)
    now = 1000.0
    for _ in range(3):
        assert _fail(throttle, "a@x.io", "10.0.0.1", now) == 0  # free
    waits = []
    for _ in range(6):
        assert _fail(throttle, "A@x.io ", "10.0.0.1", now) == 0  # the next attempt may go, once the wait is over
        wait = _fail(throttle, "a@x.io", "10.0.0.1", now)  # an attempt right away must wait
        assert wait > 0
        waits.append(wait)
        now += wait
    assert waits == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]  # doubling, up to the maximum
    assert _fail(throttle, "b@x.io", "10.0.0.1", now) == 0  # another account from the same address goes on
    assert throttle.begin("a@x.io", "10.0.0.1", now) == 0  # the right password after the wait ...
    throttle.succeeded("a@x.io", "10.0.0.1")
    assert _fail(throttle, "a@x.io", "10.0.0.1", now) == 0  # ... clears the account: free attempts again


def test_an_address_is_throttled_across_accounts_and_a_success_does_not_clear_it() -> None:
    throttle = LoginThrottle(free_per_account=100, free_per_address=4, backoff_s=2.0)
    now = 50.0
    for i in range(5):
        assert _fail(throttle, f"user{i}@x.io", "10.0.0.9", now) == 0  # the fifth goes, and starts the wait
    assert _fail(throttle, "user6@x.io", "10.0.0.9", now) == 2.0
    assert _fail(throttle, "user6@x.io", "10.0.0.10", now) == 0  # another address is not affected
    now += 2.0
    assert throttle.begin("mine@x.io", "10.0.0.9", now) == 0
    throttle.succeeded("mine@x.io", "10.0.0.9")  # the attacker's own account logs in ...
    assert _fail(throttle, "user7@x.io", "10.0.0.9", now) == 0
    assert _fail(throttle, "user8@x.io", "10.0.0.9", now) == 4.0  # ... and the address keeps its failures


def test_attempts_in_flight_count_against_the_free_ones() -> None:
    throttle = LoginThrottle(free_per_account=2, free_per_address=100)
    assert [throttle.begin("c@x.io", "1.1.1.1", 0.0) for _ in range(3)] == [0, 0, 1.0]  # the third waits
    throttle.failed("c@x.io", "1.1.1.1", 0.0)
    throttle.abandoned("c@x.io", "1.1.1.1")  # a check that could not be made counts for nothing
    assert throttle.begin("c@x.io", "1.1.1.1", 0.0) == 0
    assert throttle.retry_after(0.2) == "1" and throttle.retry_after(3.5) == "4"


def test_records_are_forgotten_after_a_quiet_time() -> None:
    throttle = LoginThrottle(free_per_account=1, free_per_address=100, backoff_s=1.0, max_backoff_s=10.0,
                             forget_s=60.0)
    for _ in range(2):
        _fail(throttle, "d@x.io", "1.1.1.1", 0.0)
    assert throttle.begin("d@x.io", "1.1.1.1", 0.5) > 0
    assert throttle.begin("d@x.io", "1.1.1.1", 61.0) == 0


class _Identity:
    def __init__(self, known: dict[str, tuple[dict[str, Any], str]]) -> None:
        self.known = known

    async def login_candidate(self, email: str) -> tuple[dict[str, Any], str] | None:
        return self.known.get(email)


@pytest.fixture
def verified(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, str]]:
    """Every password check: (password, stored hash, thread it ran on)."""
    calls: list[tuple[str, str, str]] = []
    real = accounts.verify_password

    def spy(password: str, stored: str) -> bool:
        calls.append((password, stored, threading.current_thread().name))
        return real(password, stored)

    monkeypatch.setattr(accounts, "verify_password", spy)
    return calls


async def test_known_and_unknown_emails_take_the_same_path(verified: list[tuple[str, str, str]]) -> None:
    stored = hash_password("correct horse")
    identity: Any = _Identity({"known@x.io": ({"id": "u1"}, stored)})
    await accounts.warm_up()
    assert await accounts.login(identity, "known@x.io", "correct horse") == {"id": "u1"}
    assert await accounts.login(identity, "known@x.io", "wrong") is None
    assert await accounts.login(identity, "nobody@x.io", "wrong") is None
    assert [(p, h) for p, h, _ in verified] == [("correct horse", stored), ("wrong", stored),
                                                ("wrong", accounts.dummy_hash())]
    # every check ran on the hashing threads, none on the event loop's
    assert {t.split("_")[0] for _, _, t in verified} == {"password-hashing"}
    assert accounts.dummy_hash().startswith("$argon2") and accounts.dummy_hash() != stored


async def test_too_many_waiting_checks_are_refused_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(accounts, "_waiting", accounts.MAX_WAITING)
    with pytest.raises(accounts.HashingBusy):
        await accounts.off_loop(hash_password, "x")
