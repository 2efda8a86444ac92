"""Local-directory object storage: objects are files under a root, written atomically."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import BinaryIO


class ObjectNotFound(FileNotFoundError):
    pass


class LocalObjectStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise ValueError(f"object key escapes the store: {key!r}")
        return path

    def writer(self, key: str) -> tuple[BinaryIO, Path]:
        """An open temporary file for ``key`` and its path; ``commit`` it when complete."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        return open(tmp, "wb"), tmp

    def commit(self, key: str, tmp: Path) -> None:
        os.replace(tmp, self._path(key))

    def put_file(self, key: str, source: Path) -> None:
        fh, tmp = self.writer(key)
        with fh, open(source, "rb") as src:
            shutil.copyfileobj(src, fh)
        self.commit(key, tmp)

    def local_path(self, key: str) -> Path:
        """A path the decoder can open (for remote backends: a downloaded copy)."""
        path = self._path(key)
        if not path.exists():
            raise ObjectNotFound(key)
        return path

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self._path(key).exists()
