"""Speakers through the whole pipeline on the real broker, PostgreSQL and models (issue 13): every word goes to
the speaker who said it, the demo prints the two women's lines under two labels, the speaker count asked for
is the count found, re-diarization makes a new revision with the same words and no recognition, and channel
mode does no acoustic work."""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from scipy.optimize import linear_sum_assignment

from bench.corpus import write_meeting
from streamscribe.client import Client
from tests.conftest import normalize
from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration

DEMO = Path(__file__).resolve().parents[2] / ".cache" / "demo" / "pyannote" / "audio" / "sample"


@pytest.fixture(scope="module")
def sample() -> Path:
    if not (DEMO / "sample.wav").exists():
        pytest.fail(f"the demo sample is missing at {DEMO}: `make test` fetches it (Makefile target)")
    return DEMO / "sample.wav"


def stm_lines(path: Path) -> list[tuple[float, float, str, str]]:
    """The sample's reference: (start, end, speaker, text) per line."""
    out = []
    for line in path.read_text().splitlines():
        _rec, _ch, who, start, end, *text = line.split()
        out.append((float(start), float(end), who, " ".join(text)))
    return out


def words(transcript: dict[str, Any]) -> list[dict[str, Any]]:
    return [w for s in transcript["segments"] for w in s["words"]]


def word_accuracy(transcript: dict[str, Any], reference: list[tuple[float, float, str, str]]) -> tuple[float, int]:
    """Share of the words said by one reference speaker (their middle inside one speaker's lines only) that
    carry that speaker's label, under the best one-to-one mapping of labels; and how many words were scored."""
    pairs = []
    for w in words(transcript):
        middle = (w["start"] + w["end"]) / 2
        who = {spk for a, b, spk, _ in reference if a - 0.05 <= middle <= b + 0.05}
        if len(who) == 1:
            pairs.append((w["speaker"], who.pop()))
    hyp = sorted({str(h) for h, _ in pairs})
    ref = sorted({r for _, r in pairs})
    counts = [[sum(1 for h, r in pairs if str(h) == a and r == b) for b in ref] for a in hyp]
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return sum(counts[i][j] for i, j in zip(rows, cols, strict=True)) / len(pairs), len(pairs)


def speaker_of(transcript: dict[str, Any], start: float, end: float) -> set[str]:
    """The speakers of the words whose middle lies in [start, end]."""
    return {w["speaker"] for w in words(transcript) if start <= (w["start"] + w["end"]) / 2 <= end}


