"""Local-directory object storage: objects are encrypted files under a root, written atomically.

For a single machine (the embedded stack) or a shared filesystem. Every object is written to a hidden
temporary file in its directory, flushed to disk and renamed over the key (``os.replace``), so readers see
the old object or the new one, never a partial one. Blocking file and cipher work runs in a worker thread so
that the gateway's event loop keeps serving.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from connectors.storage.base import ObjectNotFound, check_key, check_prefix
from connectors.storage.crypto import SEGMENT_SIZE, Keyring, decrypt_stream, encrypt_stream, read_header, rewrap

__all__ = ["LocalObjectStore", "ObjectNotFound"]


class LocalObjectStore:
    """The local backend of ``ObjectStore``: AES-256-GCM envelope encryption under ``keyring``."""

    def __init__(self, root: Path, keyring: Keyring, *, segment_size: int = SEGMENT_SIZE,
                 fsync: bool = True) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._real_root = self.root.resolve()
        self.keyring = keyring
        self.segment_size = segment_size
        self.fsync = fsync

    def __repr__(self) -> str:
        return f"LocalObjectStore({str(self.root)!r})"

    # -- paths ----------------------------------------------------------------------------------------

    def _confined(self, key: str) -> Path:
        """The file for ``key``, refusing anything that resolves outside the root (``..``, symlinks)."""
        path = (self._real_root / key).resolve()
        if self._real_root not in path.parents:
            raise ValueError(f"object key escapes the store: {key!r}")
        return path

    def _path(self, key: str) -> Path:
        return self._confined(check_key(key))

    def _atomic_write(self, path: Path, write: Callable[[BinaryIO], object],
                      unchanged: Callable[[], bool] | None = None) -> bool:
        """Write ``path`` through a hidden temporary file and ``os.replace``; False if ``unchanged`` vetoes.

        Temporary names start with a dot, which no key segment may, so they never collide with objects and
        listings skip them.
        """
        fd, tmp = self._mkstemp(path)
        try:
            with os.fdopen(fd, "wb") as fh:
                write(fh)
                fh.flush()
                if self.fsync:
                    os.fsync(fh.fileno())
            if unchanged is not None and not unchanged():
                os.unlink(tmp)
                return False
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        if self.fsync:
            _fsync_dir(path.parent)
        return True

    @staticmethod
    def _mkstemp(path: Path) -> tuple[int, str]:
        """A temporary file beside ``path``; retried because ``delete_prefix`` may prune an empty directory
        between our ``mkdir`` and the file's creation."""
        for attempt in range(3):
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                return tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            except FileNotFoundError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    # -- the ObjectStore API ------------------------------------------------------------------------------

    async def put_file(self, key: str, source: Path, content_type: str | None = None) -> None:
        """Encrypt ``source`` into the object ``key``. ``content_type`` is not kept by this backend."""
        await asyncio.to_thread(self._put_sync, self._path(key), source, self.keyring)

    def _put_sync(self, path: Path, source: Path, keyring: Keyring) -> None:
        with open(source, "rb") as src:
            self._atomic_write(path, lambda fh: encrypt_stream(src, fh, keyring, self.segment_size))

    async def get_to_file(self, key: str, dest: Path) -> None:
        await asyncio.to_thread(self._get_sync, key, self._path(key), dest, self.keyring)

    def _get_sync(self, key: str, path: Path, dest: Path, keyring: Keyring) -> None:
        with _open_object(key, path) as src:
            self._atomic_write(dest, lambda fh: decrypt_stream(src, fh, keyring))

    async def open_encrypted(self, key: str, spool: Path) -> BinaryIO:
        """The object file itself, opened (a later replace or delete does not disturb this reader)."""
        return _open_object(key, self._path(key))

    async def delete(self, key: str) -> None:
        """Remove the object (a missing one is fine)."""
        self._path(key).unlink(missing_ok=True)

    async def delete_prefix(self, prefix: str) -> int:
        """Remove every object under ``prefix`` and the directories this empties; an empty prefix is refused
        so that a bug cannot wipe the store."""
        if not check_prefix(prefix):
            raise ValueError("delete_prefix needs a non-empty prefix")
        return await asyncio.to_thread(self._delete_prefix_sync, prefix)

    def _delete_prefix_sync(self, prefix: str) -> int:
        removed = 0
        for key in self._keys(prefix):
            path = self._real_root / key
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            removed += 1
            self._prune(path.parent, prefix)
        return removed

    def _prune(self, directory: Path, prefix: str) -> None:
        """Remove now-empty directories inside ``prefix`` (never the root, never above the prefix)."""
        while directory != self._real_root and f"{directory.relative_to(self._real_root).as_posix()}/".startswith(
                prefix):
            try:
                directory.rmdir()
            except OSError:
                return
            directory = directory.parent

    async def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    async def list_keys(self, prefix: str = "") -> list[str]:
        check_prefix(prefix)
        return await asyncio.to_thread(lambda: sorted(self._keys(prefix)))

    def _keys(self, prefix: str) -> Iterator[str]:
        """Keys under ``prefix``: regular files, skipping temporary files, dot entries and symlinks."""
        base = self._real_root / prefix.rpartition("/")[0]
        for path in _walk(base):
            key = path.relative_to(self._real_root).as_posix()
            if key.startswith(prefix):
                yield key

    async def rotate(self, key: str) -> bool:
        """Re-wrap the object's data key under the current master key, copying the body as it is."""
        return await asyncio.to_thread(self._rotate_sync, key, self._path(key), self.keyring)

    def _rotate_sync(self, key: str, path: Path, keyring: Keyring) -> bool:
        for _ in range(3):
            result = self._rotate_once(key, path, keyring)
            if result is not None:
                return result
        raise RuntimeError(f"object {key!r} kept changing during rotation")

    def _rotate_once(self, key: str, path: Path, keyring: Keyring) -> bool | None:
        """Rotate once; None if the object was replaced meanwhile (a concurrent put must not be undone)."""
        with _open_object(key, path) as src:
            before = os.fstat(src.fileno())
            header, _ = read_header(src)
            rewrapped = rewrap(header, keyring)
            if rewrapped is None:
                return False

            def write(fh: BinaryIO) -> None:
                fh.write(rewrapped.to_bytes())
                shutil.copyfileobj(src, fh, SEGMENT_SIZE)

            def unchanged() -> bool:
                try:
                    now = os.stat(path)
                except FileNotFoundError:
                    return False
                return (now.st_ino, now.st_mtime_ns, now.st_size) == (
                    before.st_ino, before.st_mtime_ns, before.st_size)

            if self._atomic_write(path, write, unchanged):
                return True
            if not path.exists():
                raise ObjectNotFound(key)
            return None

    async def close(self) -> None:
        """Nothing to release; present for the ``ObjectStore`` contract."""


def _open_object(key: str, path: Path) -> BinaryIO:
    try:
        return open(path, "rb")
    except (FileNotFoundError, IsADirectoryError):
        raise ObjectNotFound(key) from None


def _walk(directory: Path) -> Iterator[Path]:
    try:
        entries = list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return
    for entry in entries:
        if entry.name.startswith(".") or entry.is_symlink():
            continue
        if entry.is_dir(follow_symlinks=False):
            yield from _walk(Path(entry.path))
        elif entry.is_file(follow_symlinks=False) and not entry.name.endswith(".part"):  # see check_key
            yield Path(entry.path)


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable: the directory entry is on disk only after the directory is synced."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
