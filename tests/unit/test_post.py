from __future__ import annotations

from processors.post.render import render
from processors.post.split import SplitRules, split_segment


def _seg(words: list[tuple[float, float, str]]) -> dict:
    return {"segment_id": "s:m:000000000", "start": 0.0, "end": 30.0, "channel": None, "text": "",
            "words": [{"start": a, "end": b, "word": w, "probability": 0.9} for a, b, w in words]}


def test_split_at_sentences_and_pauses() -> None:
    seg = _seg([(0.0, 0.5, " Hello"), (0.5, 1.2, " there."), (1.3, 1.6, " How"), (1.6, 2.0, " are"),
                (2.0, 2.5, " you"), (4.0, 4.5, " Fine"), (4.5, 5.0, " thanks.")])
    pieces = split_segment(seg)
    assert [p.text for p in pieces] == ["Hello there.", "How are you", "Fine thanks."]
    assert [p.id for p in pieces] == ["s:m:000000000.0", "s:m:000000000.1", "s:m:000000000.2"]
    assert pieces[1].start == 1.3 and pieces[1].end == 2.5
    assert pieces[0].confidence == 0.9


def test_split_caps_length() -> None:
    words = [(i * 0.5, i * 0.5 + 0.4, f" w{i}") for i in range(60)]
    pieces = split_segment(_seg(words), SplitRules(max_seconds=5.0))
    assert len(pieces) >= 6
    assert all(p.end - p.start <= 5.0 for p in pieces)
    assert " ".join(p.text for p in pieces) == " ".join(w.strip() for _, _, w in words)


def test_segment_without_words_keeps_its_text() -> None:
    seg = {**_seg([]), "text": " Only text."}
    assert [p.text for p in split_segment(seg)] == ["Only text."]
    assert split_segment({**_seg([]), "text": "  "}) == []


def test_render_formats() -> None:
    t = {"segments": [{"start": 0.0, "end": 1.5, "text": "Hello.", "speaker": None},
                      {"start": 3661.25, "end": 3662.0, "text": "Later.", "speaker": "agent"}]}
    srt = render(t, "srt")
    assert "1\n00:00:00,000 --> 00:00:01,500\nHello.\n" in srt
    assert "2\n01:01:01,250 --> 01:01:02,000\nagent: Later.\n" in srt
    vtt = render(t, "vtt")
    assert vtt.startswith("WEBVTT\n") and "01:01:01.250 --> 01:01:02.000\n<v agent>Later." in vtt
    assert render(t, "txt") == "Hello.\nagent: Later.\n"
