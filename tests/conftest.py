"""Shared fixtures: where the real speech lives, and reference transcripts; the broker of the session.

``STREAMSCRIBE_TEST_BROKER`` (``tansu``, the default, or ``apache``) picks the broker every stack of the session
runs (tests/integration/conftest.py). A test marked ``@pytest.mark.broker(NAME)`` only makes sense on that
broker: on the other it is deselected here, never skipped silently, and the summary names it with the reason.
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

import pytest

BROKERS = ("tansu", "apache")
BROKER = os.environ.get("STREAMSCRIBE_TEST_BROKER", "tansu").strip().lower()
if BROKER not in BROKERS:
    raise pytest.UsageError(f"STREAMSCRIBE_TEST_BROKER={BROKER!r}: use one of {', '.join(BROKERS)}")

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


_DESELECTED: list[str] = []


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the tests that only make sense on another broker than the session's (reported at the end)."""
    keep, drop = [], []
    for item in items:
        marker = item.get_closest_marker("broker")
        (drop if marker is not None and BROKER not in marker.args else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_deselected(items: list[pytest.Item]) -> None:
    """Every deselected test with its reason, whoever deselected it (the broker marker above, ``-m``, ``-k``)."""
    for item in items:
        marker = item.get_closest_marker("broker")
        if marker is not None and BROKER not in marker.args:
            reason = f"only on {' or '.join(marker.args)}"
        else:
            option = item.config.option
            chosen = [f"-m {option.markexpr!r}" if option.markexpr else "",
                      f"-k {option.keyword!r}" if option.keyword else ""]
            reason = "not selected by " + (" ".join(c for c in chosen if c) or "the command line")
        _DESELECTED.append(f"{item.nodeid} ({reason})")


def pytest_report_header(config: pytest.Config) -> str:
    return f"streamscribe test broker: {BROKER} (STREAMSCRIBE_TEST_BROKER)"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _DESELECTED:
        terminalreporter.section(f"deselected ({len(_DESELECTED)}; broker {BROKER})")
        for line in _DESELECTED:
            terminalreporter.write_line(line)
