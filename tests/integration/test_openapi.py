"""The OpenAPI document describes the gateway, and the gateway survives generated requests: schemathesis fuzzes
every documented operation on the live stack, deterministically, deep enough to reach the logic behind the
validation.

What the run checks (``fuzz_config``): every check schemathesis has that applies to this API (no server error,
status codes, content types and response bodies as documented, schema-violating requests refused, deleted
resources gone, created ones readable, undeclared methods refused with ``Allow``), plus our own
(tests/integration/schemathesis_hooks.py): every response names its request, every error of the native API is a
problem document, and the operations in ``REACHED`` answered with a success at least once. Warnings that mean
the fuzzing stayed shallow (operations that only ever answered 404, positive data the API mostly refused,
authentication that failed, rate limits) fail the run.

Determinism: a fixed seed with schemathesis' deterministic generation, no example database or cache carried
between runs, one worker, a stack of its own (on the session's broker, under topics of its own: rate limits and
login throttling, which depend on the clock, are lifted there and tested in test_access.py), and a finished job
made before the run for the operations that need one (the hooks give its id to their positive cases; negative
cases keep fuzzed ids). Duration: replays re-run only a two-second job made for them (the hooks), so the run's
background work stays small whatever it generates, and the fuzzing phase begins once the coverage phase's backlog
is worked off (the hooks wait for it), so that no answer depends on how fast this machine transcribes.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from foundation.settings import Settings
from gateway.app import create_app
from tests.integration.conftest import Stack, on_the_broker_of, start_stack, stop_stack

pytestmark = pytest.mark.integration

SEED = 20261126
# operations that must answer with a success at least once in the run (their core logic was reached)
REACHED = [
    "POST /v1/files", "GET /v1/files/{file_id}", "GET /v1/files/{file_id}/content", "DELETE /v1/files/{file_id}",
    "POST /v1/jobs", "GET /v1/jobs/{job_id}", "PATCH /v1/jobs/{job_id}", "DELETE /v1/jobs/{job_id}",
    "GET /v1/jobs/{job_id}/transcript", "GET /v1/jobs/{job_id}/revisions", "GET /v1/jobs/{job_id}/audio",
    "GET /v1/jobs/{job_id}/compare", "POST /v1/jobs/{job_id}/edits",
    "PATCH /v1/jobs/{job_id}/speakers/{speaker_id}",
    "POST /v1/speakers", "GET /v1/speakers/{profile_id}", "PATCH /v1/speakers/{profile_id}",
    "DELETE /v1/speakers/{profile_id}", "POST /v1/organizations", "PATCH /v1/organizations/{org_id}",
    "POST /v1/organizations/{org_id}/erase", "POST /v1/users", "DELETE /v1/users/{user_id}", "POST /v1/keys",
    "DELETE /v1/keys/{key_id}", "POST /v1/webhooks", "GET /v1/webhooks/{subscription_id}",
    "PATCH /v1/webhooks/{subscription_id}", "DELETE /v1/webhooks/{subscription_id}",
    "POST /v1/webhooks/{subscription_id}/test", "GET /v1/search", "GET /v1/usage", "POST /v1/replays",
]
# checks that do not apply: ignored_auth and missing_required_header send requests without credentials, which
# this run's header always adds; object_level_authorization needs a second identity (test_access.py walks every
# role); positive_data_acceptance would need every generated file to be audio and every cursor to be real.
# (max_response_time is given the request timeout as its limit: it measures the machine, not the API.)
EXCLUDED_CHECKS = "ignored_auth,missing_required_header,object_level_authorization,positive_data_acceptance"


def _get_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        data: dict[str, Any] = json.loads(resp.read())
        return data


def test_every_route_is_documented(stack: Stack, tmp_path: Any) -> None:
    doc = _get_json(stack.url + "/openapi.json")
    documented = {(path, method.upper()) for path, ops in doc["paths"].items() for method in ops}
    os.environ.setdefault("STREAMSCRIBE_HOME", str(tmp_path))
    app = create_app(Settings(home=tmp_path))
    served = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if not path or route.method == "HEAD" or path in ("/", "/openapi.json", "/docs"):
            continue
        served.add((re.sub(r"\{(\w+)(:[^}]*)?\}", r"{\1}", path), route.method))
    assert served - documented == set(), f"routes missing from /openapi.json: {sorted(served - documented)}"
    assert documented - served == set(), f"documented but not served: {sorted(documented - served)}"


FUZZ_ENV = {
    # limits that depend on the clock would make the outcome depend on the machine's speed
    "STREAMSCRIBE_AUTH__RATE_PER_S": "1000000", "STREAMSCRIBE_AUTH__RATE_BURST": "1000000",
    "STREAMSCRIBE_AUTH__LOGIN_FREE_PER_ACCOUNT": "1000000", "STREAMSCRIBE_AUTH__LOGIN_FREE_PER_ADDRESS": "1000000",
    "STREAMSCRIBE_AUTH__ACCESS_TTL_S": "7200",
    # the fuzzer creates subscriptions by the hundred; with the usual cap, the later ones (and what links to
    # them) would all be 409s
    "STREAMSCRIBE_WEBHOOKS__MAX_SUBSCRIPTIONS_PER_ORG": "1000000",
}


@pytest.fixture(scope="module")
def fuzz_stack(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack of its own: the fuzzer creates, changes and erases whatever the API lets an admin touch, and
    follows the ids it is given back; other tests must not see that. Its database, storage, workers and gateway
    are its own; it runs on the session stack's broker under a topic prefix of its own (on Apache Kafka, a second
    3-node cluster cost its start, its stop and its CPU beside the session's for the whole run)."""
    own = start_stack(tmp_path_factory.mktemp("fuzz"), {**FUZZ_ENV, **on_the_broker_of(stack, "fuzz.")})
    try:
        yield own
    finally:
        stop_stack(own)


