"""``GET /api/v1/activity`` and the daily rollup behind it, on SQLite and PostgreSQL:
sums equal the generation records to the nano-dollar, filters, bad parameters,
management keys only, and a rollup that outlives the purge and follows rotation."""

from __future__ import annotations

import secrets
import sqlite3
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from openrouter import components

from modelgates import tokens
from modelgates.container import Services
from modelgates.models import ApiKey, Generation
from modelgates.money import to_nanos
from modelgates.purge import purge_once
from modelgates.services import audit
from modelgates.settings import Settings
from modelgates.store import Store, open_store
from tests.conftest import Account, make_account
from tests.support.clock import FakeClock

NOW = datetime(2026, 3, 18, 15, 30, tzinfo=UTC)
ITEM_FIELDS = {
    "date", "model", "model_permaslug", "endpoint_id", "provider_name", "usage",
    "byok_usage_inference", "requests", "prompt_tokens", "completion_tokens",
    "reasoning_tokens", "cached_tokens",
}  # fmt: skip


@pytest.fixture(autouse=True)
def fixed_clock(clock: FakeClock) -> None:
    clock.set(NOW)


def record(key: ApiKey, at: datetime, cost: int, model: str = "test/a", provider: str = "p",
           *, prompt: int = 10, completion: int = 5, reasoning: int = 0) -> Generation:  # fmt: skip
    return Generation(
        id="gen-" + secrets.token_hex(8), key_hash=key.hash, user_id=key.user_id,
        app_id=None, model=model, provider=provider, upstream_model=model.split("/")[-1],
        api_type="chat", created_at=at, cost=cost, reserved=cost, prompt_tokens=prompt,
        completion_tokens=completion, reasoning_tokens=reasoning, cached_tokens=1,
    )  # fmt: skip


async def charge(store: Store, *records: Generation) -> None:
    for one in records:
        await store.settle("r-" + one.id, one)


async def key_of(services: Services, account: Account) -> ApiKey:
    key = await services.store.get_key(tokens.sha256_hex(account.key))
    assert key is not None
    return key


async def management(services: Services, account: Account) -> dict[str, str]:
    made = await services.keys.create(account.user, name="mgmt", is_management=True)
    return {"Authorization": f"Bearer {made.secret}"}


async def activity(
    client: httpx.AsyncClient, auth: dict[str, str], **params: str
) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/activity", headers=auth, params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"data"}
    for item in body["data"]:
        assert set(item) == ITEM_FIELDS
    # The official SDK's own model parses it (every required field, every type).
    parsed = components.ActivityResponse.model_validate(body)
    assert [item.date_ for item in parsed.data] == [item["date"] for item in body["data"]]
    data: list[dict[str, Any]] = body["data"]
    return data


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "user_id"}
    assert body["error"]["code"] == status
    error: dict[str, Any] = body["error"]
    return error


async def traffic(services: Services, account: Account) -> tuple[ApiKey, ApiKey, list[Generation]]:
    """Odd amounts over three days (today included), two models, two providers, two keys."""
    first = await key_of(services, account)
    second = (await services.keys.create(account.user, name="second")).record
    made = [
        record(first, NOW - timedelta(hours=1), 123_456_789, "test/a", "p", reasoning=3),
        record(first, NOW - timedelta(hours=2), 1, "test/a", "p"),
        record(second, NOW - timedelta(hours=3), 987_654_321, "test/a", "p"),
        record(first, NOW - timedelta(days=1), 333, "test/b", "q"),
        record(second, NOW - timedelta(days=1, hours=1), 7, "test/a", "q"),
        record(first, NOW - timedelta(days=29), 55, "test/b", "p"),
        record(first, NOW - timedelta(days=30), 99_999, "test/b", "p"),  # past the window
    ]
    await charge(services.store, *made)
    return first, second, made


