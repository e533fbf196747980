"""The admin pages in a real Chromium against a real ``modelgates serve``: a member gets 403,
an admin lists and searches users, sets a budget, disables and enables a user (whose key
stops and starts again at once), and a form without the session's CSRF token changes
nothing. Screenshots (phone 390 px, desktop 1280 px) go to ``test-artifacts/``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.helpers import PASSWORD, cli, create_account
from tests.support.pages import chromium, signed_in_page
from tests.support.server import RunningServer, serve

pytestmark = pytest.mark.e2e

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
ADMIN = "root@example.com"
MEMBER = "ada@example.com"


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[RunningServer]:
    cli("users", "create", ADMIN, "--password-stdin", "--admin",
        database_url=database_url, cwd=tmp_path, stdin=PASSWORD + "\n")  # fmt: skip
    with serve(database_url, tmp_path) as running:
        yield running


def test_admin_pages_in_chromium(server: RunningServer, database_url: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    member = create_account(database_url, MEMBER, tmp_path)
    key_check = {"Authorization": f"Bearer {member.key}"}
    with chromium() as browser:
        # A member signed in gets 403 on every admin page.
        own = signed_in_page(browser, server.base_url, MEMBER, PASSWORD)
        for path in ("/admin", f"/admin/users/{member.user_id}", "/admin/keys", "/admin/audit"):
            refused = own.goto(server.base_url + path)
            assert refused is not None and refused.status == 403, path
            expect(own.locator("h1")).to_have_text("Admins only")

        page = signed_in_page(browser, server.base_url, ADMIN, PASSWORD)
        page.get_by_role("link", name="Admin").click()
        expect(page.locator("h1")).to_have_text("Users")
        page.get_by_label("Search by e-mail").fill("ada")
        page.get_by_role("button", name="Search").click()
        rows = page.locator("table.users tbody tr")
        expect(rows).to_have_count(1)
        expect(rows).to_contain_text(MEMBER)
        _shot(page, "admin-users", database_url)
        page.get_by_role("link", name=MEMBER).click()

        page.get_by_label("Budget (USD)").fill("0.5")
        page.get_by_label("Resets").select_option("monthly")
        page.get_by_role("button", name="Save budget").click()
        expect(page.locator("#budget")).to_have_text("$0.50, monthly")
        credits = httpx.get(f"{server.api}/key", headers=key_check, timeout=10).json()["data"]
        assert [b["scope"] for b in credits["budgets"]] == ["user_budget"]
        _shot(page, "admin-user", database_url)

        page.get_by_role("button", name="Disable user").click()
        expect(page.locator("#status")).to_have_text("Disabled")
        stopped = httpx.get(f"{server.api}/key", headers=key_check, timeout=10)
        assert stopped.status_code == 401 and stopped.json()["error"]["message"] == "User disabled"
        page.get_by_role("button", name="Enable user").click()
        expect(page.locator("#status")).to_have_text("Active")
        assert httpx.get(f"{server.api}/key", headers=key_check, timeout=10).status_code == 200

        # Forms without the session's CSRF token (as another site would post them) fail.
        action = f"{server.base_url}/admin/users/{member.user_id}/status"
        forms: list[dict[str, str | float | bool]] = [
            {"action": "disable"}, {"action": "disable", "csrf": "forged"},
        ]  # fmt: skip
        for form in forms:
            forged = page.request.post(action, form=form)
            assert forged.status == 403
        assert httpx.get(f"{server.api}/key", headers=key_check, timeout=10).status_code == 200

        page.get_by_role("link", name="Audit trail").click()
        events = page.locator("table.events tbody tr")
        expect(events.first).to_contain_text("user.enabled")
        expect(page.locator("table.events")).to_contain_text("user.budget_changed")
        page.get_by_role("link", name="Keys").last.click()
        expect(page.locator("h1")).to_have_text("Every key")
        expect(page.locator("table.keys")).to_contain_text("dev")


def _shot(page: object, name: str, database_url: str) -> None:
    from playwright.sync_api import Page

    assert isinstance(page, Page)
    if not database_url.startswith("sqlite"):
        return
    ARTIFACTS.mkdir(exist_ok=True)
    for width in (390, 1280):
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(ARTIFACTS / f"{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})
