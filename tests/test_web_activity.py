"""The usage page ``/activity``, its CSV exports and the front page ``/``, in-process on
SQLite and PostgreSQL: what they show, to whom, and that the CSV parses back to the
generation records to the nano-dollar."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timedelta

import httpx
import pytest

from modelgates.container import Services
from modelgates.models import ApiKey
from modelgates.money import to_nanos
from modelgates.web.activity import DAY_COLUMNS, GENERATION_COLUMNS, exact_usd
from tests.conftest import Account, make_account
from tests.support.clock import FakeClock
from tests.test_api_activity import NOW, charge, key_of, record
from tests.test_web_pages import assert_page_headers, signed_in

BAR = re.compile(r'<rect class="bar (series-[0-9a-z]+)"')


@pytest.fixture(autouse=True)
def fixed_clock(clock: FakeClock) -> None:
    clock.set(NOW)


async def traffic(services: Services, account: Account) -> tuple[ApiKey, ApiKey]:
    first = await key_of(services, account)
    second = (await services.keys.create(account.user, name="=HYPERLINK(evil)")).record
    await charge(
        services.store,
        record(first, NOW - timedelta(hours=1), 1_234_567, "test/a"),
        record(first, NOW - timedelta(days=1), 2_000_001, "test/b"),
        record(second, NOW - timedelta(days=2), 333, "test/a"),
        record(first, NOW - timedelta(days=20), 5_000, "test/c"),
    )
    return first, second


def rows_of(response: httpx.Response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    disposition = response.headers["content-disposition"]
    assert re.fullmatch(
        r'attachment; filename="modelgates-[a-z]+-2026-03-18-\d+d\.csv"', disposition
    )
    return list(csv.DictReader(io.StringIO(response.text)))


# --- the usage page -------------------------------------------------------------


async def test_usage_page_needs_a_session(client: httpx.AsyncClient) -> None:
    for path in ("/activity", "/activity/days.csv", "/activity/generations.csv"):
        response = await client.get(path)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/login?next=%2Factivity")


async def test_usage_page_charts_spend_by_model_and_by_key(
    client: httpx.AsyncClient, services: Services, account: Account
) -> None:
    await traffic(services, account)
    await signed_in(client, account)
    page = await client.get("/activity")
    assert page.status_code == 200
    assert_page_headers(page)
    html = page.text
    assert "style=" not in html  # the CSP forbids inline styles
    assert '<svg class="chart"' in html
    assert len(BAR.findall(html)) == 4  # four (day, model) segments over 30 days
    assert "Spend per day over the last 30 days, by model" in html
    assert 'id="period-total">$0.00324<' in html
    assert 'id="period-requests">4<' in html
    top_models = html.split('id="top-models"')[1].split("</table>")[0]
    assert top_models.index("test/b") < top_models.index("test/a") < top_models.index("test/c")
    assert html.count('<tr><td data-label="Key"') == 2
    recent = html.split('id="recent"')[1].split("</table>")[0]
    assert recent.count("<tr>") == 5  # the header and four requests
    assert "2026-03-18 14:30:00 UTC" in recent
    # Navigation links the pages together.
    assert 'href="/activity" aria-current="page"' in html
    assert 'href="/keys"' in html and 'href="/"' in html

    by_key = await client.get("/activity", params={"by": "key", "days": "7"})
    assert by_key.status_code == 200
    assert "by key" in by_key.text
    assert len(BAR.findall(by_key.text)) == 3  # the 20-day-old request is out of the week
    assert "=HYPERLINK(evil)" in by_key.text  # escaped in HTML, and shown as the label
    assert "<script" not in by_key.text


@pytest.mark.parametrize("query", ["days=5", "days=abc", "by=app", "days=30&by=KEY"])
async def test_bad_period_or_grouping_is_a_400_page(
    client: httpx.AsyncClient, account: Account, query: str
) -> None:
    await signed_in(client, account)
    response = await client.get(f"/activity?{query}")
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/html")
    assert_page_headers(response)


async def test_usage_page_shows_only_the_users_own_spend(
    client: httpx.AsyncClient, services: Services, account: Account
) -> None:
    await traffic(services, account)
    other = await make_account(services, "grace@example.com")
    await signed_in(client, other)
    page = await client.get("/activity")
    assert page.status_code == 200
    assert "test/a" not in page.text
    assert BAR.findall(page.text) == []
    assert "No spend in this period." in page.text
    days = rows_of(await client.get("/activity/days.csv"))
    assert days == []


async def test_daily_csv_sums_the_records_to_the_nano_dollar(
    client: httpx.AsyncClient, services: Services, account: Account
) -> None:
    first, second = await traffic(services, account)
    await signed_in(client, account)
    response = await client.get("/activity/days.csv", params={"days": "90"})
    rows = rows_of(response)
    assert response.text.splitlines()[0] == ",".join(DAY_COLUMNS)
    assert response.text.endswith("\r\n")
    assert len(rows) == 4
    audit = await services.store.user_usage_audit(account.user.id, NOW)
    assert sum(int(row["cost_nanos"]) for row in rows) == audit.charged == 3_239_901
    for row in rows:
        assert exact_usd(int(row["cost_nanos"])) == row["cost_usd"]
    assert {row["key_hash"] for row in rows} == {first.hash, second.hash}
    # A label that would be a spreadsheet formula is defused.
    labels = {row["key_label"] for row in rows}
    assert "'=HYPERLINK(evil)" in labels
    week = rows_of(await client.get("/activity/days.csv", params={"days": "7"}))
    assert len(week) == 3


async def test_generations_csv_lists_every_request(
    client: httpx.AsyncClient, services: Services, account: Account
) -> None:
    await traffic(services, account)
    await signed_in(client, account)
    response = await client.get("/activity/generations.csv")
    rows = rows_of(response)
    assert list(rows[0]) == list(GENERATION_COLUMNS)
    assert [row["model"] for row in rows] == [
        "test/a",
        "test/b",
        "test/a",
        "test/c",
    ]  # newest first
    for row in rows:
        stored = await services.store.get_generation(row["id"])
        assert stored is not None
        assert int(row["cost_nanos"]) == stored.cost
        assert to_nanos(float(row["cost_usd"])) == stored.cost
        assert datetime.fromisoformat(row["created_at"]) == stored.created_at
        assert row["estimated"] == "false"


def test_exact_usd_is_exact() -> None:
    assert exact_usd(0) == "0.000000000"
    assert exact_usd(1) == "0.000000001"
    assert exact_usd(12_345_678_901) == "12.345678901"


# --- the front page ---------------------------------------------------------------


async def test_front_page_signed_out_says_what_this_is(client: httpx.AsyncClient) -> None:
    page = await client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert_page_headers(page)
    assert "http://testserver/api/v1" in page.text
    assert 'href="/login?next=/"' in page.text
    assert "Sign out" not in page.text
    assert "style=" not in page.text


async def test_front_page_signed_in_has_keys_budget_and_quick_starts(
    gateway_client: httpx.AsyncClient, services: Services, account: Account
) -> None:
    await services.store.update_user(
        account.user.id, NOW, limit=to_nanos(10.0), limit_reset="monthly"
    )
    key = await key_of(services, account)
    await charge(services.store, record(key, NOW - timedelta(hours=1), 2_500_000_000))
    await signed_in(gateway_client, account)
    page = await gateway_client.get("/")
    assert page.status_code == 200
    html = page.text
    assert "personal" in html  # the account's key
    assert 'id="spent">$2.50<' in html
    assert 'id="budget">$10.00<' in html
    assert 'id="remaining">$7.50<' in html
    base = "http://testserver"
    assert f"curl {base}/api/v1/chat/completions" in html
    assert f"OpenAI(base_url=&#34;{base}/api/v1&#34;" in html
    assert f"base_url=&#34;{base}/api&#34;" in html  # the anthropic SDK
    assert f"export ANTHROPIC_BASE_URL={base}/api" in html
    assert "ANTHROPIC_AUTH_TOKEN=$MODELGATES_API_KEY" in html
    assert f"base_url = &#34;{base}/api/v1&#34;" in html  # Codex's config.toml
    assert "wire_api = &#34;responses&#34;" in html
    assert "<code>test/echo</code>" in html  # the models they may use
    assert 'href="/" aria-current="page"' in html
    assert "sk-mg-v1-" + "0" * 8 not in html and account.key not in html  # no secret shown


def test_chart_axis_reads_in_round_amounts() -> None:
    from datetime import date

    from modelgates.web.chart import nice_step, stacked_bars

    assert [nice_step(n) for n in (1, 4, 5, 40_000, 39_999, 40_001, 10**9)] == [
        1, 1, 2, 10_000, 10_000, 20_000, 500_000_000
    ]  # fmt: skip
    svg = stacked_bars([date(2026, 3, 1)], ["m"], {(date(2026, 3, 1), "m"): 24_000}, title="t")
    assert ">$0.00001<" in svg and ">$0.00004<" in svg and ">$0<" in svg
    assert svg.count('class="bar series-0"') == 1
    empty = stacked_bars([date(2026, 3, 1)], [], {}, title="t")
    assert "<rect" not in empty
