"""The OpenAPI document describes the gateway, and the gateway survives generated requests: schemathesis
fuzzes every documented operation on the live stack and no answer may be a server error (5xx)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from foundation.settings import Settings
from gateway.app import create_app
from tests.integration.conftest import Stack, start_stack, stop_stack

pytestmark = pytest.mark.integration


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


@pytest.fixture(scope="module")
def fuzz_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack of its own: the fuzzer creates, changes and erases whatever the API lets an admin touch, and
    follows the ids it is given back (it revokes its own key when it can); other tests must not see that."""
    stack = start_stack(tmp_path_factory.mktemp("fuzz"))
    try:
        yield stack
    finally:
        stop_stack(stack)


def _access_token(stack: Stack) -> str:
    """The bootstrap admin's JWT (a key could be revoked by the fuzzer's own DELETE /v1/keys/{id})."""
    creds = json.loads((stack.home / "secrets" / "credentials.json").read_text())
    request = urllib.request.Request(stack.url + "/v1/auth/token", method="POST",
                                     data=json.dumps({"email": creds["email"], "password": creds["password"]}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        return str(json.loads(resp.read())["access_token"])


def test_no_server_errors(fuzz_stack: Stack, tmp_path: Path) -> None:
    """schemathesis (its CLI: coverage, fuzzing and stateful phases) against /openapi.json as the admin; the
    only check is the one the issue asks for: no answer is a 5xx."""
    token = _access_token(fuzz_stack)
    run = subprocess.run(
        [str(Path(sys.executable).with_name("schemathesis")), "run", fuzz_stack.url + "/openapi.json",
         "--header", f"Authorization: Bearer {token}", "--checks", "not_a_server_error",
         "--max-examples", "12", "--seed", "20261126", "--workers", "1", "--request-timeout", "60",
         # WebSocket upgrades: a plain GET is a 4xx by design and says nothing about the sessions; the job
         # event stream (server-sent events) never ends by design, so every call would be a client timeout
         "--exclude-path-regex", "^/v1/(live|telephony|events)", "--report", "junit", "--report-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=900, cwd=tmp_path, env={**os.environ, "NO_COLOR": "1"})
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    tested = re.search(r"Tested: (\d+)", run.stdout)
    assert tested and int(tested.group(1)) >= 40, run.stdout[-3000:]
    # the run was authenticated throughout (an expired or erased admin would make every answer a 401)
    me = urllib.request.Request(fuzz_stack.url + "/v1/me", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(me, timeout=10) as resp:
        assert json.loads(resp.read())["role"] == "admin"
