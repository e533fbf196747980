"""Single sign-on in a real Chromium, against a real ``modelgates serve`` and a real
OpenID Connect provider (oidc-provider on Node), all on loopback.

The browser may reach only loopback addresses: any other request is aborted.
Skips without Chromium or Node, saying why, except under ``CI=true``.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import pytest

from tests.e2e.helpers import pkce_pair
from tests.e2e.test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, CallbackServer
from tests.e2e.test_login import LoginCommand, assert_logged_in
from tests.support.identity_provider import (
    CLIENT_ID,
    CLIENT_SECRET,
    IdentityProvider,
    running_provider,
)
from tests.support.server import RunningServer, free_port, modelgates, serve

pytestmark = pytest.mark.e2e

NAME = "Test IdP"


def sso_env(issuer: str, base_url: str) -> dict[str, str]:
    return {
        "MODELGATES_PUBLIC_URL": base_url,
        "MODELGATES_OIDC_ISSUER": issuer,
        "MODELGATES_OIDC_CLIENT_ID": CLIENT_ID,
        "MODELGATES_OIDC_CLIENT_SECRET": CLIENT_SECRET,
        "MODELGATES_OIDC_DISPLAY_NAME": NAME,
        "MODELGATES_OIDC_SCOPES": "openid email profile groups",
        "MODELGATES_OIDC_ALLOWED_DOMAINS": "example.com",
        "MODELGATES_OIDC_ADMIN_GROUPS": "gateway-admins",
        "MODELGATES_ALLOW_LOOPBACK_CALLBACKS": "true",
    }


@contextmanager
def gateway_with_sso(
    tmp_path: Path, **env: str
) -> Iterator[tuple[RunningServer, IdentityProvider, str]]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    database_url = f"sqlite:///{tmp_path / 'modelgates.db'}"
    with running_provider(
        [base + "/auth/oidc/callback"], post_logout_redirect_uris=[base + "/login"]
    ) as idp:
        env = {**sso_env(idp.issuer, base), **env}
        with serve(database_url, tmp_path, env=env, port=port) as server:
            assert f"single sign-on with {idp.issuer}" in server.log()
            yield server, idp, database_url


@pytest.fixture
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing (apt-get install -y chromium)"
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(reason + "; CI must run the browser tests")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield launched
        finally:
            launched.close()


def loopback_page(browser: Any) -> Any:
    context = browser.new_context(viewport={"width": 1280, "height": 900})

    def only_loopback(route: Any) -> None:
        host = urlsplit(route.request.url).hostname
        if host in {"127.0.0.1", "localhost"}:
            route.continue_()
        else:
            route.abort()

    context.route("**/*", only_loopback)
    return context.new_page()


def sign_in_at_provider(page: Any, login: str, *, consent: bool = True) -> None:
    """The provider's development pages: any login and password, then consent."""
    page.get_by_placeholder("Enter any login").fill(login)
    page.get_by_placeholder("and password").fill("any password")
    page.get_by_role("button", name="Sign-in").click()
    if consent:
        page.get_by_role("button", name="Continue").click()


@dataclass(frozen=True)
class StoredUser:
    id: str
    has_password: bool
    is_admin: bool


def user_of(database_url: str, issuer: str, login: str) -> StoredUser | None:
    """The user linked to the provider account, read straight from the SQLite file
    (Playwright's sync API runs an event loop in this thread: no asyncio.run here)."""
    with closing(sqlite3.connect(database_url.removeprefix("sqlite:///"))) as conn:
        row = conn.execute(
            "SELECT users.id, users.password_hash != '', users.is_admin FROM oidc_identities"
            " JOIN users ON users.id = oidc_identities.user_id"
            " WHERE issuer = ? AND subject = ?",
            (issuer, login),
        ).fetchone()
    return None if row is None else StoredUser(row[0], bool(row[1]), bool(row[2]))


