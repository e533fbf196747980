"""The front page and the usage page in a real Chromium against a real ``modelgates serve``
after real metered requests: the front page signed out and signed in, the usage chart
(an SVG with its bars), the period and grouping toggles, and both CSV downloads, which
parse with :mod:`csv` and sum to the generation records. Screenshots at desktop
(1280x800) and phone (390x844) widths go to the test's ``tmp_path``; at phone width no
page scrolls sideways."""

from __future__ import annotations

import csv
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.conftest import UPSTREAM_KEY, UPSTREAM_KEY_ENV
from tests.e2e.helpers import PASSWORD, CliAccount, create_account
from tests.support.pages import chromium, signed_in_page
from tests.support.server import RunningServer, serve
from tests.support.upstream import Upstream, gateway_toml

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.e2e

EMAIL = "ada@example.com"
VIEWPORTS = {"desktop": (1280, 800), "phone": (390, 844)}
MESSAGES = [{"role": "user", "content": "one two three four"}]


@pytest.fixture
def server(
    database_url: str, tmp_path: Path, fake_upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> Iterator[RunningServer]:
    monkeypatch.setenv(UPSTREAM_KEY_ENV, UPSTREAM_KEY)
    config = tmp_path / "gateway.toml"
    config.write_text(gateway_toml(fake_upstream, api_key_env=UPSTREAM_KEY_ENV))
    with serve(database_url, tmp_path, config=config) as running:
        yield running


def requests_made(server: RunningServer, account: CliAccount) -> list[dict[str, object]]:
    """Three real chat completions through the gateway, and their generation records."""
    auth = {"Authorization": f"Bearer {account.key}"}
    records = []
    for model, max_tokens in (("test/echo", 3), ("test/echo", 5), ("test/hello", 2)):
        answer = httpx.post(
            f"{server.api}/chat/completions",
            headers=auth,
            json={"model": model, "messages": MESSAGES, "max_tokens": max_tokens},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        record = httpx.get(
            f"{server.api}/generation", params={"id": answer.json()["id"]}, headers=auth, timeout=10
        )
        assert record.status_code == 200, record.text
        records.append(record.json()["data"])
    return records


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


def shots(page: Page, name: str, directory: Path) -> None:
    """Screenshots at both widths; each non-trivial, and none wider than its viewport."""
    for label, (width, height) in VIEWPORTS.items():
        page.set_viewport_size({"width": width, "height": height})
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{name} scrolls sideways by {overflow}px at {label} width"
        path = directory / f"{name}-{label}.png"
        page.screenshot(path=str(path), full_page=True)
        shot_width, shot_height = png_size(path)
        assert shot_width == width and shot_height >= height
        assert path.stat().st_size > 10_000, f"{path.name} looks blank"
    page.set_viewport_size({"width": 1280, "height": 800})


def downloaded_rows(page: Page, link: str) -> tuple[str, list[dict[str, str]]]:
    with page.expect_download() as info:
        page.get_by_role("link", name=link).click()
    download = info.value
    path = download.path()
    assert path is not None
    with Path(path).open(newline="", encoding="utf-8") as handle:
        return download.suggested_filename, list(csv.DictReader(handle))


def test_front_page_and_usage_page_in_chromium(
    server: RunningServer, database_url: str, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    account = create_account(database_url, EMAIL, tmp_path)
    records = requests_made(server, account)
    total_nanos = sum(round(float(str(r["total_cost"])) * 1e9) for r in records)
    shots_dir = tmp_path / "screenshots"
    shots_dir.mkdir()
    with chromium() as browser:
        visitor = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
        outside: list[str] = []
        visitor.on(
            "request",
            lambda request: (
                outside.append(request.url) if not request.url.startswith(server.base_url) else None
            ),
        )
        visitor.goto(server.base_url + "/")
        expect(visitor.locator("h1")).to_contain_text("ModelGates")
        expect(visitor.locator("main")).to_contain_text(f"{server.base_url}/api/v1")
        shots(visitor, "front-signed-out", shots_dir)
        visitor.get_by_role("link", name="Sign in").click()
        visitor.get_by_label("Email").fill(EMAIL)
        visitor.get_by_label("Password").fill(PASSWORD)
        visitor.get_by_role("button", name="Sign in").click()
        visitor.wait_for_url(server.base_url + "/")
        expect(visitor.locator("h1")).to_have_text("Welcome back")

        page = signed_in_page(browser, server.base_url, EMAIL, PASSWORD)
        page.on(
            "request",
            lambda request: (
                outside.append(request.url) if not request.url.startswith(server.base_url) else None
            ),
        )
        page.get_by_role("link", name="Home").click()
        expect(page.locator("h1")).to_have_text("Welcome back")
        expect(page.locator("table.keys").first).to_contain_text("dev")
        expect(page.locator("pre.snippet").first).to_contain_text(
            f"curl {server.base_url}/api/v1/chat/completions"
        )
        expect(page.locator("main")).to_contain_text(f"ANTHROPIC_BASE_URL={server.base_url}/api")
        expect(page.locator("main")).to_contain_text('wire_api = "responses"')
        expect(page.locator("table.models")).to_contain_text("test/echo")
        shots(page, "front-signed-in", shots_dir)

        page.get_by_role("link", name="Usage").click()
        expect(page.locator("h1")).to_have_text("Usage")
        chart = page.locator("svg.chart")
        expect(chart).to_be_visible()
        bars = chart.locator("rect.bar")
        expect(bars).to_have_count(2)  # today: test/echo and test/hello
        box = bars.first.bounding_box()
        assert box is not None and box["height"] > 1 and box["width"] > 1
        expect(page.locator("#period-requests")).to_have_text("3")
        expect(page.locator("#top-models")).to_contain_text("test/hello")
        expect(page.locator("#recent tbody tr")).to_have_count(3)
        shots(page, "usage-by-model", shots_dir)

        page.get_by_role("link", name="By key").click()
        expect(page.locator("svg.chart rect.bar")).to_have_count(1)  # one key
        expect(page.locator(".legend")).to_contain_text("dev")
        page.get_by_role("link", name="7 days").click()
        expect(page).to_have_url(f"{server.base_url}/activity?days=7&by=key")
        shots(page, "usage-by-key-7d", shots_dir)

        name, days = downloaded_rows(page, "Daily rows (CSV)")
        assert name.startswith("modelgates-usage-") and name.endswith("-7d.csv")
        assert sum(int(row["cost_nanos"]) for row in days) == total_nanos
        assert sum(int(row["requests"]) for row in days) == 3
        name, generations = downloaded_rows(page, "Requests (CSV)")
        assert name.startswith("modelgates-generations-")
        assert sorted(row["id"] for row in generations) == sorted(str(r["id"]) for r in records)
        assert sum(int(row["cost_nanos"]) for row in generations) == total_nanos
    assert outside == []  # nothing fetched from anywhere else