def _request(stack: Stack, method: str, path: str, token: str | None = None, body: bytes | None = None,
             content_type: str = "application/json") -> Any:
    headers = {"Content-Type": content_type, **({"Authorization": f"Bearer {token}"} if token else {})}
    request = urllib.request.Request(stack.url + path, method=method, data=body, headers=headers)
    with urllib.request.urlopen(request, timeout=60) as resp:
        return json.loads(resp.read())


def _access_token(stack: Stack) -> str:
    """The bootstrap admin's JWT (an API key could be revoked by the fuzzer's own DELETE /v1/keys/{id})."""
    creds = json.loads((stack.home / "secrets" / "credentials.json").read_text())
    tokens = _request(stack, "POST", "/v1/auth/token",
                      body=json.dumps({"email": creds["email"], "password": creds["password"]}).encode())
    return str(tokens["access_token"])


def _clip(source: Path, target: Path, seconds: float) -> Path:
    """The first ``seconds`` of a real recording."""
    with wave.open(str(source)) as src, wave.open(str(target), "wb") as out:
        out.setparams(src.getparams())
        out.writeframes(src.readframes(int(src.getframerate() * seconds)))
    return target


def _finished_job(stack: Stack, token: str, recording: Path) -> dict[str, Any]:
    boundary = "fuzzfixture"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{recording.name}\"\r\n"
            "Content-Type: audio/wav\r\n\r\n").encode() + recording.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    job = _request(stack, "POST", "/v1/jobs", token, body, f"multipart/form-data; boundary={boundary}")
    for _ in range(1200):
        found = _request(stack, "GET", f"/v1/jobs/{job['job_id']}", token)
        if found["status"] in ("completed", "failed"):
            break
        time.sleep(0.25)
    assert found["status"] == "completed", found
    transcript = _request(stack, "GET", f"/v1/jobs/{job['job_id']}/transcript", token)
    for _ in range(480):  # its analytics follow the transcript (the analytics stage; GET .../analytics)
        try:
            _request(stack, "GET", f"/v1/jobs/{job['job_id']}/analytics", token)
            break
        except urllib.error.HTTPError as exc:
            assert exc.code == 404, exc
            time.sleep(0.25)
    else:
        raise AssertionError(f"no analytics for the completed job {job['job_id']} within 120 s")
    return {"job": found, "transcript": transcript}