def expected(records: list[Generation]) -> dict[tuple[str, str, str], dict[str, int]]:
    sums: dict[tuple[str, str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for one in records:
        row = sums[(one.created_at.date().isoformat(), one.model, one.provider)]
        row["cost"] += one.cost
        row["requests"] += 1
        row["prompt_tokens"] += one.prompt_tokens
        row["completion_tokens"] += one.completion_tokens
        row["reasoning_tokens"] += one.reasoning_tokens
        row["cached_tokens"] += one.cached_tokens
    return sums


def observed(data: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, int]]:
    found = {}
    for item in data:
        provider = item["endpoint_id"].split("/")[0]
        found[(item["date"], item["model"], provider)] = {
            "cost": to_nanos(item["usage"]),
            "requests": item["requests"],
            "prompt_tokens": item["prompt_tokens"],
            "completion_tokens": item["completion_tokens"],
            "reasoning_tokens": item["reasoning_tokens"],
            "cached_tokens": item["cached_tokens"],
        }
    assert len(found) == len(data)  # one row per day × model × provider
    return found


async def test_rows_sum_the_records_to_the_nano_dollar(
    client: httpx.AsyncClient, services: Services, account: Account
) -> None:
    _, _, made = await traffic(services, account)
    data = await activity(client, await management(services, account))
    in_window = [one for one in made if one.created_at > NOW - timedelta(days=30)]
    assert observed(data) == expected(in_window)
    assert {item["date"] for item in data} == {"2026-03-18", "2026-03-17", "2026-02-17"}
    # Today is there (OpenRouter shows completed days only); empty days have no rows.
    assert data[-1]["date"] == "2026-03-18"
    assert [item["date"] for item in data] == sorted(item["date"] for item in data)
    # Every record is counted once across the rows: the user's ledger.
    audit = await services.store.user_usage_audit(account.user.id, NOW)
    assert sum(to_nanos(item["usage"]) for item in data) + 99_999 == audit.charged
    assert sum(item["requests"] for item in data) + 1 == audit.charges
    first = next(item for item in data if item["date"] == "2026-03-18")
    assert first["model_permaslug"] == first["model"] == "test/a"
    assert first["byok_usage_inference"] == 0
    assert first["provider_name"] == "p"  # not in the catalogue: its name


async def test_metered_requests_reach_the_rollup(
    gateway_client: httpx.AsyncClient, services: Services, account: Account
) -> None:
    """Through the real gateway path: the rows equal the generation records it wrote."""
    ids = []
    for _ in range(3):
        response = await gateway_client.post(
            "/api/v1/chat/completions",
            headers=account.auth,
            json={"model": "test/echo", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert response.status_code == 200, response.text
        ids.append(response.json()["id"])
    records = [await services.store.get_generation(gen_id) for gen_id in ids]
    assert all(one is not None for one in records)
    data = await activity(gateway_client, await management(services, account))
    assert len(data) == 1
    assert data[0]["requests"] == 3
    assert to_nanos(data[0]["usage"]) == sum(one.cost for one in records if one) > 0
    assert data[0]["prompt_tokens"] == sum(one.prompt_tokens for one in records if one)
    assert data[0]["provider_name"] == "fake"
    assert data[0]["endpoint_id"] == "fake/echo"


async def test_date_filter_gives_that_day_only(
    client: httpx.AsyncClient, services: Services, account: Account
) -> None:
    _, _, made = await traffic(services, account)
    auth = await management(services, account)
    data = await activity(client, auth, date="2026-03-17")
    assert observed(data) == expected([one for one in made if one.created_at.day == 17
                                       and one.created_at.month == 3])  # fmt: skip
    # A day older than the default window still answers (the rollup keeps history).
    old = await activity(client, auth, date="2026-02-16")
    assert [to_nanos(item["usage"]) for item in old] == [99_999]
    assert await activity(client, auth, date="2026-03-10") == []  # no traffic: no rows
    assert await activity(client, auth, date="2030-01-01") == []


async def test_key_hash_filter_and_other_users_keys(
    client: httpx.AsyncClient, services: Services, account: Account
) -> None:
    first, second, made = await traffic(services, account)
    auth = await management(services, account)
    in_window = [one for one in made if one.created_at > NOW - timedelta(days=30)]
    mine = await activity(client, auth, api_key_hash=second.hash)
    assert observed(mine) == expected([one for one in in_window if one.key_hash == second.hash])
    upper = await activity(client, auth, api_key_hash=first.hash.upper())
    assert observed(upper) == expected([one for one in in_window if one.key_hash == first.hash])
    both = await activity(client, auth, api_key_hash=first.hash, date="2026-03-17")
    assert [item["model"] for item in both] == ["test/b"]

    other = await make_account(services, "grace@example.com")
    other_key = await key_of(services, other)
    await charge(services.store, record(other_key, NOW, 5_000))
    assert await activity(client, auth, api_key_hash=other_key.hash) == []
    assert await activity(client, auth, api_key_hash="0" * 64) == []
    # The other user sees only their own spend, and not ours.
    theirs = await activity(client, await management(services, other))
    assert [to_nanos(item["usage"]) for item in theirs] == [5_000]
    assert await activity(client, await management(services, other), api_key_hash=first.hash) == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"date": "2026-02-30"}, "date"),
        ({"date": "yesterday"}, "date"),
        ({"date": "2026-3-1"}, "date"),
        ({"date": "2026-03-01T00:00:00Z"}, "date"),
        ({"date": ""}, "date"),
        ({"date": "２０２６-03-01"}, "date"),
        ({"api_key_hash": "abc"}, "api_key_hash"),
        ({"api_key_hash": "g" * 64}, "api_key_hash"),
        ({"api_key_hash": ""}, "api_key_hash"),
        ({"api_key_hash": "a" * 65}, "api_key_hash"),
    ],
)
async def test_bad_parameters_are_400(
    client: httpx.AsyncClient,
    services: Services,
    account: Account,
    params: dict[str, str],
    field: str,
) -> None:
    response = await client.get(
        "/api/v1/activity", headers=await management(services, account), params=params
    )
    assert error_of(response, 400)["metadata"]["field"] == field


