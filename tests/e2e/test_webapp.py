"""The web app in a real browser (Debian's Chromium via Playwright) on the real stack: sign in, upload real
recordings and watch their progress pushed live, the transcript synced to the audio (click to seek, the
highlight follows playback), rename a speaker, correct a word into a new revision, download SRT, search into
the transcript at the hit's time, live microphone transcription, API keys, and every page's screenshot."""

from __future__ import annotations

import base64
import csv
import json
import re
import time
import urllib.request
import wave
from pathlib import Path
from typing import Any

import jiwer
import numpy as np
import pytest
from playwright.sync_api import Browser, Page, Playwright, expect

from connectors.ingest.decode import decode_chunks
from tests.conftest import SPEECH, normalize
from tests.e2e.conftest import TOKEN_IN_URL, VIEWPORT, WebStack, launch, screenshot, sign_in, watch

pytestmark = pytest.mark.e2e

STEREO = SPEECH / "calls" / "stereo_two_party.wav"
MEETING = SPEECH / "meetings" / "ami_dev00.flac"
JOB_TIMEOUT = 240


def wait_job(web: WebStack, job_id: str, timeout: float = JOB_TIMEOUT) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, job, _ = web.call("GET", f"/v1/jobs/{job_id}")
        assert status == 200, job
        if job["status"] in ("completed", "failed", "cancelled"):
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} did not finish within {timeout} s")


def transcript(web: WebStack, job_id: str, revision: int | None = None) -> dict[str, Any]:
    status, body, _ = web.call("GET", f"/v1/jobs/{job_id}/transcript" + (f"?revision={revision}" if revision else ""))
    assert status == 200, body
    return body


def audio_time(page: Page) -> float:
    return float(page.evaluate("document.querySelector('audio').currentTime"))


def open_transcript(page: Page, web: WebStack, job_id: str, query: str = "") -> None:
    page.goto(f"{web.url}/#/jobs/{job_id}{query}")
    expect(page.get_by_test_id("play")).to_be_enabled(timeout=30_000)


def drop_files(page: Page, paths: list[Path]) -> None:
    """A real drop event on the drop zone, carrying the files in its DataTransfer."""
    files = [(p.name, base64.b64encode(p.read_bytes()).decode(), "audio/wav" if p.suffix == ".wav" else "audio/flac")
             for p in paths]
    transfer = page.evaluate_handle("""(files) => {
      const dt = new DataTransfer();
      for (const [name, b64, type] of files) {
        const bin = atob(b64);
        const bytes = new Uint8Array(bin.length);
        for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
        dt.items.add(new File([bytes], name, { type }));
      }
      return dt;
    }""", files)
    page.dispatch_event("[data-testid=dropzone]", "dragover", {"dataTransfer": transfer})
    page.dispatch_event("[data-testid=dropzone]", "drop", {"dataTransfer": transfer})


SNAPSHOT_JS = """() => [...document.querySelectorAll('li.job')].map((li) => ({
  id: li.dataset.jobId, status: li.className,
  stages: [...li.querySelectorAll('li.stage')].map((s) => [s.dataset.stage, s.dataset.state,
                                                          s.querySelector('progress').value]),
}))"""


# Every state the job list takes, recorded in the page as the DOM changes (a MutationObserver): on a fast machine a
# stage of a short job can go from waiting to done between two reads of the DOM from the test.
RECORD_JS = f"""() => {{
  const snapshot = {SNAPSHOT_JS};
  window.__seen = [];
  new MutationObserver(() => window.__seen.push(snapshot())).observe(
    document.body, {{subtree: true, childList: true, attributes: true, characterData: true}});
}}"""