def _webhook(stack: Stack, token: str) -> dict[str, str]:
    """An active subscription with one delivery (a test ping), for the operations on deliveries."""
    sub = _request(stack, "POST", "/v1/webhooks", token, json.dumps({
        "url": "https://hooks.example.com/streamscribe", "events": ["job.completed"]}).encode())
    ping = _request(stack, "POST", f"/v1/webhooks/{sub['id']}/test", token)
    return {"subscription_id": sub["id"], "delivery_id": ping["delivery_id"]}


def fuzz_config(*, finished: dict[str, Any], webhook: dict[str, str], keep: dict[str, list[str]],
                login: dict[str, str], refresh_tokens: list[str]) -> str:
    """The schemathesis.toml of the run."""
    transcript = finished["transcript"]
    words = max(len(s["words"]) for s in transcript["segments"])
    segments = [s["id"] for s in transcript["segments"]]
    job_ops = "^/v1/jobs/\\\\{job_id\\\\}/(transcript|revisions|compare|audio|edits|speakers|cancel|retry)"
    return f"""
seed = {SEED}
workers = 1
request-timeout = 300
max-stream-events = 1
hooks = "tests.integration.schemathesis_hooks"
continue-on-failure = true

[cache]
enabled = false

[checks]
max_response_time = 300

[generation]
deterministic = true
database = "none"
max-examples = 12

[warnings]
fail-on = ["missing_test_data", "validation_mismatch", "missing_auth", "rate_limited", "unused_openapi_auth",
           "unresolvable_reference", "unsupported_regex", "method_not_allowed", "base_url_mismatch"]

[phases.stateful]
max-steps = 12

# more scenarios than the other phases' examples: which links a scenario follows depends on what its earlier steps
# were answered, so the links covered (at least 30, asserted below) vary between runs: 28 to 33 with 12 examples;
# with 24, 50 scenarios in one run and 36 in another (a full suite run, where it failed). 64 examples: about 20 s.
# On an AMD EPYC (2026-12-02) 26 scenarios and 26 links in every run, with 64 examples or 128: the number of
# scenarios stops short of max-examples there, so the bound on links below is 20
[phases.stateful.generation]
max-examples = 64

[dictionaries.segment]
values = {json.dumps(segments)}

[dictionaries.revision]
values = [{transcript["revision"]}]

[dictionaries.word_index]
values = {json.dumps(list(range(words)))}

[dictionaries.email]
values = {json.dumps([login["email"]])}

[dictionaries.password]
values = {json.dumps([login["password"]])}

[dictionaries.refresh_token]
values = {json.dumps(refresh_tokens)}

# logins: the run's own account half of the time (refresh tokens can only come from logins made before it)
[[operations]]
include-name = "POST /v1/auth/token"

[operations.parameters]
"body.email" = {{ dictionary = "email", probability = 0.5 }}
"body.password" = {{ dictionary = "password", probability = 0.5 }}

[[operations]]
include-name = "POST /v1/auth/refresh"

[operations.parameters]
"body.refresh_token" = {{ dictionary = "refresh_token", probability = 0.7 }}

# the operations on a transcript work on the finished job made before the run (its id is set by the hooks): what
# they are given about it, mostly its own revision, segments and words
[[operations]]
include-path-regex = "{job_ops}"

[operations.parameters]
"query.revision" = {{ dictionary = "revision", probability = 0.7 }}
"query.a" = {{ dictionary = "revision", probability = 0.7 }}
"query.b" = {{ dictionary = "revision", probability = 0.7 }}
"body.revision" = {{ dictionary = "revision", probability = 0.7 }}
"body.words[*].segment_id" = {{ dictionary = "segment", probability = 0.9 }}
"body.words[*].index" = {{ dictionary = "word_index", probability = 0.9 }}

""" + f"\n# kept from destructive cases by the hooks: {json.dumps(keep)}\n"


