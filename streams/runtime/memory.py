"""Giving freed memory back to the operating system in a long-running worker.

glibc's allocator keeps the heap a process freed for reuse, and raises its mmap threshold after each large block
is freed (up to 32 MB), so the next large arrays come from the heap too. A worker that now and then builds large
temporary arrays (the diarization stage clusters a whole stream at its end: affinity matrices that grow with the
square of the stream's length) can keep, as resident memory, much of the largest working set it ever had.
``release_memory()`` after such a step returns the free heap to the system (``malloc_trim``), so the worker's RSS
goes back towards what it holds (bench/diarization_memory.py measures it).

Every stage worker does the same on its own rhythm (``IdleRelease``, called by the runner after each step): once
it has been idle for 10 s after work, and once a minute while it keeps working; and right after the commit of a
batch whose stage asked for it (``Context.release_memory_after_commit``), never inside a stage's ``handle``, where
the batch's outputs would wait for it (a release took 1.2 s in the diarization worker after each stream, all of it
added to the time to the transcript). The recogniser's batches of audio
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
    """When a worker gives its freed memory back: once it has been idle (steps that consumed nothing) for
    ``idle_s`` after work, and every ``every_s`` while its steps keep consuming; never when nothing happened since
    the last time. Not at the first idle step: a release (a full garbage collection, then ``malloc_trim``) takes
    tens of milliseconds in a worker that holds models, and the next job's work then faults its memory in again,
    which made a diarized 30 s file 0.8 s slower when every worker released between a job's steps."""

    def __init__(self, idle_s: float = 10.0, every_s: float = 60.0, release: Callable[[], object] = release_memory,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.idle_s = idle_s
        self.every_s = every_s
        self._release = release
        self._clock = clock
        self._since: float | None = None  # when the work not yet followed by a release began
        self._idle: float | None = None  # when the current run of idle steps began

    def now(self) -> None:
        """Release at once (a stage asked for it after a large step); the rhythm starts again from here."""
        self._release()
        self._since = self._idle = None

    def after_step(self, consumed: int) -> bool:
        """Called after each step with the number of events it consumed; True when memory was released."""
        now = self._clock()
        if consumed:
            self._idle = None
            if self._since is None:
                self._since = now
            if now - self._since < self.every_s:
                return False
        else:
            if self._since is None:
                return False
            if self._idle is None:
                self._idle = now
            if now - self._idle < self.idle_s:
                return False
        self.now()
        return True
