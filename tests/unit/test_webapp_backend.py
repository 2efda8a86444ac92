"""The gateway parts the web app added, one function at a time: word edits, excerpts of a speaker, the job
feed's messages, the app's Content-Security-Policy, media types, the WebSocket subprotocol credential, and
that every new route is in the OpenAPI document (the full check runs on the live stack)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request

from foundation.settings import Settings
from gateway import openapi
from gateway.app import create_app
from gateway.auth.ws_subprotocol import offered_token
from gateway.job_feed import ends_job, stage_message
from gateway.media import SentOnce, media_type
from gateway.problems import Problem
from gateway.transcript_edits import parse_edits
from gateway.webapp import content_security_policy
from processors.audio.excerpts import cut, pick_spans
from repositories.edits import apply_word_edits, segment_text
from repositories.recordings import Recording

WORDS = [{"start": 0.0, "end": 0.4, "word": " The", "probability": 0.9},
         {"start": 0.4, "end": 0.9, "word": " horizon", "probability": 0.3},
         {"start": 0.9, "end": 1.3, "word": " seems", "probability": 0.8}]


def test_a_word_edit_keeps_timings_and_spacing() -> None:
    edited = apply_word_edits(WORDS, {1: "  Horizon's "})
    assert edited[1] == {"start": 0.4, "end": 0.9, "word": " Horizon's", "probability": 1.0}
    assert edited[0] == WORDS[0] and edited[2] == WORDS[2]
    assert segment_text(edited) == "The Horizon's seems"
    assert WORDS[1]["word"] == " horizon", "the input is not changed"


def test_an_empty_edit_removes_the_word() -> None:
    assert segment_text(apply_word_edits(WORDS, {0: ""})) == "horizon seems"


@pytest.mark.parametrize("body", [{}, {"words": []}, {"words": [1]}, {"words": [{"segment_id": "s", "index": -1,
                                                                                   "word": "x"}]},
                                  {"words": [{"segment_id": "s", "index": True, "word": "x"}]},
                                  {"words": [{"segment_id": "", "index": 0, "word": "x"}]},
                                  {"words": [{"segment_id": "s", "index": 0, "word": "x" * 201}]}])
def test_bad_edits_are_refused(body: dict[str, object]) -> None:
    with pytest.raises(Problem) as err:
        parse_edits(body)
    assert err.value.status == 400


def test_edits_are_grouped_by_segment() -> None:
    body = {"words": [{"segment_id": "a", "index": 2, "word": "x"}, {"segment_id": "a", "index": 0, "word": "y"},
                      {"segment_id": "b", "index": 1, "word": ""}]}
    assert parse_edits(body) == {"a": {2: "x", 0: "y"}, "b": {1: ""}}


def test_the_longest_turns_of_a_speaker_are_picked_in_time_order() -> None:
    turns = [{"start": 0, "end": 2, "speaker": "A"}, {"start": 2, "end": 12, "speaker": "B"},
             {"start": 12, "end": 20, "speaker": "A"}, {"start": 20, "end": 20.5, "speaker": "A"},
             {"start": 21, "end": 30, "speaker": "A"}]
    assert pick_spans(turns, "A", 12) == [(12.0, 15.0), (21.0, 30.0)]
    assert pick_spans(turns, "A", 100) == [(0.0, 2.0), (12.0, 20.0), (21.0, 30.0)]
    assert pick_spans([{"start": 1, "end": 1.5, "speaker": "C"}], "C", 60) == [(1.0, 1.5)]
    assert pick_spans(turns, "nobody", 60) == []


def test_cut_takes_the_speakers_channel_or_the_mix() -> None:
    frames = np.stack([np.arange(100, dtype=np.int16), -np.arange(100, dtype=np.int16)], axis=1)
    assert cut(frames, 10, [(1.0, 2.0), (5.0, 5.5)], channel=1).tolist() == [-v for v in [*range(10, 20),
                                                                                          *range(50, 55)]]
    assert cut(frames, 10, [(0.0, 1.0)]).tolist() == [0] * 10
    assert cut(frames, 10, []).size == 0


def test_stage_reports_as_the_browser_gets_them() -> None:
    ev = {"job_id": "j", "stream_id": "j", "revision": 2, "stage": "streamscribe-asr", "state": "RUNNING",
          "progress": 0.5, "message": None, "error": None, "at": 1_700_000_000_000}
    assert stage_message(ev) == {"job_id": "j", "revision": 2, "stage": "asr", "state": "running", "progress": 0.5,
                                 "message": None, "error": None, "at": 1_700_000_000_000}
    assert not ends_job(ev)
    assert ends_job({**ev, "stage": "streamscribe-post", "state": "COMPLETED"})
    assert ends_job({**ev, "state": "FAILED"})
    assert not ends_job({**ev, "stage": "streamscribe-vad", "state": "COMPLETED"})


def test_the_app_policy_allows_no_inline_script() -> None:
    policy = dict(part.split(" ", 1) for part in content_security_policy("abc").split("; "))
    assert policy["script-src"] == "'self'"
    assert policy["style-src"] == "'self' 'nonce-abc'"
    assert policy["connect-src"] == "'self'" and policy["frame-ancestors"] == "'none'"
    assert "nonce" not in content_security_policy()


def test_media_type_of_a_recording() -> None:
    def rec(content_type: str | None, filename: str | None, source: str = "upload") -> Recording:
        return Recording("j", "o", "uploads/j/x", filename, content_type, source)

    assert media_type(rec("audio/flac", "a.flac")) == "audio/flac"
    assert media_type(rec("text/html", "a.mp3")) == "audio/mpeg"
    assert media_type(rec(None, None, "live")) == "audio/wav"
    assert media_type(rec("application/octet-stream", "notes.txt")) == "application/octet-stream"


def test_a_websocket_offers_its_token_as_a_subprotocol() -> None:
    upgrade = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Protocol": "streamscribe, bearer.ey.x.y"}
    assert offered_token(make_mocked_request("GET", "/v1/live", headers=upgrade)) == "ey.x.y"
    assert offered_token(make_mocked_request("GET", "/v1/live", headers={**upgrade, "Upgrade": ""})) is None
    plain = {**upgrade, "Sec-WebSocket-Protocol": "streamscribe"}
    assert offered_token(make_mocked_request("GET", "/v1/live", headers=plain)) is None


def test_the_new_routes_are_documented(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMSCRIBE_HOME", str(tmp_path))
    app: web.Application = create_app(Settings(home=tmp_path))
    served = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter") or ""
        if route.method != "HEAD":
            served.add((re.sub(r"\{(\w+)(:[^}]*)?\}", r"{\1}", path), route.method))
    new = {("/v1/events", "GET"), ("/v1/jobs/{job_id}/audio", "GET"), ("/v1/jobs/{job_id}/edits", "POST"),
           ("/v1/jobs/{job_id}/speakers/{speaker_id}/enroll", "POST"), ("/", "GET")}
    assert new <= served
    doc = json.loads(json.dumps(app[openapi.DOCUMENT]))
    documented = {(p, m.upper()) for p, ops in doc["paths"].items() for m in ops}
    assert new - {("/", "GET")} <= documented


async def test_a_decrypted_copy_is_served_once_with_ranges(tmp_path: Path) -> None:
    """The audio handler sends the file itself, then deletes the plaintext: aiohttp must not send it again
    (it did, for a bad Range header, and the connection broke)."""
    data = bytes(range(256)) * 40

    async def handler(request: web.Request) -> web.StreamResponse:
        path = tmp_path / "copy.bin"
        path.write_bytes(data)
        try:
            response = SentOnce(path, headers={"Content-Type": "audio/wav"})
            await response.prepare(request)
            return response
        finally:
            path.unlink()

    app = web.Application()
    app.router.add_get("/", handler)
    async with TestClient(TestServer(app)) as client:
        whole = await client.get("/")
        assert whole.status == 200 and await whole.read() == data
        part = await client.get("/", headers={"Range": "bytes=10-19"})
        assert part.status == 206 and await part.read() == data[10:20]
        for bad in ("", "junk", "bytes=", f"bytes={len(data)}-"):
            refused = await client.get("/", headers={"Range": bad})
            assert refused.status == 416, bad
    assert not (tmp_path / "copy.bin").exists()
