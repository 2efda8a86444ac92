"""Liveness of the stack's workers: a process that is alive but no longer answers (stopped with SIGSTOP, wedged)
holds its partitions and the jobs on them forever, and dies never, so the supervisor would never restart it.

A thread asks each worker's ``/health`` (and the gateway's) every few seconds. A refused connection is a process
still starting (its health endpoint is not listening yet) and says nothing; a connection that is accepted but not
answered within the probe's timeout is a process that does not run. When a process has not answered for
``timeout_s`` in a row, it is killed (SIGKILL to its process group, which also ends a stopped process) and the
supervisor restarts it as after a crash; it resumes from its committed offsets. Kubernetes does the same with the
liveness probes of the Helm chart.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

from foundation.logs import get_logger

log = get_logger(__name__)

PROBE_TIMEOUT_S = 2.0


def answers(url: str, timeout: float = PROBE_TIMEOUT_S) -> bool | None:
    """True: it answered (any HTTP status); False: connected but no answer in time; None: nothing listens."""
    try:
        with urllib.request.urlopen(url, timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True  # 503 while starting is an answer
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            return False
        return None
    except TimeoutError:
        return False
    except OSError:
        return None


@dataclass
class Watchdog:
    """Probes ``targets()`` (name -> (pid, health URL)) every ``interval_s``; kills a process that has not answered
    for ``timeout_s``."""

    targets: Callable[[], dict[str, tuple[int, str]]]
    timeout_s: float
    interval_s: float = 5.0
    probe: Callable[[str], bool | None] = answers
    silent_since: dict[int, float] = field(default_factory=dict)
    killed: list[tuple[str, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def check(self, now: float) -> None:
        """One round: probe every target, kill those silent for too long."""
        current = self.targets()
        alive_pids = {pid for pid, _ in current.values()}
        self.silent_since = {pid: t for pid, t in self.silent_since.items() if pid in alive_pids}
        for name, (pid, url) in current.items():
            if self.probe(url) is not False:
                self.silent_since.pop(pid, None)
                continue
            since = self.silent_since.setdefault(pid, now)
            if now - since >= self.timeout_s:
                log.error("process does not answer its health checks; killing it to restart it", child=name,
                          pid=pid, silent_s=round(now - since, 1))
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
                self.killed.append((name, pid))
                self.silent_since.pop(pid, None)

    def run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.check(time.monotonic())

    def start(self) -> None:
        threading.Thread(target=self.run, daemon=True, name="liveness").start()

    def stop(self) -> None:
        self._stop.set()
