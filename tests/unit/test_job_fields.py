"""Job tags and priority are validated before anything is stored; files are probed for decodable audio."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.files import SAFE_MEDIA_TYPE, _disposition
from gateway.options import MAX_TAGS, parse_priority, parse_tags
from gateway.probe import probe_path
from gateway.problems import Problem


def _detail(exc: pytest.ExceptionInfo[Problem]) -> str:
    assert exc.value.status == 400
    return str(json.loads(exc.value.text or "{}")["detail"])


def test_tags_from_a_comma_list_or_a_json_list() -> None:
    assert parse_tags("") == []
    assert parse_tags(" a, b:1 ,,c-d.e_f, ") == ["a", "b:1", "c-d.e_f"]
    assert parse_tags("x,y,x") == ["x", "y"]  # duplicates dropped, order kept
    assert parse_tags(["team:support", "Q3"]) == ["team:support", "Q3"]
    assert parse_tags([]) == []
    assert parse_tags("t" * 64) == ["t" * 64]
    assert len(parse_tags(",".join(f"t{i}" for i in range(MAX_TAGS)))) == MAX_TAGS


@pytest.mark.parametrize("value", ["a b", "t" * 65, "naïve", "semi;colon", "slash/y", ["ok", ""], ["ok", 3],
                                   [None], "tag\n2", 7, {"a": 1}, None])
def test_bad_tags_are_a_400(value: object) -> None:
    with pytest.raises(Problem) as exc:
        parse_tags(value)  # type: ignore[arg-type]
    assert "tag" in _detail(exc)


def test_at_most_twenty_tags() -> None:
    with pytest.raises(Problem) as exc:
        parse_tags([f"t{i}" for i in range(MAX_TAGS + 1)])
    assert "at most 20" in _detail(exc)


def test_priority() -> None:
    assert [parse_priority(p) for p in ("low", "normal", "high")] == ["low", "normal", "high"]
    for bad in ("urgent", "", "HIGH", None, 1, ["high"]):
        with pytest.raises(Problem) as exc:
            parse_priority(bad)
        assert "priority must be one of high, normal, low" in _detail(exc)


def test_probe_finds_metadata_or_the_reason(speech: Path, tmp_path: Path) -> None:
    stereo = probe_path(speech / "calls" / "stereo_two_party.wav")
    assert (stereo.codec, stereo.container, stereo.sample_rate, stereo.channels, stereo.error) == (
        "pcm_s16le", "wav", 16000, 2, None)
    assert stereo.duration == pytest.approx(5.0, abs=0.05)
    mp3 = probe_path(speech / "calls" / "call_center_phone_call.mp3")
    assert mp3.container == "mp3" and mp3.channels == 1 and mp3.sample_rate == 48000 and mp3.error is None
    text = tmp_path / "notes.txt"
    text.write_text("not a recording\n" * 40)
    assert "no audio stream" in (probe_path(text).error or "")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    assert probe_path(empty).error == "empty file (0 bytes)"
    truncated = tmp_path / "truncated.flac"
    truncated.write_bytes((speech / "read" / "jfk.flac").read_bytes()[:60])
    assert probe_path(truncated).error


def test_downloads_name_the_file_safely() -> None:
    assert _disposition("call.wav") == "attachment; filename=\"call.wav\"; filename*=UTF-8''call.wav"
    header = _disposition('a"b\r\nc ü.wav')
    assert "\r" not in header and "\n" not in header and 'filename="a_b__c _.wav"' in header
    assert "filename*=UTF-8''a%22b%0D%0Ac%20%C3%BC.wav" in header
    assert SAFE_MEDIA_TYPE.fullmatch("audio/wav") and SAFE_MEDIA_TYPE.fullmatch("audio/x-wav")
    assert not SAFE_MEDIA_TYPE.fullmatch("text/html") and not SAFE_MEDIA_TYPE.fullmatch("audio/wav\r\nX: y")


def test_uploaded_names_become_safe_names_and_keys() -> None:
    from gateway.uploads import clean_filename, object_key

    assert clean_filename("call.WAV") == "call.WAV" and clean_filename(None) == "upload"
    assert clean_filename("../../etc/passwd") == "passwd" and clean_filename("C:\\rec\\a.mp3") == "a.mp3"
    assert clean_filename("a\x00b\x1f.wav") == "ab.wav" and clean_filename("\x00") == "upload"
    assert clean_filename("x\udcff.wav") == "x?.wav"
    assert object_key("uploads/j1", "call.WAV") == "uploads/j1/original.wav"
    assert object_key("files/f1", "notes") == "files/f1/original"
    assert object_key("files/f1", "a.\x01wav") == "files/f1/original"
    assert object_key("files/f1", "a.tar.verylongsuffix") == "files/f1/original"


def test_text_parameters_postgresql_can_hold() -> None:
    from gateway.validation import check_text

    assert check_text("", "query.tag") == "" and check_text("ok", "query.tag") == "ok"
    for bad in ("a\x00b", "\udcff"):
        with pytest.raises(Problem) as exc:
            check_text(bad, "query.tag")
        assert "query.tag" in _detail(exc)