def embedding_passes(stack: Stack) -> float:
    """Speaker embedding passes the diarization worker has made so far (its Prometheus metrics)."""
    port = stack.info["children"]["diarization"]["metrics_port"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return sum(float(m) for m in re.findall(
        r'^streamscribe_diarization_seconds_count\{[^}]*step="embed"[^}]*\} (\S+)$', text, re.M))


async def test_each_word_goes_to_the_speaker_who_said_it(stack: Stack, sample: Path) -> None:
    job, t = await stack.transcribe(sample)  # the defaults `make demo` uses: diarize auto, acoustic for mono
    assert job["status"] == "completed", job
    reference = stm_lines(sample.with_suffix(".stm"))
    assert len(t["speakers"]) == 2, t["speakers"]
    assert all(w.get("speaker") for w in words(t)), "a word without a speaker"
    # segments are cut where the speaker changes: every word of a segment is its speaker's
    for seg in t["segments"]:
        assert {w["speaker"] for w in seg["words"]} == {seg["speaker"]}, seg
        assert isinstance(seg["overlap"], list) and all(isinstance(w["overlap"], list) for w in seg["words"])
    accuracy, scored = word_accuracy(t, reference)
    print(f"\nwords attributed to the right speaker: {accuracy:.1%} of {scored}")
    assert scored >= 60 and accuracy >= 0.9, (accuracy, scored)
    # Diane's "Oh, hello. I didn't know you were there." and Sheila's "Neither did I." under two labels;
    # Diane's last line in one piece
    diane, sheila = speaker_of(t, 8.44, 9.80), speaker_of(t, 9.84, 10.78)
    assert len(diane) == 1 and len(sheila) == 1 and diane != sheila, (diane, sheila)
    assert speaker_of(t, 28.45, 29.99) == diane
    assert speaker_of(t, 14.45, 17.77) == sheila


async def test_overlapped_speech_is_marked_on_the_words(stack: Stack, speech: Path) -> None:
    # ami_trn09: four people, 13 s of its 30 talked over (reference.rttm)
    job, t = await stack.transcribe(speech / "meetings" / "ami_trn09.flac", diarize="acoustic")
    assert job["status"] == "completed", job
    marked = [w for w in words(t) if w["overlap"]]
    assert marked, "no word marked as overlapped in a meeting where people talk at once"
    assert all(w["speaker"] not in w["overlap"] for w in marked)
    pieces = [s for s in t["segments"] if s["overlap"]]
    assert pieces and all(set(s["overlap"]) >= {o for w in s["words"] for o in w["overlap"]} for s in pieces)


async def test_the_demo_prints_the_two_womens_lines_under_two_labels(stack: Stack, sample: Path) -> None:
    # what `make demo` runs after starting its stack: `streamscribe transcribe FILE` with the defaults, as text
    done = stack.cli("transcribe", str(sample), "--server", stack.url)
    assert done.returncode == 0, done.stderr
    # "LABEL: text", or "LABEL [overlap: OTHER]: text" where someone talks over the line
    lines = [(label.split(" [overlap")[0], text) for label, text in
             (line.split("]: ", 1) if "[overlap" in line.split(": ", 1)[0] else line.split(": ", 1)
              for line in done.stdout.splitlines() if ": " in line)]
    labels = {label for label, _ in lines}
    assert len(labels) == 2, done.stdout

    def label_of(words_said: str) -> set[str]:
        return {label for label, text in lines if normalize(words_said) in normalize(text)}

    assert label_of("didn't know you were there") != label_of("neither did i"), done.stdout
    assert len(label_of("didn't know you were there")) == 1 and len(label_of("neither did i")) == 1, done.stdout
    assert len(label_of("new jersey now")) == 1, done.stdout


async def test_speaker_count_asked_for_is_the_count_found(stack: Stack, tmp_path: Path) -> None:
    meeting = write_meeting(tmp_path / "meeting.wav", 120.0)  # 2 minutes of AMI excerpts: many voices
    for fields, allowed in (({"speakers": "3"}, {3}), ({"speakers": "1"}, {1}),
                            ({"min_speakers": "5", "max_speakers": "6"}, {5, 6})):
        job, t = await stack.transcribe(meeting, diarize="acoustic", **fields)
        assert job["status"] == "completed", job
        assert len(t["speakers"]) in allowed, (fields, t["speakers"])
        # only the speakers listed speak
        assert {s["speaker"] for s in t["segments"]} - {None} <= {s["label"] for s in t["speakers"]}, fields


async def test_rediarize_keeps_the_words_and_does_not_recognise_again(stack: Stack, sample: Path) -> None:
    job, first = await stack.transcribe(sample, diarize="acoustic")
    assert job["status"] == "completed" and len(first["speakers"]) == 2, job
    job_id = job["job_id"]
    conn = await stack.db()
    try:
        async with Client(stack.url) as client:
            made = await client.rediarize(job_id, speakers=3, speaker_names=["Ann", "Bea", "Cy"])
            assert made["revision"] == 2 and made["based_on"] == 1, made
            entry = await client.wait_revision(job_id, made["revision"], timeout=300)
            assert entry["status"] == "completed", entry
            second = await client.transcript(job_id, revision=made["revision"])
            listed = await client.revisions(job_id)
        stages = {r["stage"].removeprefix("streamscribe-") for r in await conn.fetch(
            "SELECT stage FROM job_stages WHERE job_id = $1 AND revision = $2", job_id, made["revision"])}
        first_stages = {r["stage"].removeprefix("streamscribe-") for r in await conn.fetch(
            "SELECT stage FROM job_stages WHERE job_id = $1 AND revision = 1", job_id)}
    finally:
        await conn.close()
    assert sorted(r["revision"] for r in listed["revisions"]) == [1, 2], listed
    # no recognition ran for revision 2; diarization did
    assert "asr" in first_stages and "asr" not in stages and "diarization" in stages, (first_stages, stages)
    # the same words, at the same times; three speakers now, with the names given
    assert [(w["word"], w["start"], w["end"]) for w in words(second)] == [
        (w["word"], w["start"], w["end"]) for w in words(first)]
    assert len(second["speakers"]) == 3, second["speakers"]
    assert {s["label"] for s in second["speakers"]} == {"Ann", "Bea", "Cy"}
    # the command line does the same: back to two speakers
    done = stack.cli("rediarize", job_id, "--speakers", "2", "--server", stack.url, "--format", "json")
    assert done.returncode == 0, done.stderr
    async with Client(stack.url) as client:
        third = await client.transcript(job_id, revision=3)
    assert len(third["speakers"]) == 2, third["speakers"]
    assert normalize(third["text"]) == normalize(first["text"])


async def test_bad_rediarize_requests_get_clear_errors(stack: Stack, speech: Path) -> None:
    job, _ = await stack.transcribe(speech / "read" / "jfk.flac", diarize="off")
    assert job["status"] == "completed", job
    async with Client(stack.url) as client:
        for body, needle in (({"speakers": 0}, "speakers"), ({"speakers": 2, "colour": "red"}, "colour"),
                             ({"diarize": "off"}, "diarize"), ({"revision": 9}, "revision 9")):
            async with client.session.post(f"{client.base}/v1/jobs/{job['job_id']}/rediarize", json=body) as resp:
                problem = await resp.json()
                assert resp.status in (400, 409) and needle in problem["detail"], (body, resp.status, problem)
        assert [r["revision"] for r in (await client.revisions(job["job_id"]))["revisions"]] == [1]


async def test_channel_mode_does_no_acoustic_work(stack: Stack, speech: Path) -> None:
    before = embedding_passes(stack)
    job, t = await stack.transcribe(speech / "calls" / "stereo_two_party.wav")  # diarize auto: channels
    assert job["status"] == "completed", job
    assert {s["id"] for s in t["speakers"]} == {"CHANNEL_1", "CHANNEL_2"}, t["speakers"]
    assert {s["speaker"] for s in t["segments"]} == {"CHANNEL_1", "CHANNEL_2"}
    assert all(w["speaker"] == s["speaker"] for s in t["segments"] for w in s["words"])
    assert embedding_passes(stack) == before, "channel mode computed speaker embeddings"
