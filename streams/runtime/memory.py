"""Giving freed memory back to the operating system in a long-running worker.

glibc's allocator keeps the heap a process freed for reuse, and raises its mmap threshold after each large block
is freed (up to 32 MB), so the next large arrays come from the heap too. A worker that now and then builds large
temporary arrays (the diarization stage clusters a whole stream at its end: affinity matrices that grow with the
square of the stream's length) can keep, as resident memory, much of the largest working set it ever had.
``release_memory()`` after such a step returns the free heap to the system (``malloc_trim``), so the worker's RSS
goes back towards what it holds (bench/diarization_memory.py measures it).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
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
