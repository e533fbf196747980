"""``modelgates login`` and ``whoami`` end to end, against a real server.

The command runs as a subprocess with ``--no-browser`` and a private
``MODELGATES_CONFIG_DIR``; the test reads the consent URL from its stdout and
plays the person:

* with a scripted Chromium (Playwright) that signs in and clicks Authorize on
  the real consent pages (skipped, with the reason shown, while the server has
  no ``/auth`` page; fails under ``CI=true`` without ``/usr/bin/chromium``);
* with an API stand-in for the page (the developer's key creates the code the
  page would create, bound to the URL's challenge), which exercises the
  command itself whatever the state of the pages.
"""

from __future__ import annotations

import asyncio
import os
import queue
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from modelgates.client import ModelGatesClient
from modelgates.login import CallbackReceiver, LoginError
from tests.e2e.helpers import (
    CALLBACK,
    KEY_SHAPE,
    PASSWORD,
    CliAccount,
    create_account,
    exchange_minted_keys,
    sha256_hex,
)
from tests.support.server import RunningServer, modelgates, serve

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LOOPBACK = {"MODELGATES_ALLOW_LOOPBACK_CALLBACKS": "true"}
EMAIL = "cli-user@example.com"


@contextmanager
def server_with_account(tmp_path: Path, *, loopback: bool) -> Iterator[tuple[RunningServer, Any]]:
    database_url = f"sqlite:///{tmp_path / 'modelgates.db'}"
    account = create_account(database_url, EMAIL, tmp_path)
    with serve(database_url, tmp_path, env=LOOPBACK if loopback else None) as server:
        yield server, account


