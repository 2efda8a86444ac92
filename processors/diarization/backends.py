"""The diarization backends a worker holds, by name: each is built once, at the worker's start when it is
preloaded, otherwise at the first stream that asks for it, and then kept (its models stay loaded)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping

from processors.diarization.backend import DiarizationBackend


class UnknownBackend(ValueError):
    pass


class Backends:
    def __init__(self, factories: Mapping[str, Callable[[], DiarizationBackend]], default: str,
                 preload: Iterable[str] = ()) -> None:
        if default not in factories:
            raise UnknownBackend(f"unknown default diarization backend {default!r}; one of {', '.join(factories)}")
        self._factories = dict(factories)
        self._loaded: dict[str, DiarizationBackend] = {}
        self.default = default
        self.load_seconds: dict[str, float] = {}
        for name in preload:
            self.get(name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._factories)

    @property
    def loaded(self) -> tuple[str, ...]:
        return tuple(self._loaded)

    def name_for(self, options: Mapping[str, str]) -> str:
        """The backend a stream asks for (``diarization_backend``), else the default."""
        return options.get("diarization_backend") or self.default

    def get(self, name: str) -> DiarizationBackend:
        backend = self._loaded.get(name)
        if backend is None:
            factory = self._factories.get(name)
            if factory is None:
                raise UnknownBackend(f"unknown diarization backend {name!r}; one of {', '.join(self._factories)}")
            started = time.monotonic()
            backend = self._loaded[name] = factory()
            self.load_seconds[name] = round(time.monotonic() - started, 2)
        return backend
