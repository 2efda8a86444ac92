"""The model work of one speech window split across a few threads, each running torch on one core.

A window's segmentation chunks and the pieces of an embedding batch are computed independently of one another
(inference mode: no batch statistics, no padding), so they can run at the same time, and torch releases the GIL
inside its operators. Threads that each run torch single-threaded use a free core without OpenMP's
spin-waiting helper threads, which take CPU from the recogniser working on the same windows on the same
machine (BENCHMARKS.md, "Time to a speaker-labelled transcript"). Splitting a batch does not change what any
item gets.

torch's inference mode is per thread: a function given to ``Workers.map`` enters it itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def even_slices(n: int, parts: int, cap: int) -> list[slice]:
    """Contiguous slices covering ``range(n)``, each at most ``cap`` long, their count a multiple of ``parts``
    where ``n`` allows (so that ``parts`` workers get the same share), lengths differing by at most one."""
    if n <= 0:
        return []
    if parts < 1 or cap < 1:
        raise ValueError(f"parts and cap must be at least 1, got {parts} and {cap}")
    count = -(-n // cap)
    count = min(n, -(-count // parts) * parts)
    bounds = [i * n // count for i in range(count + 1)]
    return [slice(bounds[i], bounds[i + 1]) for i in range(count)]


class Workers:
    """``map`` over a pool of ``count`` threads (in the caller's thread when there is one worker or one item)."""

    def __init__(self, count: int) -> None:
        if count < 1:
            raise ValueError(f"at least one worker, got {count}")
        self.count = count
        self._pool = ThreadPoolExecutor(count, thread_name_prefix="diarization-model") if count > 1 else None

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        if self._pool is None or len(items) < 2:
            return [fn(item) for item in items]
        return list(self._pool.map(fn, items))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
