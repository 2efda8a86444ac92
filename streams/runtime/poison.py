"""Events that kill the worker process, and the bound on how often they may.

A record whose handling raises is dead-lettered by the runner (``streams.runtime.runner``). A record that kills
the process instead (a native library's SIGSEGV or SIGILL, the kernel's OOM killer) leaves nothing to catch: the
supervisor restarts the worker, the worker reads the same uncommitted record again and dies again, forever, while
everything behind it on its partition waits.

``PoisonGuard`` bounds that. Before the runner hands records to the stage it writes which records are in hand to a
small file of the worker's own (``Settings.worker_hand_file``, kept open: a batch costs one write and one
truncation); once the batch is committed, or when the worker stops on an exception of its own, the file is
emptied. Records found in it at start therefore mean that the previous process died with them in hand, and each
is a suspect with one more death. The runner handles suspects one record at a time (so that the next death names
a single record), and a record that has been in hand at ``limit`` deaths is not handled again: the runner
dead-letters it with the reason and fails its job (``PoisonEvent``), and the partition moves on.

A ``kill -9`` of a healthy worker (an operator, a chaos test) also counts a death of what it had in hand; one such
death only makes the next batch go one record at a time. The file is local to the worker's home: deaths on
different machines are counted separately.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from foundation.logs import get_logger
from streams.runtime.stage import Record

log = get_logger(__name__)

RecordId = tuple[str, int, int]  # topic (without the deployment's prefix), partition, offset


def record_id(record: Record) -> RecordId:
    return record.topic, record.partition, record.offset


class PoisonEvent(Exception):
    """Raised in place of handling a record that was in hand each time the worker died ``limit`` times."""


class PoisonGuard:
    """The deaths of the records a worker had in hand, kept in ``path`` (``None``: not kept, nothing is
    suspected; unit tests of the runner)."""

    def __init__(self, path: Path | None, limit: int = 3) -> None:
        self.path = path
        self.limit = limit
        self.suspects: dict[RecordId, int] = {}  # record -> deaths with it in hand
        self._held = False
        self._fd: int | None = None  # the open file; None: nothing is noted

    @classmethod
    def open(cls, path: Path, limit: int, stage: str) -> PoisonGuard:
        """The guard of a starting worker: what the previous process left in ``path`` are suspects, each with
        one more death."""
        guard = cls(path, limit)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            guard._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            text = path.read_text()
            if not text:
                return guard
            left = json.loads(text)
            guard.suspects = {(str(t), int(p), int(o)): int(d) + 1 for t, p, o, d, _key in left["records"]}
            keys = sorted({str(key) for *_, key in left["records"] if key is not None})
        except OSError as exc:  # an unwritable home costs the bound, not the worker
            log.warning("records in hand cannot be noted", stage=stage, path=str(path), error=str(exc))
            return guard
        except (ValueError, KeyError, TypeError) as exc:  # cut short by the death itself: nothing known
            log.warning("records in hand at the last death unreadable; ignored", stage=stage, path=str(path),
                        error=str(exc))
            return guard
        if not guard.suspects:
            return guard
        log.warning("the previous worker died with records in hand; they are handled one at a time",
                    stage=stage, records=[f"{t}[{p}]@{o}" for t, p, o in guard.suspects], streams=keys,
                    deaths=max(guard.suspects.values(), default=0), limit=limit)
        return guard

    def suspected(self, records: Iterable[Record]) -> bool:
        return bool(self.suspects) and any(record_id(r) in self.suspects for r in records)

    def check(self, record: Record) -> None:
        """Raise ``PoisonEvent`` for a record the worker has died with in hand ``limit`` times."""
        deaths = self.suspects.get(record_id(record), 0)
        if deaths >= self.limit:
            raise PoisonEvent(f"the worker died {deaths} times while handling this event (a crash no handler can "
                              "catch: a native library, the kernel's memory limit); it is not handled again")

    def hold(self, records: list[Record]) -> None:
        """Note that ``records`` are in the stage's hands now (replacing what was noted before); condemned ones
        are not handed to the stage. Each is noted with its deaths so far and its key (the stream)."""
        if self._fd is None:
            return
        deaths = [(r, self.suspects.get(record_id(r), 0)) for r in records]
        held = json.dumps({"records": [[*record_id(r), d, r.key] for r, d in deaths if d < self.limit]}).encode()
        try:
            os.pwrite(self._fd, held, 0)
            os.ftruncate(self._fd, len(held))
            self._held = True
        except OSError as exc:  # a full disk costs the bound, not the batch
            log.warning("records in hand not noted", path=str(self.path), error=str(exc))

    def release(self, records: Iterable[Record] = ()) -> None:
        """Nothing is in hand any more (the batch is committed, or the worker stops by its own exception);
        ``records`` were handled and are no longer suspects."""
        for r in records:
            self.suspects.pop(record_id(r), None)
        if self._held and self._fd is not None:
            try:
                os.ftruncate(self._fd, 0)
            except OSError as exc:
                log.warning("records in hand not cleared", path=str(self.path), error=str(exc))
            self._held = False
