"""Budget alerts on the pages, in-process on SQLite and PostgreSQL: the admin's
``/admin/alerts`` shows each delivery's tries (status, HTTP status, error, next try), to
admins only; a user sets their webhook URL on ``/alerts`` with the session's CSRF token,
and a URL they may not use answers a 400 page naming why."""

from __future__ import annotations

from datetime import timedelta

import httpx

from modelgates.container import Services
from modelgates.models import AttemptOutcome
from tests.conftest import Account
from tests.test_store import make_key, make_record
from tests.test_web_admin import boss, signed_in

__all__ = ["boss"]


async def failed_once(services: Services, account: Account) -> str:
    """An alert of the account's, its delivery tried once and answered 500; the delivery id."""
    key = make_key(account.user, services.clock(), limit=100)
    await services.store.create_key(key)
    await services.store.settle("r", make_record(key, 60, services.clock()), (50,))
    await services.store.fan_out(
        (await services.store.unsent_alerts(1))[0].alert.id,
        "{}",
        [("dlv_page", "webhook", "https://hooks.example.com/x")],
        services.clock(),
    )
    now = services.clock()
    token, claimed = await services.alerts.claim()
    assert [d.id for d, _ in claimed] == ["dlv_page"]
    retry = AttemptOutcome(500, "HTTP 500", False, now + timedelta(seconds=30))
    assert await services.store.finish_attempt("dlv_page", token, retry, now)
    return "dlv_page"


async def test_admins_see_every_deliverys_tries(
    client: httpx.AsyncClient, services: Services, account: Account, boss: Account
) -> None:
    await failed_once(services, account)
    await signed_in(client, account)
    assert (await client.get("/admin/alerts")).status_code == 403
    await client.post("/logout", data={"csrf": ""})
    client.cookies.clear()
    await signed_in(client, boss)
    page = await client.get("/admin/alerts")
    assert page.status_code == 200
    row = page.text.split('data-delivery="dlv_page"', 1)[1].split("</tr>", 1)[0]
    for shown in ("50% of key", "https://hooks.example.com/x", "pending", ">1<", ">500<",
                  "HTTP 500", "UTC"):  # fmt: skip
        assert shown in row, shown
    mine = await client.get(f"/admin/alerts?user_id={boss.user.id}")
    assert "dlv_page" not in mine.text


async def test_a_user_sets_and_removes_their_webhook(
    client: httpx.AsyncClient, services: Services, account: Account
) -> None:
    csrf = await signed_in(client, account)
    page = await client.get("/alerts")
    assert page.status_code == 200 and "50 %, 80 %, 100 %" in page.text
    assert 'href="/alerts" aria-current="page"' in page.text  # the navigation says where
    refused = await client.post(
        "/alerts", data={"csrf": csrf, "webhook_url": "http://127.0.0.1:8080/h"}
    )
    assert refused.status_code == 400
    assert "Webhook URL: a webhook URL must use https" in refused.text
    assert await services.alerts.webhook_of(account.user.id) is None
    no_token = await client.post("/alerts", data={"webhook_url": "https://hooks.example.com/a"})
    assert no_token.status_code == 403
    saved = await client.post(
        "/alerts", data={"csrf": csrf, "webhook_url": "https://hooks.example.com/a"}
    )
    assert saved.status_code == 200 and "Webhook saved." in saved.text
    assert await services.alerts.webhook_of(account.user.id) == "https://hooks.example.com/a"
    assert 'value="https://hooks.example.com/a"' in (await client.get("/alerts")).text
    removed = await client.post("/alerts", data={"csrf": csrf, "webhook_url": ""})
    assert "Webhook removed." in removed.text
    assert await services.alerts.webhook_of(account.user.id) is None
    events = await services.audit.events(user_id=account.user.id)
    assert [e.detail for e in events if e.event == "user.alert_webhook_changed"] == [
        {"set": False},
        {"set": True},
    ]
