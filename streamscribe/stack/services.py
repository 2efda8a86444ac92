"""Infrastructure processes of the embedded stack (object storage, broker, PostgreSQL), restarted in place.

A service that dies (a crash, ``kill -9``, the OOM killer) is started again with the same command line: the
same ports and data directory, so clients reconnect to the same bootstrap address and database URL, and the
broker's log and the database are as they were. Restarts back off (0.5 s doubling up to a cap, reset after a
minute of health) and wait for the services a service needs: the broker waits for its object storage.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from foundation.logs import get_logger

log = get_logger(__name__)

STABLE_S = 60.0
FIRST_BACKOFF_S = 0.5


@dataclass
class Service:
    name: str
    launch: Callable[[], subprocess.Popen[bytes]]
    ready: Callable[[float], bool]  # waits up to the given seconds; True once the service answers
    needs: tuple[str, ...] = ()
    ready_timeout: float = 60.0
    max_backoff: float = 10.0
    extra: dict[str, Any] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    backoff: float = FIRST_BACKOFF_S
    next_start: float = 0.0
    started_at: float = 0.0

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        """Launch and wait until ready; raises RuntimeError (the process killed) if it never gets there."""
        self.proc = self.launch()
        self.started_at = time.monotonic()
        if not self.ready(self.ready_timeout) or not self.running():
            self.kill()
            raise RuntimeError(f"{self.name} did not become ready within {self.ready_timeout:.0f} s")
        log.info("service ready", service=self.name, pid=self.proc.pid)

    def kill(self) -> None:
        """SIGKILL the service's whole process group: what a dead postmaster leaves (its backends still
        attached to the shared memory) would keep a new one from starting."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)

    def stop(self, sig: int, timeout: float) -> None:
        if not self.running():
            self.kill()
            return
        assert self.proc is not None
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("service did not stop in time; killing it", service=self.name)
        self.kill()

    def state(self) -> dict[str, Any]:
        return {"pid": self.pid, "restarts": self.restarts, **self.extra}


def tend(services: dict[str, Service], now: float) -> bool:
    """One round of supervision, in dependency order; True when a service was restarted (state changed)."""
    changed = False
    for service in services.values():
        if service.running():
            if now - service.started_at > STABLE_S:
                service.backoff = FIRST_BACKOFF_S
            continue
        if service.next_start == 0.0:
            code = service.proc.returncode if service.proc else None
            log.error("infrastructure process exited; restarting it", service=service.name, code=code,
                      backoff=service.backoff)
            service.kill()  # leftovers of its process group
            service.next_start = now + service.backoff
            service.backoff = min(service.backoff * 2, service.max_backoff)
            continue
        if now < service.next_start or not all(services[n].running() for n in service.needs if n in services):
            continue
        service.restarts += 1
        try:
            service.start()
            service.next_start = 0.0
        except (OSError, RuntimeError) as exc:
            log.error("infrastructure restart failed; trying again", service=service.name, error=str(exc))
            service.next_start = time.monotonic() + service.backoff
            service.backoff = min(service.backoff * 2, service.max_backoff)
        changed = True
        now = time.monotonic()
    return changed
