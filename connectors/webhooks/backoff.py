"""When to retry a failed delivery: a schedule of delays, each jittered, then give up.

The default schedule retries after about 5 s, 30 s, 2 min, 10 min, 30 min, 1 h and 3 h: eight attempts over
some four and a half hours. Jitter (+-20 % by default) spreads the retries of many deliveries that failed at
the same moment (a receiver that was down) so they do not all come back at once.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

DEFAULT_SCHEDULE: tuple[float, ...] = (5.0, 30.0, 120.0, 600.0, 1800.0, 3600.0, 10800.0)
DEFAULT_JITTER = 0.2


def max_attempts(schedule: Sequence[float]) -> int:
    """Attempts a delivery gets in all: the first one and one per delay of the schedule."""
    return len(schedule) + 1


def retry_delay(failed_attempts: int, schedule: Sequence[float] = DEFAULT_SCHEDULE, *,
                jitter: float = DEFAULT_JITTER, rand: Callable[[], float] = random.random) -> float | None:
    """Seconds to wait before the next attempt, after ``failed_attempts`` attempts (1 = the first attempt
    failed) all failed; None when the schedule is exhausted and the delivery gives up.

    The delay is ``schedule[failed_attempts - 1]`` scaled by a uniform factor in ``[1 - jitter, 1 + jitter]``.
    """
    if failed_attempts < 1:
        raise ValueError("failed_attempts counts attempts made, from 1")
    if not 0 <= jitter < 1:
        raise ValueError("jitter must be in [0, 1)")
    if failed_attempts > len(schedule):
        return None
    base = max(0.0, float(schedule[failed_attempts - 1]))
    return base * (1.0 + jitter * (2.0 * rand() - 1.0))
