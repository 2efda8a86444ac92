"""A clock for unit tests of time-based rules: callable like ``time.monotonic``, moved by setting ``now``."""

from __future__ import annotations


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
