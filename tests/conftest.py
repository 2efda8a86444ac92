"""Shared fixtures: where the real speech lives, and reference transcripts."""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("STREAMSCRIBE_SHARED", REPO.parent / "shared")).resolve()
SPEECH = SHARED / "data" / "speech"


@pytest.fixture(scope="session")
def speech() -> Path:
    if not SPEECH.is_dir():
        pytest.fail(f"real speech for tests is expected at {SPEECH} (set STREAMSCRIBE_SHARED)")
    return SPEECH


def read_references(speech_dir: Path) -> dict[str, str]:
    with open(speech_dir / "read" / "transcripts.tsv", newline="") as fh:
        return {row["file"]: row["text"] for row in csv.DictReader(fh, delimiter="\t")}


def normalize(text: str) -> str:
    text = text.lower().replace("-", " ")
    text = re.sub(r"[^a-z0-9' ]", " ", text)
    return " ".join(text.split())
