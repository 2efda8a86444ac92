"""Speaker labels: the label of the speaker a channel carries, and the names a job gives its speakers."""

from __future__ import annotations


def channel_speaker(channel: int) -> str:
    return f"CHANNEL_{channel + 1}"


def speaker_names(options: dict[str, str]) -> list[str]:
    """The ``speaker_names`` option (comma-separated, blanks dropped) in channel order."""
    return [n.strip() for n in options.get("speaker_names", "").split(",") if n.strip()]
