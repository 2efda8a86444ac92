"""release_memory gives a worker's freed heap back to the system (the diarization worker's RSS growth)."""

from __future__ import annotations

import psutil

from streams.runtime.memory import release_memory

MB = 1024 * 1024


def test_freed_heap_goes_back_to_the_system() -> None:
    proc = psutil.Process()
    # 64 KB blocks come from the heap (below glibc's mmap threshold); the last one stays allocated, so the heap's
    # top is pinned and free() alone cannot give the rest back.
    blocks = [bytearray(64 * 1024) for _ in range(3200)]  # 200 MB, every page touched (zero-filled)
    pin = blocks[-1]
    del blocks
    held = proc.memory_info().rss
    assert release_memory()
    released = proc.memory_info().rss
    assert held - released > 100 * MB, (held / MB, released / MB)
    assert len(pin) == 64 * 1024
