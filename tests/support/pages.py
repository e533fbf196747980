"""Helpers for driving the HTML pages: in-process with httpx, or in a real Chromium."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CSRF_INPUT = re.compile(r'name="csrf" value="([^"]*)"')


def csrf_of(html: str) -> str:
    match = CSRF_INPUT.search(html)
    assert match is not None, "no CSRF field on the page"
    return match.group(1)


async def log_in(
    http: httpx.AsyncClient, email: str, password: str, *, next_path: str = "/keys"
) -> httpx.Response:
    """GET the log-in form (for its CSRF cookie and token), then POST it."""
    form = await http.get("/login", params={"next": next_path})
    assert form.status_code == 200, form.text
    return await http.post(
        "/login",
        data={"email": email, "password": password, "csrf": csrf_of(form.text), "next": next_path},
    )


# --- Chromium (Debian's, driven by Playwright; never downloaded) ----------------

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Chromium; skips (with the reason) without one, fails under ``CI=true``."""
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing (apt-get install -y chromium)"
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(reason + "; CI must run the browser tests")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            browser.close()


def signed_in_page(browser: Browser, base_url: str, email: str, password: str) -> Page:
    """A page of a fresh browser context, signed in through the log-in form."""
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.goto(f"{base_url}/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base_url}/keys")
    return page
