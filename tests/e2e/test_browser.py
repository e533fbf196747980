"""The browser flow in a real Chromium against a real ``modelgates serve``.

Chromium is Debian's (``/usr/bin/chromium``), driven by Playwright; it is never
downloaded. Without it these tests skip, saying why, except under ``CI=true``
where they fail. Screenshots of the pages (phone 390 px, desktop 1280 px) go to
``test-artifacts/``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from tests.e2e.helpers import PASSWORD, create_account, pkce_pair
from tests.support.server import RunningServer, free_port, serve

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip
EMAIL = "ada@example.com"


def _require_chromium() -> None:
    if CHROMIUM.exists():
        return
    reason = f"{CHROMIUM} is missing (apt-get install -y chromium)"
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(reason + "; CI must run the browser tests")
    pytest.skip(reason)


class CallbackServer:
    """A tiny app on a loopback port that records the callbacks it receives."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        hits = self.hits

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.startswith("/cb"):  # not /favicon.ico
                    hits.append(self.path)
                body = b"<!doctype html><title>app</title><p>callback received</p>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/cb?app=1"

    def query(self) -> dict[str, list[str]]:
        assert self.hits, "the callback was never reached"
        return parse_qs(urlsplit(self.hits[-1]).query)


@pytest.fixture
def callback() -> Iterator[CallbackServer]:
    server = CallbackServer()
    server.thread.start()
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()


@pytest.fixture
def gateway(database_url: str, tmp_path: Path) -> Iterator[RunningServer]:
    create_account(database_url, EMAIL, tmp_path)
    env = {"MODELGATES_ALLOW_LOOPBACK_CALLBACKS": "true"}
    with serve(database_url, tmp_path, env=env) as server:
        yield server


@pytest.fixture
def browser() -> Iterator[object]:
    _require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield launched
        finally:
            launched.close()


def _page(browser: object, width: int = 1280) -> object:
    from playwright.sync_api import Browser

    assert isinstance(browser, Browser)
    context = browser.new_context(viewport={"width": width, "height": 900})
    return context.new_page()


def _auth_url(server: RunningServer, **params: str) -> str:
    return f"{server.base_url}/auth?{urlencode(params)}"


