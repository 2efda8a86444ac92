"""Failed logins slow down whoever makes them: per account and per client address.

Each account (by email, known or not, so that throttling tells nothing about which accounts exist) and each
client address gets a few attempts free; after those, every failure makes the next attempt wait, twice as long
each time (``backoff_s``, ``2 × backoff_s``, ... up to ``max_backoff_s``). An attempt that must wait is refused
(429 with ``Retry-After``) before any password is checked. A success clears the account's record; the address
keeps its failures (an attacker who owns one account cannot wash an address clean with it). Records are
forgotten ``forget_s`` after their last failure.

Attempts being checked count against the free ones, so concurrent attempts cannot all slip through the
allowance at once: when the attempts in flight could use up what is left of it, the next one waits a second for
their outcome. Like the request rate limiter, each gateway process keeps its own records.

The caller brackets each attempt: ``begin`` (0, or the seconds to wait), then ``failed``, ``succeeded`` or
``abandoned`` (the check itself could not be made).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from dataclasses import dataclass


@dataclass
class _Record:
    failures: int = 0
    pending: int = 0  # attempts begun and not concluded
    last: float = 0.0
    blocked_until: float = 0.0


class LoginThrottle:
    def __init__(self, *, free_per_account: int = 5, free_per_address: int = 20, backoff_s: float = 1.0,
                 max_backoff_s: float = 900.0, forget_s: float = 900.0, max_records: int = 100_000) -> None:
        self.free = {"account": free_per_account, "address": free_per_address}
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.forget_s = max(forget_s, max_backoff_s)
        self.max_records = max_records
        self._records: OrderedDict[str, _Record] = OrderedDict()

    def begin(self, account: str, address: str, now: float | None = None) -> float:
        """0 when an attempt for ``account`` from ``address`` may go ahead (conclude it with ``failed``,
        ``succeeded`` or ``abandoned``), else the seconds to wait before the next attempt."""
        now = time.monotonic() if now is None else now
        records = [(kind, self._record(key, now)) for kind, key in self._keys(account, address)]
        wait = max(record.blocked_until - now for _, record in records)
        if wait > 0:
            return wait
        if any(r.pending and r.failures + r.pending >= self.free[kind] for kind, r in records):
            return 1.0  # what is left of the allowance waits for the attempts in flight
        for _, record in records:
            record.pending += 1
            record.last = now
        self._trim()
        return 0.0

    def failed(self, account: str, address: str, now: float | None = None) -> None:
        """The attempt was refused: it counts, and past the free attempts it sets the wait."""
        now = time.monotonic() if now is None else now
        for kind, key in self._keys(account, address):
            record = self._record(key, now)
            record.pending = max(0, record.pending - 1)
            record.failures += 1
            record.last = now
            if record.failures > self.free[kind]:
                record.blocked_until = now + self.delay(record.failures - self.free[kind])

    def succeeded(self, account: str, address: str) -> None:
        """The attempt logged in: the account starts afresh; the address keeps its failures."""
        (_, account_key), (_, address_key) = self._keys(account, address)
        self._records.pop(account_key, None)
        self._conclude(address_key)

    def abandoned(self, account: str, address: str) -> None:
        """The password could not be checked (the hashing threads were busy, the database failed)."""
        for _, key in self._keys(account, address):
            self._conclude(key)

    def _conclude(self, key: str) -> None:
        record = self._records.get(key)
        if record is not None:
            record.pending = max(0, record.pending - 1)

    def delay(self, beyond_free: int) -> float:
        """The wait after the ``beyond_free``-th failure past the free ones."""
        return min(self.max_backoff_s, self.backoff_s * 2.0 ** min(beyond_free - 1, 60))

    @staticmethod
    def retry_after(wait: float) -> str:
        return str(max(1, math.ceil(wait)))

    @staticmethod
    def _keys(account: str, address: str) -> tuple[tuple[str, str], tuple[str, str]]:
        return ("account", f"account:{account.strip().lower()}"), ("address", f"address:{address}")

    def _record(self, key: str, now: float) -> _Record:
        record = self._records.get(key)
        if record is None or now - record.last > self.forget_s:
            record = _Record()
            self._records[key] = record
        self._records.move_to_end(key)
        return record

    def _trim(self) -> None:
        while len(self._records) > self.max_records:
            self._records.popitem(last=False)
