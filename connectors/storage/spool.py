"""Transient audio on disk, kept private and never left behind.

Recordings are encrypted at rest, but some work needs a plain file for a while: an upload arriving (spooled
before it is encrypted), a live session being archived, a stored object decrypted for a decoder. Every such
file lives in one private directory per process, ``<spool root>/<component>.<host>.<pid>`` (mode 0700 under a
0700 root), and is removed on every path out of its ``with`` block, exceptions included. What a crash leaves
(``kill -9``, power loss) is removed by the next process that starts a spool (directories of dead processes
of this host), by the embedded supervisor as soon as a child dies, and by ``streamscribe up``, which empties
the whole root.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from connectors.storage.base import SyncStore
from connectors.storage.crypto import DecryptedView
from foundation.processes import pid_alive

MODE = 0o700
_mine: dict[tuple[Path, str, int], Path] = {}


def private_root(root: Path) -> Path:
    """``root`` as a directory only its owner can enter (created, or its mode corrected)."""
    root.mkdir(parents=True, exist_ok=True, mode=MODE)
    os.chmod(root, MODE)
    return root


def clear_root(root: Path) -> int:
    """Remove everything under ``root`` (no process of the stack may be running); returns the entries removed."""
    private_root(root)
    removed = 0
    for entry in root.iterdir():
        _remove(entry)
        removed += 1
    return removed


def _host() -> str:
    return socket.gethostname().replace(".", "_") or "localhost"


def owner(directory: Path) -> tuple[str, int] | None:
    """(host, pid) of the process that owns a spool directory, or None for a name that is not one."""
    parts = directory.name.split(".")
    if len(parts) != 3 or not parts[2].isdigit():
        return None
    return parts[1], int(parts[2])


def remove_dead(root: Path, pids: set[int] | None = None) -> list[Path]:
    """Remove the spool directories of processes of this host that are gone (or only those of ``pids``);
    files directly under ``root`` (left by versions without per-process directories) go too."""
    if not root.is_dir():
        return []
    host = _host()
    removed = []
    for entry in root.iterdir():
        found = owner(entry) if entry.is_dir() else None
        if found is None:
            if pids is None and not entry.is_dir():
                _remove(entry)
                removed.append(entry)
            continue
        entry_host, pid = found
        if entry_host != host or pid == os.getpid():
            continue
        if (pid not in pids) if pids is not None else pid_alive(pid):
            continue
        _remove(entry)
        removed.append(entry)
    return removed


def process_dir(root: Path, component: str) -> Path:
    """This process's private spool directory (created 0700 on first use, removed when the process exits);
    the first call also removes what dead processes of this host left under ``root``."""
    key = (root, component, os.getpid())
    found = _mine.get(key)
    if found is not None and found.is_dir():
        return found
    private_root(root)
    remove_dead(root)
    path = root / f"{component.replace('.', '_')}.{_host()}.{os.getpid()}"
    path.mkdir(mode=MODE, exist_ok=True)
    os.chmod(path, MODE)
    if found is None:
        atexit.register(_remove, path)
    _mine[key] = path
    return path


@contextmanager
def spooled(directory: Path, prefix: str, suffix: str = "") -> Iterator[Path]:
    """A new empty private file in ``directory`` (a process spool), removed however the block ends."""
    fd, name = tempfile.mkstemp(dir=directory, prefix=prefix, suffix=suffix)
    os.close(fd)
    path = Path(name)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


@contextmanager
def fetched(store: SyncStore, key: str, spool: Path) -> Iterator[Path]:
    """The stored object ``key`` decrypted into a private file of ``spool`` for as long as the block runs."""
    with spooled(spool, "fetch-", Path(key).suffix[:10]) as path:
        store.get_to_file(key, path)
        yield path


@contextmanager
def decrypted(store: SyncStore, key: str, spool: Path) -> Iterator[DecryptedView]:
    """The stored object ``key`` as a seekable plaintext file object, decrypted segment by segment as it is
    read: nothing decrypted is ever written to disk (PyAV's ``av.open`` reads file objects)."""
    view = store.open_decrypted(key, spool)
    try:
        yield view
    finally:
        view.close()


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