def _sign_in(page: object, email: str = EMAIL, password: str = PASSWORD) -> None:
    from playwright.sync_api import Page

    assert isinstance(page, Page)
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def _shot(page: object, name: str) -> None:
    from playwright.sync_api import Page

    assert isinstance(page, Page)
    ARTIFACTS.mkdir(exist_ok=True)
    for width in (390, 1280):
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(ARTIFACTS / f"{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})


def test_consent_flow_to_a_working_key_then_revoke(
    gateway: RunningServer, callback: CallbackServer, browser: object, database_url: str
) -> None:
    from playwright.sync_api import Page, expect

    verifier, challenge = pkce_pair()
    page = _page(browser)
    assert isinstance(page, Page)
    page.goto(
        _auth_url(
            gateway,
            callback_url=callback.url,
            code_challenge=challenge,
            code_challenge_method="S256",
            key_label="Browser test",
            state="st-123",
        )
    )
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    if database_url.startswith("sqlite"):
        _shot(page, "login")
    _sign_in(page)
    heading = page.get_by_role("heading", level=1)
    expect(heading).to_contain_text("is requesting to use your models")
    # The callback's origin is the app's identity; its name is secondary, self-declared.
    expect(heading).to_contain_text(f"http://127.0.0.1:{callback.port}")
    expect(page.locator(".app-claim")).to_contain_text("self-declared")
    expect(page.locator("body")).to_contain_text(callback.url)
    page.get_by_label("Credit limit (USD)").fill("5")
    page.get_by_label("Limit reset").select_option("weekly")
    if database_url.startswith("sqlite"):
        _shot(page, "consent")
    page.get_by_role("button", name="Authorize").click()
    page.wait_for_url(f"http://127.0.0.1:{callback.port}/cb**")
    query = callback.query()
    assert query["app"] == ["1"]
    assert query["state"] == ["st-123"]
    code = query["code"][0]

    exchanged = httpx.post(
        f"{gateway.api}/auth/keys", json={"code": code, "code_verifier": verifier}, timeout=10
    )
    assert exchanged.status_code == 200, exchanged.text
    key = exchanged.json()["key"]
    info = httpx.get(f"{gateway.api}/key", headers={"Authorization": f"Bearer {key}"})
    assert info.status_code == 200
    assert info.json()["data"]["limit"] == 5
    assert info.json()["data"]["limit_reset"] == "weekly"
    assert info.json()["data"]["label"] == "Browser test"

    page.goto(f"{gateway.base_url}/keys")
    row = page.locator("tr", has_text="Browser test")
    expect(row).to_contain_text("weekly")
    if database_url.startswith("sqlite"):
        _shot(page, "keys")
    row.get_by_role("button", name="Revoke").click()
    expect(page.locator("tr", has_text="Browser test")).to_have_count(0)
    after = httpx.get(f"{gateway.api}/key", headers={"Authorization": f"Bearer {key}"})
    assert after.status_code == 401


def test_deny_csrf_xss_invalid_callback_and_headless(
    gateway: RunningServer, callback: CallbackServer, browser: object
) -> None:
    from playwright.sync_api import Page, expect

    verifier, challenge = pkce_pair()
    page = _page(browser)
    assert isinstance(page, Page)
    page.goto(f"{gateway.base_url}/login")
    _sign_in(page)

    # Deny: back to the app with error=access_denied and the state.
    page.goto(_auth_url(gateway, callback_url=callback.url, code_challenge=challenge,
                        code_challenge_method="S256", state="deny-state"))  # fmt: skip
    page.get_by_role("button", name="Deny").click()
    page.wait_for_url(f"http://127.0.0.1:{callback.port}/cb**")
    assert callback.query()["error"] == ["access_denied"]
    assert callback.query()["state"] == ["deny-state"]
    assert "code" not in callback.query()

    # A form posted from elsewhere (no CSRF token) is refused.
    forged = page.request.post(f"{gateway.base_url}/keys", form={"name": "forged"})
    assert forged.status == 403

    # XSS in key_label renders as text.
    label = '<script>window.pwned=1</script>"><img src=x onerror="window.pwned=2">'
    page.goto(_auth_url(gateway, code_challenge=challenge, code_challenge_method="S256",
                        key_label=label))  # fmt: skip
    expect(page.locator("h1")).to_contain_text("<script>window.pwned=1</script>")
    assert page.evaluate("typeof window.pwned") == "undefined"

    # An invalid callback never navigates off-site.
    hits = len(callback.hits)
    bad = page.goto(_auth_url(gateway, callback_url="https://evil.example:8443/cb",
                              code_challenge=challenge, code_challenge_method="S256"))  # fmt: skip
    assert bad is not None and bad.status == 400
    assert page.url.startswith(gateway.base_url)
    expect(page.locator("h1")).to_contain_text("cannot be authorized")
    assert len(callback.hits) == hits

    # Headless: the code is shown, and it exchanges.
    page.goto(_auth_url(gateway, code_challenge=challenge, code_challenge_method="S256",
                        key_label="my-cli"))  # fmt: skip
    page.get_by_role("button", name="Authorize").click()
    code = page.locator("#code").inner_text().strip()
    exchanged = httpx.post(
        f"{gateway.api}/auth/keys", json={"code": code, "code_verifier": verifier}, timeout=10
    )
    assert exchanged.status_code == 200, exchanged.text


def test_wrong_password_is_generic_then_throttled(gateway: RunningServer, browser: object) -> None:
    from playwright.sync_api import Page, expect

    page = _page(browser, width=390)
    assert isinstance(page, Page)
    page.goto(f"{gateway.base_url}/login")
    for _ in range(5):
        _sign_in(page, password="not the password")
        expect(page.get_by_role("alert")).to_have_text("Incorrect email or password")
    _sign_in(page)
    expect(page.locator("h1")).to_have_text("Too many attempts")