@pytest.mark.timeout(3600)
def test_no_server_errors_and_the_fuzzing_reaches_the_core(fuzz_stack: Stack, tmp_path: Path, speech: Path) -> None:
    """schemathesis (its CLI: coverage, fuzzing and stateful phases, with the links the document declares)
    against /openapi.json as the admin."""
    token = _access_token(fuzz_stack)
    login = {k: v for k, v in json.loads((fuzz_stack.home / "secrets" / "credentials.json").read_text()).items()
             if k in ("email", "password")}
    refresh_tokens = [_request(fuzz_stack, "POST", "/v1/auth/token", body=json.dumps(login).encode())["refresh_token"]
                      for _ in range(24)]
    me = _request(fuzz_stack, "GET", "/v1/me", token)
    finished = _finished_job(fuzz_stack, token, speech / "read" / "LJ001-0001.wav")
    webhook = _webhook(fuzz_stack, token)
    clip = _clip(speech / "read" / "LJ001-0002.wav", tmp_path / "clip.wav", 2.0)
    replayed = _finished_job(fuzz_stack, token, clip)["job"]["job_id"]  # what replays re-run
    keep = {"user_id": [me["user_id"]], "org_id": [me["org_id"]], "job_id": [finished["job"]["job_id"], replayed],
            "file_id": [finished["job"]["file_id"]], "subscription_id": [webhook["subscription_id"]]}
    ids = {"job_id": finished["job"]["job_id"], "speaker_id": finished["transcript"]["speakers"][0]["id"],
           "revision": finished["transcript"]["revision"], **webhook}
    config = tmp_path / "schemathesis.toml"
    config.write_text(fuzz_config(finished=finished, webhook=webhook, keep=keep, login=login,
                                  refresh_tokens=refresh_tokens))
    env = {**os.environ, "NO_COLOR": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
           "STREAMSCRIBE_FUZZ_AUDIO": str(clip), "STREAMSCRIBE_FUZZ_REPLAY": replayed,
           "STREAMSCRIBE_FUZZ_KEEP": json.dumps(keep), "STREAMSCRIBE_FUZZ_IDS": json.dumps(ids),
           "STREAMSCRIBE_FUZZ_SEGMENTS": json.dumps([s["id"] for s in finished["transcript"]["segments"]]),
           "STREAMSCRIBE_FUZZ_URL": fuzz_stack.url, "STREAMSCRIBE_FUZZ_TOKEN": token,
           "STREAMSCRIBE_FUZZ_REACH": ";".join(REACHED)}
    run = subprocess.run(
        [str(Path(sys.executable).with_name("schemathesis")), "--config-file", str(config), "run",
         fuzz_stack.url + "/openapi.json", "--header", f"Authorization: Bearer {token}",
         "--checks", "all", "--exclude-checks", EXCLUDED_CHECKS,
         # WebSocket upgrades: a plain GET is a 4xx by design and says nothing about the sessions
         "--exclude-path-regex", "^/v1/(live|telephony)", "--report", "junit,ndjson", "--report-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=3000, cwd=tmp_path, env=env)
    assert run.returncode == 0, "schemathesis failed:\n" + _failure_summary(run.stdout) + "\n" + run.stderr[-2000:]
    tested = re.search(r"Tested: (\d+)", run.stdout)
    assert tested and int(tested.group(1)) >= 58, run.stdout[-3000:]
    links = re.search(r"API Links: +(\d+) covered", run.stdout)
    assert links and int(links.group(1)) >= 20, run.stdout[-3000:]  # 26 to 50 measured (see the config)
    # the run was authenticated throughout (an expired or erased admin would make every answer a 401)
    assert _request(fuzz_stack, "GET", "/v1/me", token)["role"] == "admin"


def _failure_summary(out: str) -> str:
    """What failed, short enough to read in CI's excerpt of the log: the failing operations, each failure's
    title and status line, and schemathesis' summary (its reproduction commands carry whole request bodies,
    megabytes for an upload)."""
    keep = [line[:300] for line in out.splitlines()
            if re.match(r"^_{3,} .+ _{3,}$", line) or re.match(r"^\s*(\d+\. |\[\d{3}\]|- |curl )", line)]
    summary = out[out.rfind("SUMMARY"):] if "SUMMARY" in out else out[-3000:]
    return "\n".join(keep[:80]) + "\n" + summary[:3000]
