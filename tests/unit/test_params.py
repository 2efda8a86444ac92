"""Request parameters read the same way by every list: limits, page cursors, job options."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from faster_whisper.tokenizer import _LANGUAGE_CODES

from gateway.options import validate_options
from gateway.params import decode_cursor, encode_cursor, next_cursor, parse_limit
from gateway.problems import Problem
from processors.asr.languages import JOB_LANGUAGES, LANGUAGES


def _detail(exc: pytest.ExceptionInfo[Problem]) -> str:
    assert exc.value.status == 400
    return str(json.loads(exc.value.text or "{}")["detail"])


def test_a_cursor_comes_back_as_the_item_it_was_made_from() -> None:
    at = datetime(2026, 11, 30, 4, 5, 6, 789012, tzinfo=UTC)
    assert decode_cursor(encode_cursor(at.isoformat(), "job-1")) == (at, "job-1")
    items = [{"created_at": at.isoformat(), "job_id": f"j{i}"} for i in range(3)]
    assert next_cursor(items, 3, "job_id") is None  # fetched limit + 1 and got no more: the last page
    assert decode_cursor(next_cursor(items, 2, "job_id") or "") == (at, "j1")
    for bad in ("not-base64!", encode_cursor("yesterday", "j"), "WzEsMiwzXQ=="):
        with pytest.raises(Problem) as exc:
            decode_cursor(bad)
        assert "cursor" in _detail(exc)


def test_limits_are_clamped_and_must_be_integers() -> None:
    assert parse_limit({}) == 50 and parse_limit({"limit": "0"}) == 1 and parse_limit({"limit": "999"}) == 200
    with pytest.raises(Problem) as exc:
        parse_limit({"limit": "ten"})
    assert _detail(exc) == "limit must be an integer"


@pytest.mark.parametrize(("fields", "said"), [
    ({"diarize": "maybe"}, "diarize must be one of"),
    ({"beam_size": "11"}, "beam_size must be an integer from 1 to 10"),
    ({"min_speakers": "3", "max_speakers": "2"}, "min_speakers must not exceed max_speakers"),
    ({"redact": "email,ssn"}, "redact must be off, all"),
    ({"speaker_threshold": "nan"}, "speaker_threshold must be a number"),
    ({"speaker_threshold": "0"}, "speaker_threshold must be a number"),
    ({"language": "0"}, "language must be a language code the recognizer knows"),
    ({"language": "english"}, "language must be a language code the recognizer knows"),
])
def test_options_a_worker_could_not_honour_are_a_400(fields: dict[str, str], said: str) -> None:
    with pytest.raises(Problem) as exc:
        validate_options(fields)
    assert said in _detail(exc)


def test_valid_options_pass() -> None:
    validate_options({"diarize": "channels", "beam_size": "5", "min_speakers": "2", "max_speakers": "2",
                      "redact": "email,phone", "speaker_threshold": "1", "language": "en"})
    for language in ("auto", "yue", "haw"):
        validate_options({"language": language})


def test_the_languages_a_job_may_name_are_those_the_recognizer_accepts() -> None:
    """A language the ASR stage would refuse (it once took "0" and dead-lettered the job's speech) is refused
    when the job is made; the list is faster-whisper's own."""
    assert set(LANGUAGES) == set(_LANGUAGE_CODES)
    assert set(JOB_LANGUAGES) == {"auto", *_LANGUAGE_CODES}
