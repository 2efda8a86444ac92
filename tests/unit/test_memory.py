"""release_memory gives a worker's freed heap back to the system (the diarization worker's RSS growth)."""

from __future__ import annotations

import psutil

from streams.runtime.memory import IdleRelease, release_memory
from tests.unit.fake_clock import FakeClock

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


def test_idle_release_after_ten_idle_seconds_then_once_a_minute_while_busy() -> None:
    clock, released = FakeClock(0.0), []
    memory = IdleRelease(idle_s=10, every_s=60, release=lambda: released.append(clock.now), clock=clock)
    assert not memory.after_step(0)  # idle from the start: nothing to give back
    clock.now = 100
    assert not memory.after_step(5)  # work began at 100
    clock.now = 130
    assert not memory.after_step(0)  # idle since 130
    clock.now = 135
    assert not memory.after_step(0)
    clock.now = 136
    assert not memory.after_step(5)  # work again before 10 idle seconds: the idle run starts over
    clock.now = 137
    assert not memory.after_step(0)
    clock.now = 147
    assert memory.after_step(0)  # 10 s idle after work
    clock.now = 200
    assert not memory.after_step(0)  # still idle: nothing happened since
    for t in range(210, 360, 10):  # busy for 150 s without a pause
        clock.now = t
        memory.after_step(3)
    assert released == [147, 270, 340]
    clock.now = 360
    assert not memory.after_step(0)
    clock.now = 370
    assert memory.after_step(0)
    assert released == [147, 270, 340, 370]


def test_a_release_asked_for_resets_the_rhythm() -> None:
    clock, released = FakeClock(0.0), []
    memory = IdleRelease(idle_s=10, every_s=60, release=lambda: released.append(clock.now), clock=clock)
    clock.now = 100
    assert not memory.after_step(5)
    clock.now = 150
    memory.now()  # a stage asked for it after a large step
    clock.now = 165
    assert not memory.after_step(0)  # nothing happened since that release: no idle release follows
    clock.now = 200
    assert not memory.after_step(0)
    assert released == [150]
