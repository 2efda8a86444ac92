"""End-to-end tests of the web app: Debian's Chromium driven by Playwright (never ``playwright install``) against
one real embedded stack per session (``streamscribe up``, as users run it). Each page the tests visit is saved as
a screenshot under docs/ui/ (the README shows them)."""

from __future__ import annotations

import json
import re
import secrets
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from tests.conftest import REPO
from tests.integration.conftest import Stack, start_stack, stop_stack

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
SCREENSHOTS = REPO / "docs" / "ui"
VIEWPORT = {"width": 1280, "height": 860}


@dataclass
class Account:
    email: str
    password: str


@dataclass
class WebStack:
    stack: Stack
    admin: Account
    member: Account  # an org_admin made through the API, with a password
    admin_key: str
    seen_urls: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.stack.url

    def call(self, method: str, path: str, body: Any = None, token: str | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, Any, dict[str, str]]:
        """One request to the gateway; (status, parsed JSON or bytes, headers)."""
        data = json.dumps(body).encode() if body is not None else None
        h = {"Authorization": f"Bearer {token or self.admin_key}", **(headers or {})}
        if data is not None:
            h["Content-Type"] = "application/json"
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(request, timeout=60) as resp:
                raw, status, got = resp.read(), resp.status, dict(resp.headers)
        except urllib.error.HTTPError as exc:
            raw, status, got = exc.read(), exc.code, dict(exc.headers)
        try:
            return status, json.loads(raw), got
        except ValueError:
            return status, raw, got


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebStack]:
    if not (REPO / "gateway" / "static" / "app" / "index.html").is_file():
        pytest.fail("the web app is not built: run `make setup` (npm ci and the esbuild build in web/)")
    stack = start_stack(tmp_path_factory.mktemp("web"))
    try:
        creds = json.loads((stack.home / "secrets" / "credentials.json").read_text())
        web = WebStack(stack, Account(creds["email"], creds["password"]), Account("", ""), creds["api_key"])
        member = Account(f"editor-{secrets.token_hex(3)}@example.com", "correct horse battery")
        status, body, _ = web.call("POST", "/v1/users", {"email": member.email, "password": member.password,
                                                          "role": "org_admin"})
        assert status == 201, body
        web.member = member
        yield web
    finally:
        stop_stack(stack)


# Module scope, not session: while sync_playwright() is open its event loop counts as running in this thread, so
# every pytest-asyncio test collected after the e2e tests would fail with "Runner.run() cannot be called from a
# running event loop"; the web stack also stops as soon as the browser tests are done.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        pytest.fail(f"Debian's Chromium is expected at {CHROMIUM} (make setup installs it)")
    with sync_playwright() as p:
        yield p


def launch(playwright: Playwright, *extra: str) -> Browser:
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=[*CHROMIUM_ARGS, *extra])


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = launch(playwright)
    try:
        yield browser
    finally:
        browser.close()


class PageErrors(list[str]):
    """Uncaught errors and console errors of a page (a test ends by asserting there were none)."""


def _expected_answer(text: str, url: str) -> bool:
    """Answers the app expects and shows as a state, which the browser still logs as failed loads: a 401 (a wrong
    password, or an access token past its lifetime, renewed at once) and a 404 for a call's analytics not computed
    yet (shown as such beside the transcript)."""
    return "status of 401" in text or ("status of 404" in text and url.split("?")[0].endswith("/analytics"))


def watch(page: Page, web: WebStack) -> PageErrors:
    errors = PageErrors()
    page.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))
    page.on("console", lambda m: errors.append(f"console: {m.text} ({m.location.get('url', '')})")
            if m.type == "error" and not _expected_answer(m.text, m.location.get("url", "")) else None)
    page.on("request", lambda r: web.seen_urls.append(r.url))
    return errors


def sign_in(page: Page, web: WebStack, account: Account) -> None:
    page.goto(web.url + "/")
    page.get_by_label("Email").fill(account.email)
    page.get_by_label("Password").fill(account.password)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Jobs", exact=True).wait_for()


@pytest.fixture
def page(browser: Browser, web: WebStack) -> Iterator[Page]:
    """A fresh browser context signed in as the org admin made for the tests."""
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    page = context.new_page()
    page.errors = watch(page, web)  # type: ignore[attr-defined]
    sign_in(page, web, web.member)
    try:
        yield page
    finally:
        context.close()


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=False)


TOKEN_IN_URL = re.compile(r"access_token=|[?&]key=|ssk_|ssr_|eyJ[A-Za-z0-9_-]{10,}\.")
