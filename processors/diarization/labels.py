"""Speaker labels and the speaker options of a job: the label of the speaker a channel carries, the names a
job gives its speakers, and the speaker count it asks for."""

from __future__ import annotations

from collections.abc import Mapping


def channel_speaker(channel: int) -> str:
    return f"CHANNEL_{channel + 1}"


def acoustic_speaker(index: int) -> str:
    """The label of the ``index``-th speaker (from 0) found by acoustic diarization, in order of first speech."""
    return f"SPEAKER_{index + 1:02d}"


def speaker_names(options: Mapping[str, str]) -> list[str]:
    """The ``speaker_names`` option (comma-separated, blanks dropped): channels in order, or acoustic speakers in
    the order they first speak."""
    return [n.strip() for n in options.get("speaker_names", "").split(",") if n.strip()]


def display_name(label: str, names: list[str]) -> str:
    """The name ``speaker_names`` gives a speaker label (``CHANNEL_n`` or ``SPEAKER_nn``), else the label."""
    prefix, _, number = label.rpartition("_")
    if prefix in ("CHANNEL", "SPEAKER") and number.isdigit() and 0 < int(number) <= len(names):
        return names[int(number) - 1]
    return label


def _positive(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() and int(value) > 0 else None


def speaker_bounds(options: Mapping[str, str]) -> tuple[int | None, int | None]:
    """(min, max) speakers a job asks for: ``speakers`` fixes the count (min == max), otherwise
    ``min_speakers``/``max_speakers`` bound it (None: not bounded on that side)."""
    exact = _positive(options.get("speakers"))
    if exact:
        return exact, exact
    return _positive(options.get("min_speakers")), _positive(options.get("max_speakers"))
