"""Conversation metrics on real recordings, exact: the AMI excerpts with their reference RTTM, and the stereo call
with the turns its channels' energy gives. A transcript is built from the reference turns (one segment per turn);
the expected talk times, turns, interruptions, overlap and silences are computed here on a 1 ms grid (who is
active in each millisecond), independently of the processor's interval arithmetic, and must match it to the
millisecond. Through the pipeline (the real recogniser and diarization) the same metrics are checked within
tolerances in tests/integration/test_analytics.py."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from connectors.ingest.decode import decode_chunks
from processors.analytics.call import CallInput, Rules, analyze

PAUSE_MS, SILENCE_MS = 2000, 3000
RULES = Rules(turn_pause_s=PAUSE_MS / 1000, silence_threshold_s=SILENCE_MS / 1000)
Turn = tuple[int, int, str]  # start ms, end ms, speaker


def rttm(speech: Path) -> dict[str, list[Turn]]:
    out: dict[str, list[Turn]] = {}
    for line in (speech / "meetings" / "reference.rttm").read_text().splitlines():
        f = line.split()
        start = round(float(f[3]) * 1000)
        out.setdefault(f[1], []).append((start, start + round(float(f[4]) * 1000), f[7]))
    return out


def channel_turns(path: Path, names: tuple[str, ...]) -> list[Turn]:
    """Each channel's speech from its energy: 10 ms frames above -40 dBFS RMS, gaps under 300 ms bridged."""
    pcm = np.concatenate([c.frames for c in decode_chunks(path)]).astype(np.float64) / 32768
    turns: list[Turn] = []
    for ch, name in enumerate(names):
        frames = pcm[: len(pcm) // 160 * 160, ch].reshape(-1, 160)
        active = np.sqrt((frames ** 2).mean(axis=1)) > 0.01
        edges = np.flatnonzero(np.diff(np.r_[0, active.astype(int), 0]))
        runs = [[int(a) * 10, int(b) * 10] for a, b in zip(edges[::2], edges[1::2], strict=True)]
        merged: list[list[int]] = []
        for run in runs:
            if merged and run[0] - merged[-1][1] < 300:
                merged[-1][1] = run[1]
            else:
                merged.append(run)
        turns += [(a, b, name) for a, b in merged]
    return sorted(turns)


def transcript(turns: list[Turn]) -> list[dict]:
    """One segment per turn, its words spread evenly over it."""
    segments = []
    for i, (a, b, who) in enumerate(sorted(turns)):
        n = max(1, (b - a) // 400)
        step = (b - a) / n
        words = [{"start": (a + k * step) / 1000, "end": (a + (k + 1) * step) / 1000, "word": f" w{k}",
                  "probability": 1.0} for k in range(n)]
        segments.append({"id": f"s{i}", "index": i, "start": a / 1000, "end": b / 1000, "speaker": who,
                         "text": " ".join(w["word"].strip() for w in words), "words": words})
    return segments


@dataclass
class Expected:
    talk: dict[str, int]
    speech: int
    overlap: int
    speaker_overlap: dict[str, int]
    silence: int
    longest_silence: int
    silences: list[tuple[int, int]]
    turns: dict[str, int]
    longest_turn: int
    interruptions: list[tuple[int, str, str]]


def expected_from_grid(turns: list[Turn]) -> Expected:
    end = max(b for _, b, _ in turns)
    speakers = sorted({s for _, _, s in turns})
    grid = {s: np.zeros(end + 1, bool) for s in speakers}
    for a, b, s in turns:
        grid[s][a:b] = True  # millisecond m is speech when a <= m < b
    count = sum(g.astype(int) for g in grid.values())
    anyone = count > 0
    # silence: runs of nobody between the first and the last millisecond of speech
    first, last = np.flatnonzero(anyone)[[0, -1]]
    quiet = ~anyone[first:last + 1]
    edges = np.flatnonzero(np.diff(np.r_[0, quiet.astype(int), 0]))
    gaps = [(first + int(a), first + int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]
    # each speaker's stretches (runs of activity), then turns in order of start
    stretches = []
    for s in speakers:
        e = np.flatnonzero(np.diff(np.r_[0, grid[s].astype(int), 0]))
        stretches += [(int(a), int(b), s) for a, b in zip(e[::2], e[1::2], strict=True)]
    turn_list: list[list] = []
    for a, b, s in sorted(stretches):
        if turn_list and turn_list[-1][2] == s and a - turn_list[-1][1] <= PAUSE_MS:
            turn_list[-1][1] = max(turn_list[-1][1], b)
        else:
            turn_list.append([a, b, s])
    # an interruption: a turn starts at t while another speaker talked in the millisecond before and goes on
    interruptions = [(a, s, o) for a, _b, s in turn_list for o in speakers
                     if o != s and a > 0 and grid[o][a - 1] and grid[o][a]]
    return Expected(
        talk={s: int(grid[s].sum()) for s in speakers}, speech=int(anyone.sum()), overlap=int((count > 1).sum()),
        speaker_overlap={s: int((grid[s] & (count > 1)).sum()) for s in speakers},
        silence=sum(b - a for a, b in gaps), longest_silence=max((b - a for a, b in gaps), default=0),
        silences=[g for g in gaps if g[1] - g[0] >= SILENCE_MS],
        turns={s: sum(1 for t in turn_list if t[2] == s) for s in speakers},
        longest_turn=max(b - a for a, b, _ in turn_list), interruptions=interruptions)


def sec(ms: int) -> float:
    return round(ms / 1000, 3)


def check(result: dict, exp: Expected) -> None:
    by_id = {s["id"]: s for s in result["speakers"]}
    assert {k: by_id[k]["talk_time"] for k in exp.talk} == {k: sec(v) for k, v in exp.talk.items()}
    assert result["speech_time"] == sec(exp.speech)
    assert result["overlap_time"] == sec(exp.overlap)
    assert {k: by_id[k]["overlap_time"] for k in exp.talk} == {k: sec(v) for k, v in exp.speaker_overlap.items()}
    assert result["silence_total"] == sec(exp.silence)
    longest = result["longest_silence"]
    assert (longest["end"] - longest["start"] if longest else 0.0) == pytest.approx(sec(exp.longest_silence), abs=1e-9)
    assert [(s["start"], s["end"]) for s in result["silences"]] == [(sec(a), sec(b)) for a, b in exp.silences]
    assert {k: by_id[k]["turns"] for k in exp.turns} == exp.turns
    assert result["turns"] == sum(exp.turns.values())
    mono = result["longest_monologue"]
    assert mono["end"] - mono["start"] == pytest.approx(sec(exp.longest_turn), abs=1e-9)
    assert [(i["at"], i["by"], i["of"]) for i in result["interruptions"]] == [
        (sec(t), by, of) for t, by, of in sorted(exp.interruptions)]
    for sid in exp.talk:
        assert by_id[sid]["interruptions_made"] == sum(1 for i in exp.interruptions if i[1] == sid)
        assert by_id[sid]["interrupted"] == sum(1 for i in exp.interruptions if i[2] == sid)
    total = sum(exp.talk.values())
    assert {k: by_id[k]["talk_share"] for k in exp.talk} == {k: round(v / total, 4) for k, v in exp.talk.items()}


RECORDINGS = ("ami_dev00", "ami_dev01", "ami_trn03", "ami_trn04", "ami_trn05", "ami_trn06", "ami_trn08",
              "ami_trn09")


@pytest.mark.parametrize("recording", RECORDINGS)
def test_meeting_metrics_match_the_reference_turns_exactly(speech: Path, recording: str) -> None:
    turns = rttm(speech)[recording]
    result = analyze(CallInput(recording, 1, transcript(turns), duration=30.0), rules=RULES)
    assert result["timing"] == "segments"
    check(result, expected_from_grid(turns))


@pytest.mark.parametrize("recording", RECORDINGS)
def test_diarization_turns_are_the_timing_when_given(speech: Path, recording: str) -> None:
    """Acoustic diarization: the turns (which may overlap) time the call, the transcript gives the words."""
    turns = rttm(speech)[recording]
    one_segment = transcript([(0, 30_000, "SPEAKER_00")])
    call = CallInput(recording, 1, one_segment, turns=[{"start": a / 1000, "end": b / 1000, "speaker": s}
                                                        for a, b, s in turns], duration=30.0)
    result = analyze(call, rules=RULES)
    assert result["timing"] == "turns"
    check(result, expected_from_grid(turns))


def test_one_meeting_by_hand(speech: Path) -> None:
    """ami_trn04 read off its RTTM lines, as a check on the grid computation itself: MEE076 14.032-15.776,
    MEO074 14.345-16.816, MEE075 16.736-23.952, MEO074 21.158-21.765, MEE075 25.200-25.936 and
    26.992-27.264 (one turn: 1.056 s apart, nobody between), MEE076 27.840-30.000."""
    exp = expected_from_grid(rttm(speech)["ami_trn04"])
    assert exp.turns == {"MEE075": 2, "MEE076": 2, "MEO074": 2}
    assert exp.interruptions == [(14345, "MEO074", "MEE076"), (16736, "MEE075", "MEO074"),
                                 (21158, "MEO074", "MEE075")]
    assert exp.talk == {"MEE075": 7216 + 736 + 272, "MEE076": 1744 + 2160, "MEO074": 2471 + 607}
    assert exp.overlap == (15776 - 14345) + (16816 - 16736) + (21765 - 21158)
    assert exp.silence == (25200 - 23952) + (26992 - 25936) + (27840 - 27264)


def test_stereo_call_metrics_match_its_channels_exactly(speech: Path) -> None:
    """The stereo call: one party per channel, talking at once (the customer starts while the agent talks)."""
    turns = channel_turns(speech / "calls" / "stereo_two_party.wav", ("CHANNEL_1", "CHANNEL_2"))
    speakers = [{"id": "CHANNEL_1", "label": "agent", "channel": 0}, {"id": "CHANNEL_2", "label": "customer",
                                                                      "channel": 1}]
    result = analyze(CallInput("call", 1, transcript(turns), speakers=speakers, duration=5.0), rules=RULES)
    exp = expected_from_grid(turns)
    check(result, exp)
    assert exp.interruptions and exp.overlap > 1500  # the reference itself: they talk over each other
    assert [s["name"] for s in result["speakers"]] == ["agent", "customer"]