@pytest.fixture(scope="module")
def uploaded(browser: Browser, web: WebStack) -> dict[str, Any]:
    """Two real recordings dropped at once on the jobs page with options set; every state the page showed meanwhile
    (recorded in the page at each change of the DOM, without reloading) and the requests it made."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    errors = watch(page, web)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(f"{r.method} {r.url}"))
    sign_in(page, web, web.member)
    drop_files(page, [STEREO, MEETING])
    expect(page.get_by_role("list", name="Files to upload").get_by_role("listitem")).to_have_count(2)
    page.locator("details.options summary").click()
    page.get_by_label("Tags").fill("e2e,meeting")
    page.get_by_label("Priority").select_option("high")
    page.evaluate(RECORD_JS)
    page.get_by_role("button", name="Transcribe 2 files").click()
    expect(page.locator("li.job")).to_have_count(2, timeout=30_000)
    screenshot(page, "jobs-running")
    deadline = time.monotonic() + JOB_TIMEOUT
    while time.monotonic() < deadline:
        snap = page.evaluate(SNAPSHOT_JS)
        if len(snap) == 2 and all("job-completed" in j["status"] for j in snap):
            break
        time.sleep(0.1)
    seen: list[list[dict[str, Any]]] = [*page.evaluate("window.__seen"), snap]
    ids = {j["id"] for j in seen[-1]}
    by_name = {}
    for job_id in ids:
        job = wait_job(web, job_id, 5)
        by_name[job["filename"]] = job
    screenshot(page, "jobs")
    context.close()
    return {"seen": seen, "requests": requests, "errors": errors, "jobs": by_name}


def test_sign_in_by_role_and_sign_out(browser: Browser, web: WebStack) -> None:
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    errors = watch(page, web)
    response = page.goto(web.url + "/")
    assert response is not None
    csp = response.headers["content-security-policy"]
    script_src = re.search(r"script-src ([^;]*)", csp)
    assert script_src and script_src.group(1).strip() == "'self'", csp
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    screenshot(page, "sign-in")

    page.get_by_label("Email").fill(web.member.email)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("Wrong email or password")

    page.get_by_label("Password").fill(web.member.password)
    page.get_by_role("button", name="Sign in").click()
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Jobs")).to_be_visible()
    for name in ("Search", "Live", "Speakers", "Settings", "Users"):
        expect(nav.get_by_role("link", name=name)).to_be_visible()
    expect(nav.get_by_role("link", name="Organizations")).to_have_count(0)  # an org admin manages no tenants
    storage = page.evaluate("() => ({local: {...localStorage}, session: {...sessionStorage}})")
    assert storage["local"] == {}, "nothing is kept in localStorage"
    assert set(storage["session"]) <= {"streamscribe.refresh", "streamscribe.email"}
    assert storage["session"]["streamscribe.refresh"].startswith("ssr_")

    page.reload()  # the tab's session resumes from its refresh token (the access token lived in memory)
    expect(nav.get_by_role("link", name="Users")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    assert "streamscribe.refresh" not in page.evaluate("() => ({...sessionStorage})")

    sign_in(page, web, web.admin)  # the platform admin also sees organizations
    expect(nav.get_by_role("link", name="Organizations")).to_be_visible()
    page.get_by_role("link", name="Organizations").click()
    expect(page.get_by_role("table", name="Organizations")).to_contain_text("Default organisation")
    screenshot(page, "organizations")
    context.close()
    assert not errors, errors
    assert not [u for u in web.seen_urls if TOKEN_IN_URL.search(u)], "a credential travelled in a URL"


def test_upload_progress_is_pushed_live(uploaded: dict[str, Any]) -> None:
    jobs = uploaded["jobs"]
    assert set(jobs) == {STEREO.name, MEETING.name}
    assert all(j["status"] == "completed" for j in jobs.values()), jobs
    assert all(j["tags"] == ["e2e", "meeting"] and j["priority"] == "high" for j in jobs.values())
    # the page showed the stages moving (some done while others were not), then every job completed
    states = [(s[0], s[1], s[2]) for snap in uploaded["seen"] for j in snap for s in j["stages"]]
    assert any(state == "running" or 0 < value < 1 for _, state, value in states), "no stage seen in progress"
    assert any(any(s[1] == "completed" for s in j["stages"]) and "job-completed" not in j["status"]
               for snap in uploaded["seen"] for j in snap), "no intermediate state was shown"
    # ...pushed over the event stream, not polled: the list was fetched once, the stream opened
    requests = uploaded["requests"]
    assert sum(1 for r in requests if re.match(r"GET \S+/v1/jobs(\?|$)", r)) == 1, requests
    assert any(re.match(r"GET \S+/v1/events", r) for r in requests)
    assert not uploaded["errors"], uploaded["errors"]


def test_transcript_follows_the_audio(page: Page, web: WebStack, uploaded: dict[str, Any]) -> None:
    job = uploaded["jobs"][STEREO.name]
    open_transcript(page, web, job["job_id"])
    words = page.locator(".words .w")
    assert words.count() > 10
    # a click on a word seeks the audio to the word's start
    target = words.nth(1)
    start = float(target.get_attribute("data-start") or "nan")
    target.click()
    assert abs(audio_time(page) - start) < 0.02, (audio_time(page), start)
    expect(page.locator(".w.active")).to_have_attribute("data-start", str(target.get_attribute("data-start")))
    # playback moves the highlight forward, word by word
    page.get_by_test_id("play").click()
    highlighted = []
    until = time.monotonic() + 1.5  # well before the end of the 5 s recording
    while time.monotonic() < until:
        highlighted += page.evaluate("[...document.querySelectorAll('.w.active')].map((w) => +w.dataset.start)")
        time.sleep(0.05)
    page.keyboard.press("k")  # the keyboard shortcut pauses
    expect(page.get_by_test_id("play")).to_have_text("Play")
    assert len(set(highlighted)) >= 3, highlighted
    assert highlighted == sorted(highlighted) and highlighted[-1] > start, highlighted
    now = audio_time(page)
    assert now > start + 1.0
    page.keyboard.press("j")  # back 5 s
    assert audio_time(page) == pytest.approx(max(0.0, now - 5), abs=0.05)
    page.get_by_label("Speed").select_option("1.5")
    assert page.evaluate("document.querySelector('audio').playbackRate") == 1.5
    # speakers in colours with a timeline of who spoke when
    expect(page.locator(".timeline .lane")).to_have_count(2)
    expect(page.locator(".segment .chip")).to_have_count(len(transcript(web, job["job_id"])["segments"]))
    screenshot(page, "transcript-playing")
    assert not page.errors, page.errors  # type: ignore[attr-defined]


def test_rename_speaker_everywhere(page: Page, web: WebStack, uploaded: dict[str, Any]) -> None:
    job_id = uploaded["jobs"][STEREO.name]["job_id"]
    open_transcript(page, web, job_id)
    before = transcript(web, job_id)
    speaker = before["speakers"][0]
    shown = speaker["name"] or speaker["label"]
    page.get_by_role("button", name=f"Rename {shown}").click()
    page.get_by_label(f"New name for {shown}").fill("Dorothy")
    page.get_by_role("button", name="Save", exact=True).click()
    own = [s for s in before["segments"] if s["speaker_id"] == speaker["id"]]
    expect(page.locator(".segment .chip", has_text="Dorothy")).to_have_count(len(own))
    expect(page.locator(".speakers")).to_contain_text("Dorothy")
    after = transcript(web, job_id)
    assert {s["speaker"] for s in after["segments"] if s["speaker_id"] == speaker["id"]} == {"Dorothy"}
    assert not page.errors, page.errors  # type: ignore[attr-defined]


def test_edit_word_makes_a_new_revision(page: Page, web: WebStack, uploaded: dict[str, Any]) -> None:
    job_id = uploaded["jobs"][STEREO.name]["job_id"]
    original = transcript(web, job_id)
    open_transcript(page, web, job_id, f"?rev={original['revision']}")
    seg = original["segments"][0]
    index = 3
    word = seg["words"][index]
    page.get_by_role("button", name="Edit words").click()
    page.locator(f".segment[data-segment-id='{seg['id']}'] .w").nth(index).click()
    field = page.get_by_label(f"Correct “{word['word'].strip()}”")
    field.fill("Marvellous")
    field.press("Enter")
    page.get_by_test_id("save-edits").click()
    expect(page).to_have_url(re.compile(rf"rev={original['revision'] + 1}"))
    expect(page.locator(".w", has_text="Marvellous")).to_have_count(1)
    revisions = page.get_by_role("region", name="Revisions")
    expect(revisions.locator("li")).to_have_count(2)
    expect(revisions).to_contain_text(f"edited from {original['revision']}")
    edited = transcript(web, job_id, original["revision"] + 1)
    new_word = edited["segments"][0]["words"][index]
    assert new_word["word"].strip() == "Marvellous"
    assert (new_word["start"], new_word["end"]) == (word["start"], word["end"]), "the word keeps its timing"
    assert "Marvellous" in edited["segments"][0]["text"]
    kept = transcript(web, job_id, original["revision"])
    assert kept["segments"] == original["segments"], "the revision edited is kept as it was"
    # the compare view shows the correction
    revisions.get_by_role("button", name="Compare").click()
    expect(page.get_by_test_id("diff").locator("ins")).to_contain_text("Marvellous", ignore_case=True)
    removed = re.sub(r"[^\w']", "", word["word"])
    expect(page.get_by_test_id("diff").locator("del")).to_contain_text(removed, ignore_case=True)
    screenshot(page, "compare")
    assert not page.errors, page.errors  # type: ignore[attr-defined]


def test_download_srt(page: Page, web: WebStack, uploaded: dict[str, Any]) -> None:
    job_id = uploaded["jobs"][STEREO.name]["job_id"]
    open_transcript(page, web, job_id)
    with page.expect_download() as info:
        page.get_by_role("button", name="SRT").click()
    download = info.value
    assert download.suggested_filename.endswith(".srt")
    text = Path(download.path()).read_text()
    assert re.search(r"^1\n00:00:\d\d,\d{3} --> 00:00:\d\d,\d{3}\n", text, re.M), text
    status, body, _ = web.call("GET", f"/v1/jobs/{job_id}/transcript?format=srt")
    assert status == 200 and text == body.decode(), "the download is the gateway's SRT"
    assert not page.errors, page.errors  # type: ignore[attr-defined]


def test_search_opens_the_transcript_at_the_hit(page: Page, web: WebStack, uploaded: dict[str, Any]) -> None:
    job_id = uploaded["jobs"][MEETING.name]["job_id"]
    segments = transcript(web, job_id)["segments"]
    later = [s for s in segments if s["start"] > 3.0]
    assert later, segments
    # a word of a segment well into the meeting, and not a common one
    word = max((w for s in later for w in re.findall(r"[A-Za-z]{5,}", s["text"])), key=len)
    page.get_by_role("link", name="Search").click()
    page.get_by_label("Words or phrases").fill(word)
    page.get_by_role("button", name="Search", exact=True).click()
    hits = page.get_by_role("list", name="Results").get_by_role("listitem")
    expect(hits.first).to_be_visible()
    expect(hits.first.locator("mark").first).to_be_visible()
    screenshot(page, "search")
    status, found, _ = web.call("GET", f"/v1/search?q={word}")
    assert status == 200, found
    hit = found["hits"][0]
    hits.first.get_by_role("link").click()
    expect(page).to_have_url(re.compile(rf"#/jobs/{hit['job_id']}\?"))
    expect(page.get_by_test_id("play")).to_have_text("Pause", timeout=30_000)  # playing from the hit
    page.get_by_test_id("play").click()
    at = audio_time(page)
    assert hit["start"] <= at < hit["start"] + 3.0, (at, hit)
    segment = page.locator(f".segment[data-segment-id='{hit['segment_id']}']")
    expect(segment).to_contain_text(word, ignore_case=True)
    assert not page.errors, page.errors  # type: ignore[attr-defined]


def test_enroll_a_voice_from_a_transcript_speaker(page: Page, web: WebStack, uploaded: dict[str, Any]) -> None:
    job_id = uploaded["jobs"][MEETING.name]["job_id"]
    meeting = transcript(web, job_id)
    speaker = meeting["speakers"][0]
    label = speaker["name"] or speaker["label"]
    words = [w for seg in meeting["segments"] for w in seg["words"]]
    at = words[len(words) // 3]["start"] + 0.01
    open_transcript(page, web, job_id, f"?t={at}")
    expect(page.locator(".w.active")).to_have_count(1)
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "transcript")  # the README's picture: a meeting, its speakers, the current word marked
    page.get_by_role("button", name=f"Save the voice of {label} as a profile").click()
    expect(page.get_by_role("status").filter(has_text="is being computed")).to_be_visible()
    page.get_by_role("link", name="Speakers").click()
    row = page.get_by_role("row").filter(has_text=label)
    expect(row).to_contain_text("ready", timeout=60_000)  # computed by the diarization workers
    screenshot(page, "speakers")
    assert not page.errors, page.errors  # type: ignore[attr-defined]


def test_api_key_create_show_once_revoke(page: Page, web: WebStack) -> None:
    page.get_by_role("link", name="Settings").click()
    page.get_by_role("link", name="API keys").click()
    page.get_by_label("Name").fill("e2e integration")
    page.get_by_role("button", name="Create key").click()
    secret = page.get_by_test_id("key-secret").inner_text().strip()
    assert secret.startswith("ssk_")
    status, me, _ = web.call("GET", "/v1/me", token=secret)
    assert status == 200 and me["role"] == "api_client", me
    screenshot(page, "settings-keys")
    page.get_by_role("button", name="Done").click()
    expect(page.get_by_test_id("new-key")).to_have_count(0)
    assert secret not in page.content(), "the secret is shown once"
    row = page.get_by_role("row").filter(has_text="e2e integration")
    row.get_by_role("button", name="Revoke e2e integration").click()
    page.get_by_role("dialog").get_by_role("button", name="Revoke").click()
    expect(row).to_contain_text("revoked")
    status, body, _ = web.call("GET", "/v1/me", token=secret)
    assert status == 401, body
    assert not page.errors, page.errors  # type: ignore[attr-defined]


def test_settings_and_admin_pages(page: Page, web: WebStack) -> None:
    """Every remaining page renders without errors, each form control has a label, and is screenshotted."""
    page.get_by_role("link", name="Settings").click()
    page.get_by_role("link", name="Webhooks").click()
    page.get_by_label("Endpoint URL").fill("https://hooks.example.com/streamscribe")
    page.get_by_role("button", name="Add webhook").click()
    expect(page.get_by_text("Signing secret for")).to_be_visible()
    page.get_by_role("button", name="Deliveries").click()
    expect(page.get_by_role("heading", name="Delivery log")).to_be_visible()
    screenshot(page, "settings-webhooks")
    # no delivery is ever attempted to that (unreachable) host: the subscription goes again
    page.get_by_role("listitem").filter(has_text="hooks.example.com").get_by_role("button", name="Delete").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    expect(page.get_by_text("No webhooks.")).to_be_visible()
    for tab, title in (("Retention", "Retention"), ("Usage", "Usage")):
        page.get_by_role("link", name=tab, exact=True).click()
        expect(page.get_by_role("heading", name=title, exact=True)).to_be_visible()
    expect(page.get_by_role("table", name="Usage by organization")).to_contain_text("default")
    screenshot(page, "settings-usage")
    page.get_by_role("link", name="Users").click()
    expect(page.get_by_role("table", name="Users")).to_contain_text(web.member.email)
    screenshot(page, "users")
    for view in ("#/jobs", "#/search", "#/live", "#/speakers", "#/settings/keys", "#/settings/webhooks",
                 "#/settings/retention", "#/settings/usage", "#/admin/users"):
        page.goto(f"{web.url}/{view}")
        page.locator("#page-title").wait_for()
        unlabelled = page.evaluate("""() => [...document.querySelectorAll('input, select, textarea')]
          .filter((el) => el.type !== 'hidden' && !el.labels?.length && !el.getAttribute('aria-label'))
          .map((el) => el.outerHTML)""")
        assert unlabelled == [], (view, unlabelled)
    assert not page.errors, page.errors  # type: ignore[attr-defined]


def wait_analytics(web: WebStack, job_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body, _ = web.call("GET", f"/v1/jobs/{job_id}/analytics")
        if status == 200:
            return dict(body)
        time.sleep(0.5)
    raise AssertionError(f"no analytics for {job_id} within {timeout} s")


def test_call_analytics_beside_the_transcript_and_the_aggregates(page: Page, web: WebStack,
                                                                  uploaded: dict[str, Any]) -> None:
    job = uploaded["jobs"][STEREO.name]
    analytics = wait_analytics(web, job["job_id"])
    open_transcript(page, web, job["job_id"])
    card = page.get_by_test_id("call-analytics")
    expect(card.locator("tr[data-speaker-id]")).to_have_count(len(analytics["speakers"]))
    for s in analytics["speakers"]:
        cells = card.locator(f'tr[data-speaker-id="{s["id"]}"] td')
        expect(cells.nth(1)).to_have_text(f"{round(s['talk_share'] * 100)}%")
        expect(cells.nth(2)).to_have_text(str(s["turns"]))
    # the customer talks over the agent: the interruption is listed, and its time seeks the recording there
    assert len(analytics["interruptions"]) == 1, analytics["interruptions"]
    interruption = card.get_by_test_id("interruptions").locator("li")
    expect(interruption).to_have_count(1)
    expect(interruption).to_contain_text("interrupted")
    interruption.get_by_role("button").click()
    assert audio_time(page) == pytest.approx(analytics["interruptions"][0]["at"], abs=0.05)
    card.scroll_into_view_if_needed()
    screenshot(page, "transcript-analytics")
    # the organization's aggregates: the page's totals are the API's
    page.get_by_role("link", name="Analytics").click()
    page.get_by_role("heading", name="Analytics", exact=True).wait_for()
    status, body, _ = web.call("GET", "/v1/analytics?granularity=hour")
    assert status == 200 and body["totals"]["calls"] >= 2, body
    totals = page.get_by_test_id("analytics-totals")
    calls = totals.locator("div").filter(has=page.get_by_text("Calls", exact=True)).locator("dd")
    expect(calls).to_have_text(str(body["totals"]["calls"]))
    assert page.get_by_test_id("chart-calls").locator("rect.bar").count() == len(body["windows"])
    screenshot(page, "analytics")
    assert not page.errors, page.errors  # type: ignore[attr-defined]


def test_audio_is_served_with_ranges(web: WebStack, uploaded: dict[str, Any]) -> None:
    job_id = uploaded["jobs"][STEREO.name]["job_id"]
    original = STEREO.read_bytes()
    status, whole, headers = web.call("GET", f"/v1/jobs/{job_id}/audio")
    assert status == 200 and whole == original and headers["Accept-Ranges"] == "bytes"
    status, part, headers = web.call("GET", f"/v1/jobs/{job_id}/audio", headers={"Range": "bytes=1000-1999"})
    assert status == 206 and part == original[1000:2000], (status, headers)
    assert headers["Content-Range"] == f"bytes 1000-1999/{len(original)}"
    status, _, _ = web.call("GET", f"/v1/jobs/{job_id}/audio", token="ssk_0_wrong")
    assert status == 401


def _wav_16k(source: Path, dest: Path, lead: float = 0.5, tail: float = 2.0) -> float:
    """``source`` as 16-bit 16 kHz mono WAV (what Chromium's fake microphone plays), with silence around it;
    returns its duration."""
    pcm = np.concatenate([c.frames for c in decode_chunks(source)])[:, 0]
    pcm = np.concatenate([np.zeros(int(16000 * lead), np.int16), pcm, np.zeros(int(16000 * tail), np.int16)])
    with wave.open(str(dest), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(pcm.astype("<i2").tobytes())
    return len(pcm) / 16000


def _upload(web: WebStack, path: Path) -> str:
    boundary = "e2e-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{path.name}\"\r\n"
            "Content-Type: audio/wav\r\n\r\n").encode() + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(web.url + "/v1/jobs", data=body, method="POST", headers={
        "Authorization": f"Bearer {web.admin_key}", "Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(request, timeout=60) as resp:
        return str(json.loads(resp.read())["job_id"])


def test_live_microphone(playwright: Playwright, web: WebStack, tmp_path: Path) -> None:
    """Chromium's fake microphone plays a real recording into the live page; the finals that appear match the
    recording about as well as the batch transcript of the same file does."""
    name = "LJ001-0003.wav"
    with open(SPEECH / "read" / "transcripts.tsv", newline="") as fh:
        reference = normalize(next(r["text"] for r in csv.DictReader(fh, delimiter="\t") if r["file"] == name))
    mic = tmp_path / "mic.wav"
    seconds = _wav_16k(SPEECH / "read" / name, mic)
    batch_id = _upload(web, mic)  # the batch transcript of the same file, made meanwhile
    browser = launch(playwright, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                     f"--use-file-for-fake-audio-capture={mic}%noloop")
    try:
        context = browser.new_context(viewport=VIEWPORT, permissions=["microphone"])
        page = context.new_page()
        errors = watch(page, web)
        sign_in(page, web, web.member)
        page.get_by_role("link", name="Live").click()
        page.get_by_test_id("live-start").click()
        expect(page.get_by_test_id("live-state")).to_have_attribute("data-state", "live", timeout=30_000)
        played_by = time.monotonic() + seconds + 1.0  # the fake microphone plays the file once from the start
        expect(page.locator(".final").first).to_be_visible(timeout=60_000)  # a final while still recording
        page.wait_for_timeout(max(0.0, played_by - time.monotonic()) * 1000)
        screenshot(page, "live")
        page.get_by_test_id("live-stop").click()
        expect(page.get_by_test_id("live-state")).to_have_attribute("data-state", "done", timeout=120_000)
        live_text = normalize(" ".join(t.split(" ", 1)[1] for t in page.locator(".final").all_inner_texts()))
        job_href = page.get_by_test_id("live-job").get_attribute("href") or ""
        context.close()
        assert not errors, errors
    finally:
        browser.close()
    assert not [u for u in web.seen_urls if TOKEN_IN_URL.search(u)], "a credential travelled in a URL"
    live_job = job_href.rsplit("/", 1)[-1]
    assert wait_job(web, live_job)["source"] == "live"
    assert wait_job(web, batch_id)["status"] == "completed"
    batch_text = normalize(transcript(web, batch_id)["text"])
    live_wer, batch_wer = jiwer.wer(reference, live_text), jiwer.wer(reference, batch_text)
    print(f"live WER {live_wer:.3f} batch WER {batch_wer:.3f}\nlive:  {live_text}\nbatch: {batch_text}")
    assert live_wer <= batch_wer + 0.05, (live_wer, batch_wer, live_text, batch_text)


def test_filter_retry_and_delete_from_the_list(page: Page, web: WebStack) -> None:
    """A cancelled job found with the status filter, retried from the list (its progress pushed to the row until
    it completes), then deleted everywhere."""
    job_id = _upload(web, SPEECH / "read" / "LJ001-0002.wav")
    status, job, _ = web.call("POST", f"/v1/jobs/{job_id}/cancel")
    assert status == 200 and job["status"] == "cancelled", job
    page.get_by_label("Status").select_option("cancelled")
    row = page.locator(f"li.job[data-job-id='{job_id}']")
    expect(row).to_contain_text("Cancelled")
    expect(page.locator("li.job.job-completed")).to_have_count(0)
    page.get_by_role("button", name="Clear").click()
    row.get_by_role("button", name="Retry").click()
    expect(row).to_have_class(re.compile(r"\bjob-completed\b"), timeout=120_000)
    assert wait_job(web, job_id, 5)["revision"] == 2
    row.get_by_role("button", name="Delete LJ001-0002.wav").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    expect(row).to_have_count(0)
    status, body, _ = web.call("GET", f"/v1/jobs/{job_id}")
    assert status == 404, body
    assert not page.errors, page.errors  # type: ignore[attr-defined]
