"""The object-store contract shared by every backend, key rules, and a synchronous adapter.

Stored recordings are claim checks: the gateway stores an upload once and events carry only its key. Every
backend encrypts at rest (``connectors.storage.crypto``) and presents the same async interface, so the
gateway (aiohttp) awaits it directly and synchronous workers go through ``SyncStore``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Protocol, TypeVar, runtime_checkable

from connectors.storage.crypto import DecryptedView, Keyring

T = TypeVar("T")
MAX_KEY_BYTES = 1024


class ObjectNotFound(FileNotFoundError):
    """No object is stored under the key (a ``FileNotFoundError``, as the first local store raised)."""


@runtime_checkable
class ObjectStore(Protocol):
    """What every backend offers. Keys are ``/``-separated relative names checked by ``check_key``."""

    async def put_file(self, key: str, source: Path, content_type: str | None = None) -> None:
        """Encrypt ``source`` and store it under ``key``, replacing any object there atomically."""
        ...

    async def get_to_file(self, key: str, dest: Path) -> None:
        """Decrypt the object into ``dest`` (atomically: ``dest`` appears only once it is authentic)."""
        ...

    async def open_encrypted(self, key: str, spool: Path) -> BinaryIO:
        """The object as stored (ciphertext), open for seekable reading; a copy needed to get there lives in
        ``spool`` only as an already-unlinked file, so nothing is left on disk whatever happens."""
        ...

    @property
    def keyring(self) -> Keyring:
        ...

    async def delete(self, key: str) -> None:
        """Remove the object; removing a missing object is not an error (deletes are retried)."""
        ...

    async def delete_prefix(self, prefix: str) -> int:
        """Remove every object whose key starts with ``prefix`` (non-empty); returns how many."""
        ...

    async def exists(self, key: str) -> bool:
        ...

    async def list_keys(self, prefix: str = "") -> list[str]:
        """Keys starting with ``prefix`` (plain string prefix, as in S3), sorted."""
        ...

    async def rotate(self, key: str) -> bool:
        """Re-wrap the object's data key under the current master key; False if it already was."""
        ...

    async def close(self) -> None:
        """Release connections; the store is unusable afterwards."""
        ...


def check_key(key: str) -> str:
    """Reject keys that could escape a local root or mean different objects on different backends.

    Both backends apply the same rules so that a key valid on one is valid on the other: relative,
    ``/``-separated, no empty, ``.`` or ``..`` segments, no segment starting with ``.`` (reserved for
    temporary files), no backslashes or control characters, not ending in ``.part`` (the suffix of temporary
    files that earlier local stores wrote, which listings skip), at most 1024 UTF-8 bytes.
    """
    if not key or len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise ValueError(f"object key must be 1..{MAX_KEY_BYTES} bytes: {key!r}")
    if "\\" in key or any(ord(c) < 32 or ord(c) == 127 for c in key):
        raise ValueError(f"object key has a backslash or control character: {key!r}")
    for segment in key.split("/"):
        if not segment or segment.startswith("."):
            raise ValueError(f"object key has an empty or dot segment: {key!r}")
    if key.endswith(".part"):
        raise ValueError(f"object key may not end in .part: {key!r}")
    return key


def check_prefix(prefix: str) -> str:
    """A listing prefix: empty (everything), or a key prefix, optionally ending in ``/``."""
    if prefix:
        check_key(prefix.removesuffix("/") if prefix.endswith("/") else prefix + "x")
    return prefix


async def rotate_prefix(store: ObjectStore, prefix: str = "") -> tuple[int, int]:
    """Re-wrap every object under ``prefix``: (rotated, already current). Safe to re-run after a crash."""
    rotated = current = 0
    for key in await store.list_keys(prefix):
        try:
            changed = await store.rotate(key)
        except ObjectNotFound:
            continue  # deleted since the listing
        rotated, current = (rotated + 1, current) if changed else (rotated, current + 1)
    return rotated, current


class SyncStore:
    """Blocking access to an ``ObjectStore`` for synchronous worker code, on a private event loop.

    The wrapped store must be used only through this adapter (an aiobotocore client belongs to the loop it
    was created on). Calls from several threads are serialised. Do not call it from a coroutine: it would
    block that event loop (asyncio refuses and raises ``RuntimeError``).
    """

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self._loop = asyncio.new_event_loop()
        self._lock = threading.Lock()

    def _run(self, aw: Awaitable[T]) -> T:
        async def wrapped() -> T:
            return await aw

        with self._lock:
            if self._loop.is_closed():
                raise RuntimeError("the store is closed")
            return self._loop.run_until_complete(wrapped())

    def put_file(self, key: str, source: Path, content_type: str | None = None) -> None:
        self._run(self.store.put_file(key, source, content_type))

    def get_to_file(self, key: str, dest: Path) -> None:
        self._run(self.store.get_to_file(key, dest))

    def open_decrypted(self, key: str, spool: Path) -> DecryptedView:
        """The object's plaintext as a seekable file object, decrypted as it is read (never written out)."""
        raw = self._run(self.store.open_encrypted(key, spool))
        try:
            return DecryptedView(raw, self.store.keyring)
        except BaseException:
            raw.close()
            raise

    def delete(self, key: str) -> None:
        self._run(self.store.delete(key))

    def delete_prefix(self, prefix: str) -> int:
        return self._run(self.store.delete_prefix(prefix))

    def exists(self, key: str) -> bool:
        return self._run(self.store.exists(key))

    def list_keys(self, prefix: str = "") -> list[str]:
        return self._run(self.store.list_keys(prefix))

    def rotate(self, key: str) -> bool:
        return self._run(self.store.rotate(key))

    def close(self) -> None:
        if self._loop.is_closed():
            return
        try:
            self._run(self.store.close())
        finally:
            with self._lock:
                self._loop.run_until_complete(self._loop.shutdown_asyncgens())
                self._loop.close()

    def __enter__(self) -> SyncStore:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