async def test_a_repeated_parameter_is_400(
    client: httpx.AsyncClient, services: Services, account: Account
) -> None:
    response = await client.get(
        "/api/v1/activity?date=2026-03-01&date=2026-03-02",
        headers=await management(services, account),
    )
    assert error_of(response, 400)["metadata"]["field"] == "date"


async def test_management_keys_only(
    client: httpx.AsyncClient, services: Services, account: Account
) -> None:
    ordinary = await client.get("/api/v1/activity", headers=account.auth)
    assert error_of(ordinary, 403)["message"] == "Only management keys can perform this operation"
    error_of(await client.get("/api/v1/activity"), 401)
    bad = {"Authorization": "Bearer sk-mg-v1-" + "0" * 64}
    error_of(await client.get("/api/v1/activity", headers=bad), 401)
    error_of(await client.post("/api/v1/activity", headers=account.auth), 405)


async def test_the_rollup_outlives_the_purge_of_the_records(
    client: httpx.AsyncClient, services: Services, account: Account, clock: FakeClock
) -> None:
    key = await key_of(services, account)
    old = record(key, NOW - timedelta(days=5), 4_242)
    await charge(services.store, old)
    auth = await management(services, account)
    before = await activity(client, auth)
    clock.set(NOW + timedelta(days=services.settings.generation_retention_days))
    assert (await purge_once(services, batch=10, pause=0)).generations == 1
    assert await services.store.get_generation(old.id) is None
    after = await activity(client, auth, date=(NOW - timedelta(days=5)).date().isoformat())
    assert after == before
    assert to_nanos(after[0]["usage"]) == 4_242


async def test_rotation_moves_the_keys_history(
    client: httpx.AsyncClient, services: Services, account: Account
) -> None:
    key = await key_of(services, account)
    await charge(services.store, record(key, NOW - timedelta(days=2), 777))
    rotated = await services.rotation.rotate(
        account.user.id, key.hash, grace_seconds=0, actor=audit.user_actor(account.user.id)
    )
    auth = await management(services, account)
    new_hash = rotated.record.hash
    assert [to_nanos(item["usage"]) for item in await activity(client, auth,
            api_key_hash=new_hash)] == [777]  # fmt: skip
    assert await activity(client, auth, api_key_hash=key.hash) == []


async def test_the_migration_backfills_the_rollup_from_the_records(
    empty_database_url: str,
) -> None:
    """Records written before 0012 are in the rollup after it (the migration run again
    from scratch on a database holding records)."""
    store = await open_store(empty_database_url)
    try:
        await store.migrate()
        services = Services.build(Settings(), store, clock=lambda: NOW)
        account = await make_account(services)
        key = await key_of(services, account)
        made = [record(key, NOW - timedelta(days=d, minutes=m), 10 * d + m + 1)
                for d in range(3) for m in range(2)]  # fmt: skip
        await charge(store, *made)
        before = await store.usage_days(account.user.id, date(2026, 1, 1), NOW.date())
        await _undo_migration_0012(empty_database_url)
        assert await store.migrate() == ["0012_usage_daily"]
        after = await store.usage_days(account.user.id, date(2026, 1, 1), NOW.date())
    finally:
        await store.close()
    assert after == before
    assert sum(row.cost for row in after) == sum(one.cost for one in made)
    assert sum(row.requests for row in after) == len(made) == 6


async def _undo_migration_0012(url: str) -> None:
    undo = [
        "DROP TABLE usage_daily",
        "DROP INDEX generations_by_user",
        "DELETE FROM schema_migrations WHERE name = '0012_usage_daily'",
    ]
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as lite:
            lite.execute("DROP TRIGGER usage_daily_add_generation")
            for statement in undo:
                lite.execute(statement)
        return
    pg = await asyncpg.connect(url)
    try:
        await pg.execute("DROP FUNCTION modelgates_usage_daily_add() CASCADE")
        for statement in undo:
            await pg.execute(statement)
    finally:
        await pg.close()
