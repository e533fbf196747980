"""User budgets: one limit across every key of a user, in the same admission as the keys'
limits; disabled users; ``/credits``; on SQLite and PostgreSQL, in-process against the
fake upstream.

Prices (tests/support/upstream.py): 1000 nano-dollars a prompt token, 2000 a
completion token. A chat request of MESSAGES with max_tokens=10 is admitted against
its worst case (12 prompt tokens estimated + 10 completion tokens: 32,000) and costs
24,000 (4 prompt tokens counted by the upstream + 10 completion tokens).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx

from modelgates.container import Services
from modelgates.money import NANOS_PER_USD
from modelgates.services.budgets import UNLIMITED_CREDITS
from modelgates.settings import Settings
from modelgates.store import Store
from tests.conftest import Account, make_account
from tests.support.clock import FakeClock
from tests.test_metering import bearer, chat, error_of
from tests.test_openapi_document import component_validator

WORST = 32_000
COST = 24_000
USER_DISABLED = "User disabled"


def usd(nanos: int) -> float:
    return nanos / NANOS_PER_USD


async def set_budget(
    services: Services, account: Account, nanos: int | None, reset: Any = None
) -> None:
    changed = await services.store.update_user(
        account.user.id, services.clock(), limit=nanos, limit_reset=reset
    )
    assert changed is not None and changed.limit == nanos


async def user_ledger(services: Services, account: Account) -> tuple[int, int, int, int]:
    """(user usage, sum of the user's keys' usage, sum of the user's records, live reservations)."""
    user = await services.store.get_user(account.user.id)
    assert user is not None
    keys = await services.keys.list_for(user)
    audit = await services.store.user_usage_audit(user.id, services.clock())
    return (
        user.usage.total,
        sum(key.usage.total for key in keys),
        audit.charged,
        audit.reservations,
    )


async def test_the_budget_spans_every_key_of_the_user_and_refuses_with_402(
    gateway_client: httpx.AsyncClient, services: Services, account: Account
) -> None:
    other = (await services.keys.create(account.user, name="second")).secret
    await set_budget(services, account, 50_000)

    first = await gateway_client.post(
        "/api/v1/chat/completions", headers=account.auth, json=chat(max_tokens=10)
    )
    assert first.status_code == 200, first.text
    refused = await gateway_client.post(
        "/api/v1/chat/completions", headers=bearer(other), json=chat(max_tokens=10)
    )

    assert refused.status_code == 402, refused.text
    error = error_of(refused)
    assert error["message"].startswith("User budget exceeded (total limit)")
    assert "can only afford 7" in error["message"]  # (50,000 - 24,000 - 12,000) / 2,000
    assert error["metadata"]["budget"] == "user_budget"
    assert await user_ledger(services, account) == (COST, COST, COST, 0)
    # What the budget still affords is granted to a request that names no bound.
    granted = await gateway_client.post(
        "/api/v1/chat/completions", headers=bearer(other), json=chat()
    )
    assert granted.status_code == 200, granted.text
    assert granted.json()["usage"]["completion_tokens"] == 7
    usage, keys, records, held = await user_ledger(services, account)
    assert usage == keys == records <= 50_000 and held == 0


async def test_the_keys_403_answers_when_its_limit_and_the_budget_both_refuse(
    gateway_client: httpx.AsyncClient, services: Services, account: Account
) -> None:
    small = await services.keys.create(account.user, name="small", limit_usd=usd(10_000))
    await set_budget(services, account, 10_000)

    response = await gateway_client.post(
        "/api/v1/chat/completions", headers=bearer(small.secret), json=chat(max_tokens=10)
    )

    assert response.status_code == 403
    assert error_of(response)["message"].startswith("Key limit exceeded (total limit)")
    # Only the budget refuses: 402.
    other = await gateway_client.post(
        "/api/v1/chat/completions", headers=account.auth, json=chat(max_tokens=10)
    )
    assert other.status_code == 402
    assert error_of(other)["metadata"] == {
        "limit": "total", "budget": "user_budget", "requested_tokens": 10,
        "affordable_tokens": 0, "request_id": other.headers["x-request-id"],
    }  # fmt: skip


async def test_a_budget_change_applies_from_the_next_request(
    gateway_client: httpx.AsyncClient, services: Services, account: Account
) -> None:
    body = chat(max_tokens=10)
    assert (
        await gateway_client.post("/api/v1/chat/completions", headers=account.auth, json=body)
    ).status_code == 200

    await set_budget(services, account, COST + WORST - 1)  # one nano-dollar short
    refused = await gateway_client.post("/api/v1/chat/completions", headers=account.auth, json=body)
    assert refused.status_code == 402
    await set_budget(services, account, COST + WORST)
    admitted = await gateway_client.post(
        "/api/v1/chat/completions", headers=account.auth, json=body
    )
    assert admitted.status_code == 200
    await set_budget(services, account, None)
    unbounded = await gateway_client.post(
        "/api/v1/chat/completions", headers=account.auth, json=body
    )
    assert unbounded.status_code == 200
    assert await user_ledger(services, account) == (3 * COST, 3 * COST, 3 * COST, 0)


async def test_the_monthly_budget_rolls_over_at_the_month_boundary(
    gateway_client: httpx.AsyncClient, services: Services, account: Account, clock: FakeClock
) -> None:
    clock.set(datetime(2026, 11, 30, 23, 59, tzinfo=UTC))
    await set_budget(services, account, COST + WORST - 1, "monthly")
    body = chat(max_tokens=10)
    assert (
        await gateway_client.post("/api/v1/chat/completions", headers=account.auth, json=body)
    ).status_code == 200
    refused = await gateway_client.post("/api/v1/chat/completions", headers=account.auth, json=body)
    assert refused.status_code == 402
    assert error_of(refused)["message"].startswith("User budget exceeded (monthly limit)")

    clock.set(datetime(2026, 12, 1, tzinfo=UTC))  # the new window, exactly at its start
    admitted = await gateway_client.post(
        "/api/v1/chat/completions", headers=account.auth, json=body
    )
    assert admitted.status_code == 200

    user = await services.store.get_user(account.user.id)
    assert user is not None
    assert (user.usage.total, user.usage.monthly(clock.now)) == (2 * COST, COST)


async def test_key_shows_the_user_budget_as_a_second_budget(
    gateway_client: httpx.AsyncClient, services: Services, account: Account
) -> None:
    limited = await services.keys.create(
        account.user, name="limited", limit_usd=1.0, limit_reset="daily"
    )
    await set_budget(services, account, 50_000, "weekly")
    await gateway_client.post(
        "/api/v1/chat/completions", headers=account.auth, json=chat(max_tokens=10)
    )

    answer = (await gateway_client.get("/api/v1/key", headers=bearer(limited.secret))).json()
    component_validator("ApiKeys_getCurrentKey_Response_200").validate(answer)
    data = answer["data"]

    assert [entry["scope"] for entry in data["budgets"]] == ["key_limit", "user_budget"]
    own, user_budget = data["budgets"]
    assert (own["limit_usd"], own["spend_usd"]) == (1.0, 0.0)
    assert user_budget == {
        "scope": "user_budget", "limit_usd": usd(50_000), "spend_usd": usd(COST),
        "remaining_usd": usd(50_000 - COST), "reset_interval": "weekly",
        "resets_at": user_budget["resets_at"], "include_byok": False, "budget_id": None,
        "guardrail_id": None,
    }  # fmt: skip
    assert datetime.fromisoformat(user_budget["resets_at"]).weekday() == 0  # a Monday
    assert data["effective_budget"] == user_budget  # the tighter one
    unlimited = (await gateway_client.get("/api/v1/key", headers=account.auth)).json()["data"]
    assert [entry["scope"] for entry in unlimited["budgets"]] == ["user_budget"]
    await set_budget(services, account, None)
    cleared = (await gateway_client.get("/api/v1/key", headers=account.auth)).json()["data"]
    assert (cleared["budgets"], cleared["effective_budget"]) == ([], None)


async def test_credits_answer_the_management_keys_user(
    client: httpx.AsyncClient, services: Services, account: Account
) -> None:
    management = await services.keys.create(account.user, name="admin", is_management=True)
    auth = bearer(management.secret)

    unbudgeted = await client.get("/api/v1/credits", headers=auth)
    assert unbudgeted.status_code == 200
    assert unbudgeted.json() == {"data": {
        "total_credits": UNLIMITED_CREDITS, "total_usage": 0.0, "limit": None,
        "limit_remaining": None, "limit_reset": None,
    }}  # fmt: skip
    await set_budget(services, account, 50 * NANOS_PER_USD, "monthly")
    component_validator("Credits_getCredits_Response_200").validate(unbudgeted.json())
    budgeted = (await client.get("/api/v1/credits", headers=auth)).json()["data"]
    assert budgeted == {"total_credits": 50.0, "total_usage": 0.0, "limit": 50.0,
                        "limit_remaining": 50.0, "limit_reset": "monthly"}  # fmt: skip

    ordinary = await client.get("/api/v1/credits", headers=account.auth)
    assert ordinary.status_code == 403
    assert error_of(ordinary)["message"] == "Only management keys can perform this operation"
    assert (await client.get("/api/v1/credits")).status_code == 401


def bearer_routes() -> list[tuple[str, str]]:
    """Every documented (method, path) that needs a key, from the OpenAPI document."""
    from tests.test_openapi_document import DOC, operations

    return [
        (method.upper(), "/api/v1" + path)
        for path, method, operation in operations(DOC)
        if operation["security"] == [{"apiKey": []}]
    ]


async def test_a_disabled_users_keys_stop_at_once_on_every_route(
    gateway_client: httpx.AsyncClient, services: Services, account: Account
) -> None:
    management = await services.keys.create(account.user, name="admin", is_management=True)
    await set_budget(services, account, None)
    assert (await gateway_client.get("/api/v1/key", headers=account.auth)).status_code == 200

    disabled = await services.store.update_user(account.user.id, services.clock(), disabled=True)
    assert disabled is not None and disabled.disabled

    routes = bearer_routes()
    assert len(routes) >= 10
    for method, path in routes:
        for key in (account.key, management.secret):
            url = path.replace("{hash}", management.record.hash)
            url = url.replace("{user_id}", account.user.id)
            response = await gateway_client.request(method, url, headers=bearer(key), json={})
            assert response.status_code == 401, (method, path, response.text)
            assert error_of(response)["message"] == USER_DISABLED, (method, path)

    await services.store.update_user(account.user.id, services.clock(), disabled=False)
    again = await gateway_client.post(
        "/api/v1/chat/completions", headers=account.auth, json=chat(max_tokens=2)
    )
    assert again.status_code == 200


async def test_a_disabled_user_cannot_sign_in_and_their_sessions_end(
    client: httpx.AsyncClient, services: Services, account: Account
) -> None:
    from tests.support.pages import log_in

    signed_in = await log_in(client, account.user.email, account.password)
    assert signed_in.status_code == 303
    assert (await client.get("/keys")).status_code == 200

    await services.store.update_user(account.user.id, services.clock(), disabled=True)

    assert (await client.get("/keys")).headers["location"].startswith("/login")
    client.cookies.clear()
    refused = await log_in(client, account.user.email, account.password)
    assert refused.status_code == 401


async def test_new_users_get_the_default_budget(store: Store, clock: FakeClock) -> None:
    settings = Settings(default_user_limit=50.0, default_user_limit_reset="monthly")
    services = Services.build(settings, store, clock=clock)
    ada = await make_account(services, "new@example.com")
    stored = await store.get_user(ada.user.id)
    assert stored is not None
    assert (stored.limit, stored.limit_reset) == (50 * NANOS_PER_USD, "monthly")
    key = await services.keys.authenticate(f"Bearer {ada.key}")
    assert key.user_budgeted and not key.user_disabled