def test_consent_page_through_sso_to_a_working_key_then_log_out(
    tmp_path: Path, browser: Any
) -> None:
    from playwright.sync_api import expect

    callback = CallbackServer()
    callback.thread.start()
    try:
        with gateway_with_sso(tmp_path) as (server, idp, database_url):
            login = idp.add_account(
                "grace@example.com", email_verified=True, groups=["gateway-admins"]
            )
            verifier, challenge = pkce_pair()
            consent_url = f"{server.base_url}/auth?" + urlencode(
                {"callback_url": callback.url, "code_challenge": challenge,
                 "code_challenge_method": "S256", "key_label": "SSO key", "state": "st-sso"}
            )  # fmt: skip
            page = loopback_page(browser)
            page.goto(consent_url)
            button = page.get_by_role("button", name=f"Sign in with {NAME}")
            expect(button).to_be_visible()
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "login-sso-1280.png"), full_page=True)
            button.click()
            page.wait_for_url(f"{idp.issuer}/interaction/**")
            sign_in_at_provider(page, login)
            page.wait_for_url(consent_url)  # back on our consent page, query intact
            assert page.url == consent_url
            expect(page.get_by_role("heading", level=1)).to_contain_text(
                "is requesting to use your models"
            )
            expect(page.locator(".who")).to_have_text("grace@example.com")
            page.get_by_role("button", name="Authorize").click()
            page.wait_for_url(f"http://127.0.0.1:{callback.port}/cb**")
            query = callback.query()
            assert query["state"] == ["st-sso"]
            exchanged = httpx.post(
                f"{server.api}/auth/keys",
                json={"code": query["code"][0], "code_verifier": verifier},
                timeout=10,
            )
            assert exchanged.status_code == 200, exchanged.text
            key = exchanged.json()["key"]
            info = httpx.get(f"{server.api}/key", headers={"Authorization": f"Bearer {key}"})
            assert info.status_code == 200
            assert info.json()["data"]["label"] == "SSO key"
            user = user_of(database_url, idp.issuer, login)
            assert user is not None and user.is_admin and not user.has_password
            assert exchanged.json()["user_id"] == user.id

            # Log-out, then RP-initiated log-out at the provider, back to our log-in page.
            page.goto(f"{server.base_url}/keys")
            page.get_by_role("button", name="Sign out").click()
            expect(page.get_by_role("heading", level=1)).to_have_text(
                "You are signed out of ModelGates"
            )
            page.screenshot(path=str(ARTIFACTS / "signed-out-1280.png"), full_page=True)
            page.get_by_role("link", name=f"Sign out of {NAME} too").click()
            page.get_by_role("button", name="Yes, sign me out").click()
            page.wait_for_url(f"{server.base_url}/login")
            # The provider's session is over: signing in again asks for the login.
            page.get_by_role("button", name=f"Sign in with {NAME}").click()
            expect(page.get_by_placeholder("Enter any login")).to_be_visible()
    finally:
        callback.server.shutdown()
        callback.server.server_close()


def test_modelgates_login_works_through_sso(tmp_path: Path, browser: Any) -> None:
    config_dir = tmp_path / "config"
    with gateway_with_sso(tmp_path) as (server, idp, _):
        login = idp.add_account("term@example.com", email_verified=True)
        command = LoginCommand(server.base_url, config_dir)
        page = loopback_page(browser)
        page.goto(command.url())
        page.get_by_role("button", name=f"Sign in with {NAME}").click()
        sign_in_at_provider(page, login)
        page.get_by_role("button", name="Authorize").click()
        page.wait_for_url("http://127.0.0.1:*/callback?*")
        assert "You can close this tab" in page.content()
        status, stdout, stderr = command.finish()
        assert status == 0, stderr
        assert_logged_in(server, config_dir, stdout)


def test_refused_domain_in_the_browser(tmp_path: Path, browser: Any) -> None:
    from playwright.sync_api import expect

    with gateway_with_sso(tmp_path, MODELGATES_PASSWORD_LOGIN="false") as (server, idp, db):
        login = idp.add_account("mallory@elsewhere.example", email_verified=True)
        page = loopback_page(browser)
        page.goto(f"{server.base_url}/keys")
        expect(page.get_by_label("Password")).to_have_count(0)  # password log-in is off
        page.get_by_role("button", name=f"Sign in with {NAME}").click()
        sign_in_at_provider(page, login)
        expect(page.get_by_role("heading", level=1)).to_have_text("Sign-in refused")
        expect(page.locator("main")).to_contain_text("this e-mail domain is not allowed")
        assert user_of(db, idp.issuer, login) is None


# --- start-up: one Error: line ------------------------------------------------------


def test_serve_refuses_sso_without_a_public_url(tmp_path: Path) -> None:
    env = sso_env("https://idp.example.com", "")
    env.pop("MODELGATES_PUBLIC_URL")
    done = modelgates("serve", "--port", "0", env={**env, "MODELGATES_PUBLIC_URL": ""},
                      cwd=tmp_path)  # fmt: skip
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(
        "Error: MODELGATES_PUBLIC_URL is required with MODELGATES_OIDC_ISSUER"
    )


def test_serve_refuses_an_unreachable_provider(tmp_path: Path) -> None:
    issuer = f"http://127.0.0.1:{free_port()}"
    env = sso_env(issuer, "http://127.0.0.1:8000")
    done = modelgates("serve", "--port", "0", env=env, cwd=tmp_path)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(
        f"Error: single sign-on: OpenID Connect discovery at {issuer}"
        "/.well-known/openid-configuration failed: ConnectError"
    )
