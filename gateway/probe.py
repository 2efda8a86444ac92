"""What a recording holds, found before it is stored: duration, codec, container, sample rate, channels, or
the reason it holds no decodable audio."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from connectors.ingest.decode import DecodeError, check_complete, decode_chunks, probe
from foundation.logs import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class Probe:
    """What PyAV found in a recording; ``error`` says why there is no decodable audio in it."""

    duration: float | None = None
    codec: str | None = None
    container: str | None = None
    sample_rate: int | None = None
    channels: int | None = None
    error: str | None = None


def probe_path(path: Path) -> Probe:
    """Read the container and audio stream headers, decode the first moments of audio, and check that the
    recording is whole (``check_complete``: its structure, and its last seconds against the duration it
    declares): a file that claims an audio stream but holds nothing decodable, or whose end is missing, is refused
    here, not later in the pipeline. Blocking: call it in a thread."""
    try:
        info = probe(path)
        chunks = cast(Generator[Any, None, None], decode_chunks(path, 0.25))  # a generator: close it
        try:
            next(chunks)
        finally:
            chunks.close()
        check_complete(path)
    except DecodeError as exc:
        return Probe(error=str(exc))
    except Exception as exc:  # a decoder surprise is the file's problem, not a server error
        log.warning("probe failed", error=repr(exc))
        return Probe(error=f"unsupported or corrupt file: {type(exc).__name__}")
    return Probe(duration=info.duration, codec=info.codec, container=info.container,
                 sample_rate=info.sample_rate or None, channels=info.channels or None)
