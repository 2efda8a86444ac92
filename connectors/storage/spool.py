"""Decoders need a file: a stored object is fetched (and decrypted) into a private temporary file for as long
as it is read, then removed."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from connectors.storage.base import SyncStore


@contextmanager
def fetched(store: SyncStore, key: str, spool: Path) -> Iterator[Path]:
    spool.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, name = tempfile.mkstemp(dir=spool, prefix="fetch-", suffix=Path(key).suffix[:10])
    os.close(fd)
    path = Path(name)
    try:
        store.get_to_file(key, path)
        yield path
    finally:
        path.unlink(missing_ok=True)
