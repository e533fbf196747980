"""``GET /api/v1/key`` and ``/api/v1/auth/key``: the calling key's data and usage windows."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from modelgates.container import Services
from modelgates.windows import UsageCounters
from tests.conftest import Account
from tests.support.clock import FakeClock

FIELDS = {
    "label", "limit", "limit_remaining", "limit_reset", "usage", "usage_daily", "usage_weekly",
    "usage_monthly", "expires_at", "is_management_key", "is_provisioning_key", "is_free_tier",
    "include_byok_in_limit", "byok_usage", "byok_usage_daily", "byok_usage_weekly",
    "byok_usage_monthly", "creator_user_id", "organization_id", "workspace_id", "rate_limit",
    "allowed_data_regions", "free_model_daily_requests", "budgets", "effective_budget", "app_id",
    "allowed_models",
}  # fmt: skip


async def get_key(client: httpx.AsyncClient, key: str, path: str = "/api/v1/key") -> dict[str, Any]:
    response = await client.get(path, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


@pytest.mark.parametrize("path", ["/api/v1/key", "/api/v1/auth/key"])
async def test_full_field_set(client: httpx.AsyncClient, account: Account, path: str) -> None:
    data = await get_key(client, account.key, path)
    assert set(data) == FIELDS
    assert data["label"] == "personal"
    assert data["limit"] is None and data["limit_remaining"] is None and data["limit_reset"] is None
    assert data["usage"] == 0 and data["is_free_tier"] is False
    assert data["is_management_key"] is data["is_provisioning_key"] is False
    assert data["workspace_id"] == account.user.workspace_id
    assert data["rate_limit"] == {"requests": -1, "interval": "10s", "note": "deprecated"}
    assert data["free_model_daily_requests"] == {"limit": 0, "remaining": 0, "used": 0}
    assert data["budgets"] == [] and data["effective_budget"] is None


async def test_limited_key_with_windows(
    client: httpx.AsyncClient, services: Services, account: Account, clock: FakeClock
) -> None:
    # Wednesday 2026-11-25 10:00 UTC; week started Monday 23rd, month on the 1st.
    clock.set(datetime(2026, 11, 25, 10, tzinfo=UTC))
    new = services.keys.mint(
        user_id=account.user.id, name="budget", limit=10 * 10**9, limit_reset="weekly",
        expires_at=datetime(2027, 1, 1, tzinfo=UTC),
    )  # fmt: skip
    usage = UsageCounters(
        total=9 * 10**9,
        day=1 * 10**9, day_start=datetime(2026, 11, 25, tzinfo=UTC),
        week=3 * 10**9, week_start=datetime(2026, 11, 23, tzinfo=UTC),
        month=5 * 10**9, month_start=datetime(2026, 11, 1, tzinfo=UTC),
    )  # fmt: skip
    await services.store.create_key(replace(new.record, usage=usage))

    data = await get_key(client, new.secret)
    assert (data["usage"], data["usage_daily"], data["usage_weekly"], data["usage_monthly"]) == (
        9.0, 1.0, 3.0, 5.0,
    )  # fmt: skip
    assert data["limit"] == 10.0 and data["limit_remaining"] == 7.0
    assert data["limit_reset"] == "weekly"
    assert data["expires_at"] == "2027-01-01T00:00:00Z"
    assert data["effective_budget"] == {
        "scope": "key_limit", "limit_usd": 10.0, "spend_usd": 3.0, "remaining_usd": 7.0,
        "reset_interval": "weekly", "resets_at": "2026-11-30T00:00:00Z", "include_byok": False,
        "budget_id": None, "guardrail_id": None,
    }  # fmt: skip
    assert data["budgets"] == [data["effective_budget"]]

    clock.set(datetime(2026, 11, 29, 23, 59, 59, tzinfo=UTC))  # Sunday: same week, new day
    data = await get_key(client, new.secret)
    assert (data["usage_daily"], data["usage_weekly"], data["limit_remaining"]) == (0.0, 3.0, 7.0)

    clock.set(datetime(2026, 11, 30, tzinfo=UTC))  # Monday 00:00: the week rolls exactly here
    data = await get_key(client, new.secret)
    assert (data["usage_weekly"], data["usage_monthly"], data["limit_remaining"]) == (
        0.0,
        5.0,
        10.0,
    )

    clock.set(datetime(2026, 12, 1, tzinfo=UTC))
    data = await get_key(client, new.secret)
    assert (data["usage"], data["usage_monthly"]) == (9.0, 0.0)


async def test_lifetime_limit_uses_total_usage(
    client: httpx.AsyncClient, services: Services, account: Account
) -> None:
    new = services.keys.mint(user_id=account.user.id, name="life", limit=2 * 10**9)
    await services.store.create_key(replace(new.record, usage=UsageCounters(total=5 * 10**9)))
    data = await get_key(client, new.secret)
    assert data["limit_remaining"] == 0.0  # never below zero
    assert data["effective_budget"]["resets_at"] is None


async def test_expired_key_is_refused_from_its_expiry_instant(
    client: httpx.AsyncClient, services: Services, account: Account, clock: FakeClock
) -> None:
    new = await services.keys.create(account.user, expires_at=clock() + timedelta(hours=1))
    clock.advance(3599)
    await get_key(client, new.secret)
    clock.advance(1)
    response = await client.get("/api/v1/key", headers={"Authorization": f"Bearer {new.secret}"})
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "Key expired"


async def test_disabled_key_is_refused(
    client: httpx.AsyncClient, services: Services, account: Account
) -> None:
    new = services.keys.mint(user_id=account.user.id, name="off")
    await services.store.create_key(replace(new.record, disabled=True))
    response = await client.get("/api/v1/key", headers={"Authorization": f"Bearer {new.secret}"})
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "Key disabled"


async def test_management_flag_is_reported(
    client: httpx.AsyncClient, services: Services, account: Account
) -> None:
    new = await services.keys.create(account.user, name="admin", is_management=True)
    data = await get_key(client, new.secret)
    assert data["is_management_key"] is True and data["is_provisioning_key"] is True


async def test_missing_key_is_401(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/key")
    assert response.status_code == 401
    assert response.json() == {
        "error": {
            "code": 401,
            "message": "Missing Authentication header",
            "metadata": {"request_id": response.headers["x-request-id"]},
        },
        "user_id": None,
    }
