"""Request bodies: text with NUL characters is refused before it reaches PostgreSQL."""

from gateway.problems import _has_nul


def test_nul_anywhere_in_a_json_body_is_found() -> None:
    assert _has_nul({"options": ["x", {"language": "en\x00"}]})
    assert _has_nul({"na\x00me": 1})
    assert not _has_nul({"options": [1, "en", None, {"k": True}]})
