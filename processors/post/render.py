"""Render a transcript (the JSON shape the API serves) as JSON, SRT, WebVTT or plain text.

Overlapped speech is marked where a segment's speaker was not alone: its label names the others heard with
it (``Alice [overlap: Bob]: ...`` in SRT and text; in WebVTT the voice span is followed by a ``<c.overlap>``
class span naming them, which players may style or ignore).
"""

from __future__ import annotations

import json
from typing import Any

FORMATS = ("json", "srt", "vtt", "txt")
MEDIA_TYPES = {
    "json": "application/json",
    "srt": "application/x-subrip",
    "vtt": "text/vtt",
    "txt": "text/plain",
}


def _clock(seconds: float, sep: str) -> str:
    ms = max(0, round(seconds * 1000))
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def _others(seg: dict[str, Any]) -> str:
    return ", ".join(seg.get("overlap") or [])


def _label(seg: dict[str, Any]) -> str:
    if not seg.get("speaker"):
        return ""
    others = _others(seg)
    return f"{seg['speaker']} [overlap: {others}]: " if others else f"{seg['speaker']}: "


def to_srt(transcript: dict[str, Any]) -> str:
    blocks = []
    for i, seg in enumerate(transcript["segments"], start=1):
        blocks.append(f"{i}\n{_clock(seg['start'], ',')} --> {_clock(seg['end'], ',')}\n{_label(seg)}{seg['text']}\n")
    return "\n".join(blocks)


def to_vtt(transcript: dict[str, Any]) -> str:
    blocks = ["WEBVTT\n"]
    for seg in transcript["segments"]:
        voice = f"<v {seg['speaker']}>" if seg.get("speaker") else ""
        others = _others(seg)
        mark = f" <c.overlap>[overlap: {others}]</c>" if others and voice else ""
        blocks.append(f"{_clock(seg['start'], '.')} --> {_clock(seg['end'], '.')}\n{voice}{seg['text']}{mark}\n")
    return "\n".join(blocks)


def to_txt(transcript: dict[str, Any]) -> str:
    lines = [f"{_label(seg)}{seg['text']}" for seg in transcript["segments"]]
    return "\n".join(lines) + ("\n" if lines else "")


def to_rttm(recording: str, turns: list[dict[str, Any]]) -> str:
    """Speaker turns as NIST RTTM lines (the format diarization scoring tools read)."""
    return "".join(
        f"SPEAKER {recording} 1 {t['start']:.3f} {t['end'] - t['start']:.3f} <NA> <NA> {t['speaker']} <NA> <NA>\n"
        for t in turns
    )


def render(transcript: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(transcript, indent=2, ensure_ascii=False)
    if fmt == "srt":
        return to_srt(transcript)
    if fmt == "vtt":
        return to_vtt(transcript)
    if fmt == "txt":
        return to_txt(transcript)
    raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
