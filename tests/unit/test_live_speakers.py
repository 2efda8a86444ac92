"""Finals of a live session with their provisional speakers: whichever of the recogniser's final and the
diarization's PARTIAL turns comes second completes the message; a final never waits past its deadline; the
revised labels are compared with those sent."""

from __future__ import annotations

from typing import Any

from gateway.live_speakers import LiveSpeakers


def _final(seg_id: str, start: float, end: float) -> dict[str, Any]:
    words = [{"start": start + 0.1, "end": start + 0.5, "word": " hi", "probability": 0.9},
             {"start": end - 0.5, "end": end - 0.1, "word": " there", "probability": 0.9}]
    return {"id": seg_id, "start": start, "end": end, "text": "hi there", "speaker": None, "channel": None,
            "confidence": 0.9, "words": words}


def _turns(seg_id: str, turns: list[tuple[float, float, str]], names: dict[str, str] | None = None) -> dict:
    return {"kind": "PARTIAL", "segment_id": seg_id, "turns": [{"start": a, "end": b, "speaker": s}
                                                                for a, b, s in turns],
            "speakers": [{"id": s, "label": (names or {}).get(s, s)} for s in {s for *_, s in turns}]}


def test_a_label_that_comes_first_goes_out_with_the_final() -> None:
    live = LiveSpeakers(wait_s=1.0)
    assert live.turns(_turns("a", [(0.0, 2.0, "SPEAKER_01")], {"SPEAKER_01": "Ann"})) == []
    (msg,) = live.final(_final("a", 0.0, 2.0), now=10.0)
    assert msg["type"] == "final" and msg["segment"]["speaker"] == "Ann"
    assert msg["segment"]["speaker_provisional"] is True
    assert [w["speaker"] for w in msg["segment"]["words"]] == ["Ann", "Ann"]


def test_a_final_waits_for_its_label_then_goes_with_it() -> None:
    live = LiveSpeakers(wait_s=1.0)
    assert live.final(_final("b", 3.0, 5.0), now=10.0) == []
    assert live.next_deadline() == 11.0
    assert live.due(now=10.5) == []
    (msg,) = live.turns(_turns("b", [(3.0, 3.9, "SPEAKER_02"), (3.9, 5.0, "SPEAKER_01")]))
    assert msg["segment"]["speaker"] in ("SPEAKER_01", "SPEAKER_02")
    assert [w["speaker"] for w in msg["segment"]["words"]] == ["SPEAKER_02", "SPEAKER_01"]
    assert live.next_deadline() is None


def test_a_final_whose_label_is_late_goes_without_it_and_the_label_follows() -> None:
    live = LiveSpeakers(wait_s=1.0)
    live.final(_final("c", 6.0, 8.0), now=10.0)
    (sent,) = live.due(now=11.0)
    assert sent["type"] == "final" and sent["segment"]["speaker"] is None
    (update,) = live.turns(_turns("c", [(6.0, 8.0, "SPEAKER_01")]))
    assert update == {"type": "speaker", "segment_id": "c", "speaker": "SPEAKER_01", "provisional": True}
    assert live.turns(_turns("c", [(6.0, 8.0, "SPEAKER_01")])) == []  # a redelivered label changes nothing


def test_the_revised_labels_are_compared_with_those_sent() -> None:
    live = LiveSpeakers(wait_s=1.0)
    live.turns(_turns("s:m:1", [(0.0, 2.0, "SPEAKER_01")]))
    live.final(_final("s:m:1", 0.0, 2.0), now=0.0)
    live.turns(_turns("s:m:2", [(3.0, 5.0, "SPEAKER_01")]))
    live.final(_final("s:m:2", 3.0, 5.0), now=0.0)
    transcript = {"speakers": [{"id": "SPEAKER_01"}, {"id": "SPEAKER_02"}], "segments": [
        {"id": "s:m:1.0", "speaker": "SPEAKER_01", "words": [{}, {}]},
        {"id": "s:m:2.0", "speaker": "SPEAKER_02", "words": [{}, {}, {}]},
        {"id": "s:m:2.1", "speaker": "SPEAKER_01", "words": [{}]}]}
    revised = live.revised(transcript)
    assert revised["type"] == "speakers" and revised["provisional"] is False
    by_id = {s["id"]: s for s in revised["segments"]}
    assert by_id["s:m:1"]["speaker"] == "SPEAKER_01" and not by_id["s:m:1"]["changed"]
    assert by_id["s:m:2"]["speaker"] == "SPEAKER_02" and by_id["s:m:2"]["changed"]
    assert [p["speaker"] for p in by_id["s:m:2"]["pieces"]] == ["SPEAKER_02", "SPEAKER_01"]
