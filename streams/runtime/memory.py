"""Giving freed memory back to the operating system in a long-running worker.

glibc's allocator keeps the heap a process freed for reuse, and raises its mmap threshold after each large block
is freed (up to 32 MB), so the next large arrays come from the heap too. A worker that now and then builds large
temporary arrays (the diarization stage clusters a whole stream at its end: affinity matrices that grow with the
square of the stream's length) can keep, as resident memory, much of the largest working set it ever had.
``release_memory()`` after such a step returns the free heap to the system (``malloc_trim``), so the worker's RSS
goes back towards what it holds (bench/diarization_memory.py measures it).

Every stage worker does the same on its own rhythm (``IdleRelease``, called by the runner after each step): when
it goes idle after work, and at least once a minute while it keeps working. The recogniser's batches of audio
windows of varying lengths, on CTranslate2's threads and librdkafka's, left the asr worker's resident memory
creeping up by about 100 MB an hour of repeated jobs (bench/soak.py) without it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import time
from collections.abc import Callable
from functools import cache
from typing import Any


@cache
def _libc() -> Any:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        lib = ctypes.CDLL(name)
        return lib if hasattr(lib, "malloc_trim") else None  # glibc only (not musl, not macOS)
    except OSError:
        return None


def release_memory() -> bool:
    """Collect garbage and return the allocator's free memory to the system; False where that is not possible
    (a C library without ``malloc_trim``)."""
    gc.collect()
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


class IdleRelease:
    """When a worker gives its freed memory back: at its first idle step (nothing consumed) after work, and
    every ``every_s`` while its steps keep consuming; never when nothing happened since the last time.
    ``release_memory`` takes milliseconds, so it stays off the path of all but one batch a minute."""

    def __init__(self, every_s: float = 60.0, release: Callable[[], object] = release_memory,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.every_s = every_s
        self._release = release
        self._clock = clock
        self._since: float | None = None  # when the work not yet followed by a release began

    def after_step(self, consumed: int) -> bool:
        """Called after each step with the number of events it consumed; True when memory was released."""
        now = self._clock()
        if consumed:
            if self._since is None:
                self._since = now
            if now - self._since < self.every_s:
                return False
        elif self._since is None:
            return False
        self._release()
        self._since = None
        return True