class LoginCommand:
    """``modelgates login --no-browser`` running in the background, stdout line by line."""

    def __init__(self, server: str, config_dir: Path, *extra: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "modelgates", "login", "--server", server, "--no-browser",
             "--label", "Terminal key", *extra],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "MODELGATES_CONFIG_DIR": str(config_dir)},
        )  # fmt: skip
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stdout: list[str] = []
        self._pump_thread = threading.Thread(target=self._pump, daemon=True)
        self._pump_thread.start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.stdout.append(line)
            self.lines.put(line)
        self.lines.put(None)

    def url(self, timeout: float = 30) -> str:
        """The consent URL the command printed."""
        while True:
            line = self.lines.get(timeout=timeout)
            if line is None:
                raise AssertionError(f"login exited without a URL: {self.finish()}")
            if line.startswith("http"):
                return line.strip()

    def type_code(self, code: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(code + "\n")
        self.process.stdin.flush()

    def finish(self, timeout: float = 60) -> tuple[int, str, str]:
        try:
            self.process.wait(timeout=timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
        assert self.process.stderr is not None
        stderr = self.process.stderr.read()
        self._pump_thread.join(timeout=10)
        for pipe in (self.process.stdin, self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()
        return self.process.returncode, "".join(self.stdout), stderr


def query_of(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


def page_would_issue(server: RunningServer, account: CliAccount, url: str) -> str:
    """What Authorize does, through the API: a code bound to the URL's challenge."""
    query = query_of(url)
    with ModelGatesClient(server.base_url, api_key=account.key) as developer:
        code = developer.create_auth_code(
            query.get("callback_url", CALLBACK),
            code_challenge=query["code_challenge"],
            code_challenge_method=query["code_challenge_method"],
            key_label=query.get("key_label"),
        )
    return code.id


def whoami(config_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return modelgates("whoami", *args, env={"MODELGATES_CONFIG_DIR": str(config_dir)})


def assert_logged_in(server: RunningServer, config_dir: Path, stdout: str) -> None:
    path = config_dir / "credentials.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(config_dir.stat().st_mode) == 0o700
    import json

    stored = json.loads(path.read_text())["servers"][server.base_url]
    assert set(stored) == {"server", "key", "hash", "label", "created_at"}
    assert KEY_SHAPE.fullmatch(stored["key"])
    assert stored["hash"] == sha256_hex(stored["key"])
    assert stored["label"] == "Terminal key"
    assert stored["key"] not in stdout  # shown never, only its label and hash
    assert stored["hash"] in stdout
    response = httpx.get(server.api + "/key", headers={"Authorization": f"Bearer {stored['key']}"})
    assert response.status_code == 200, response.text
    shown = whoami(config_dir)
    assert shown.returncode == 0, shown.stderr
    assert "label:     Terminal key" in shown.stdout
    assert stored["hash"] in shown.stdout
    assert "limit:     none" in shown.stdout
    assert "expires:   never" in shown.stdout
    assert stored["key"] not in shown.stdout


# --- the command, with an API stand-in for the consent page ------------------------


def test_loopback_login_stores_a_working_key(tmp_path: Path) -> None:
    config_dir = tmp_path / "config"
    with server_with_account(tmp_path, loopback=True) as (server, account):
        command = LoginCommand(server.base_url, config_dir)
        url = command.url()
        query = query_of(url)
        assert url.startswith(server.base_url + "/auth?")
        assert query["code_challenge_method"] == "S256"
        assert len(query["code_challenge"]) == 43
        assert query["key_label"] == "Terminal key"
        callback = query["callback_url"]
        assert callback.startswith("http://127.0.0.1:")
        assert callback.endswith("/callback")

        code = page_would_issue(server, account, url)
        redirect = httpx.get(callback + "?" + urlencode({"code": code, "state": query["state"]}))
        assert redirect.status_code == 200
        assert "You can close this tab" in redirect.text
        status, stdout, stderr = command.finish()
        assert status == 0, stderr
        assert_logged_in(server, config_dir, stdout)


def test_a_wrong_state_is_refused_and_nothing_is_exchanged(tmp_path: Path) -> None:
    config_dir = tmp_path / "config"
    with server_with_account(tmp_path, loopback=True) as (server, account):
        command = LoginCommand(server.base_url, config_dir)
        url = command.url()
        code = page_would_issue(server, account, url)
        callback = query_of(url)["callback_url"]
        forged = httpx.get(callback + "?" + urlencode({"code": code, "state": "forged"}))
        assert forged.status_code == 400
        status, _, stderr = command.finish()
        assert status != 0
        assert stderr.strip().splitlines() == [
            "Error: the callback's state did not match; nothing was exchanged"
        ]
        assert not (config_dir / "credentials.json").exists()
        # The code was never exchanged: no key was minted for the user.
        database_url = f"sqlite:///{tmp_path / 'modelgates.db'}"
        assert asyncio.run(exchange_minted_keys(database_url, account.user_id)) == []


def test_headless_login_reads_the_pasted_code(tmp_path: Path) -> None:
    config_dir = tmp_path / "config"
    with server_with_account(tmp_path, loopback=False) as (server, account):
        command = LoginCommand(server.base_url, config_dir)
        url = command.url()
        assert "callback_url" not in query_of(url)
        assert "state" not in query_of(url)
        command.type_code(page_would_issue(server, account, url))
        status, stdout, stderr = command.finish()
        assert status == 0, stderr
        assert_logged_in(server, config_dir, stdout)


def test_whoami_errors_are_one_line(tmp_path: Path) -> None:
    config_dir = tmp_path / "config"
    nothing = whoami(config_dir)
    assert nothing.returncode != 0
    assert nothing.stderr.strip().splitlines() == [
        "Error: not logged in: run `modelgates login --server URL` first"
    ]
    with server_with_account(tmp_path, loopback=False) as (server, account):
        command = LoginCommand(server.base_url, config_dir)
        command.type_code(page_would_issue(server, account, command.url()))
        assert command.finish()[0] == 0
        stored_hash = next(
            line.split()[-1] for line in whoami(config_dir).stdout.splitlines()
            if line.startswith("hash:")
        )  # fmt: skip
        revoke = modelgates(
            "keys",
            "revoke",
            stored_hash,
            "--database-url",
            f"sqlite:///{tmp_path / 'modelgates.db'}",
        )
        assert revoke.returncode == 0, revoke.stderr
        revoked = whoami(config_dir, "--server", server.base_url + "/")
        assert revoked.returncode != 0
        lines = revoked.stderr.strip().splitlines()
        assert len(lines) == 1, revoked.stderr
        assert lines[0] == f"Error: {server.base_url} refused the stored key: Key revoked (401)"
        other = whoami(config_dir, "--server", "http://127.0.0.1:1")
        assert other.returncode != 0
        assert other.stderr.startswith("Error: no key stored for http://127.0.0.1:1")


def test_login_fails_cleanly_without_a_server(tmp_path: Path) -> None:
    done = modelgates(
        "login", "--server", "http://127.0.0.1:1", "--no-browser",
        env={"MODELGATES_CONFIG_DIR": str(tmp_path)},
    )  # fmt: skip
    assert done.returncode != 0
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stderr.startswith("Error: cannot reach http://127.0.0.1:1")


# --- the callback handler, in process ------------------------------------------------


@pytest.mark.parametrize(
    ("query", "status", "error"),
    [
        ({"code": "abc", "state": "wrong"}, 400, "state did not match"),
        ({"code": "abc"}, 400, "state did not match"),
        ({"error": "access_denied", "state": "expected"}, 200, "authorization refused"),
        ({"state": "expected"}, 400, "no code"),
    ],
)
def test_callback_receiver_refusals(query: dict[str, str], status: int, error: str) -> None:
    with CallbackReceiver("expected") as receiver:
        assert (
            httpx.get(receiver.redirect_uri.replace("/callback", "/favicon.ico")).status_code == 404
        )
        response = httpx.get(receiver.redirect_uri + "?" + urlencode(query))
        assert response.status_code == status
        with pytest.raises(LoginError, match=error):
            receiver.wait(5)
        # The first answer decided; later callbacks change nothing.
        again = httpx.get(receiver.redirect_uri + "?code=x&state=expected")
        assert again.status_code == 410
        with pytest.raises(LoginError):
            receiver.wait(1)


def test_callback_receiver_accepts_the_matching_state() -> None:
    with CallbackReceiver("s" * 43) as receiver:
        assert receiver.redirect_uri.startswith("http://127.0.0.1:")
        response = httpx.get(receiver.redirect_uri + "?code=the-code&state=" + "s" * 43)
        assert response.status_code == 200
        assert response.headers["cache-control"] == "no-store"
        assert "You can close this tab" in response.text
        assert receiver.wait(5) == "the-code"


def test_callback_receiver_times_out() -> None:
    with CallbackReceiver("x") as receiver, pytest.raises(LoginError, match=r"within 0\.2 s"):
        receiver.wait(0.2)


def test_credentials_of_several_servers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from modelgates import credentials

    monkeypatch.setenv("MODELGATES_CONFIG_DIR", str(tmp_path / "cfg"))
    one = credentials.Credential("http://a.test", "sk-1", "h1", "one", "2026-01-01T00:00:00Z")
    two = credentials.Credential("https://b.test", "sk-2", "h2", "two", "2026-01-01T00:00:00Z")
    credentials.save(one)
    assert credentials.load(None) == one
    credentials.save(two)
    assert credentials.load("HTTPS://B.test/api/v1/") == two
    assert credentials.load("http://a.test/") == one
    with pytest.raises(credentials.CredentialsError, match="several servers"):
        credentials.load(None)
    assert "sk-1" not in repr(one)
    path = tmp_path / "cfg" / "credentials.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["credentials.json"]


# --- a scripted browser on the real consent pages -----------------------------------


@pytest.fixture
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is missing (CI=true: browser tests must run)")
        pytest.skip(f"{CHROMIUM} is missing: browser tests not run")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def require_consent_pages(server: RunningServer) -> None:
    if httpx.get(server.base_url + "/auth").status_code == 404:
        pytest.skip("the server has no consent page yet (GET /auth answers 404)")


def sign_in_and_authorize(page: Any, url: str, account: CliAccount) -> None:
    page.goto(url)
    page.get_by_label("Email").fill(account.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name="Authorize").click()


def test_browser_loopback_login(tmp_path: Path, browser: Any) -> None:
    config_dir = tmp_path / "config"
    with server_with_account(tmp_path, loopback=True) as (server, account):
        require_consent_pages(server)
        command = LoginCommand(server.base_url, config_dir)
        page = browser.new_page()
        sign_in_and_authorize(page, command.url(), account)
        page.wait_for_url("http://127.0.0.1:*/callback?*")
        assert "You can close this tab" in page.content()
        status, stdout, stderr = command.finish()
        assert status == 0, stderr
        assert_logged_in(server, config_dir, stdout)


def test_browser_headless_login(tmp_path: Path, browser: Any) -> None:
    config_dir = tmp_path / "config"
    with server_with_account(tmp_path, loopback=False) as (server, account):
        require_consent_pages(server)
        command = LoginCommand(server.base_url, config_dir)
        page = browser.new_page()
        sign_in_and_authorize(page, command.url(), account)
        code = page.locator("#code").inner_text().strip()
        assert code
        command.type_code(code)
        status, stdout, stderr = command.finish()
        assert status == 0, stderr
        assert_logged_in(server, config_dir, stdout)
