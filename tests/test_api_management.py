"""The management API, ``/api/v1/keys``: management keys only, scoped to their own user."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from modelgates import tokens
from modelgates.container import Services
from modelgates.windows import UsageCounters
from tests.conftest import Account, make_account
from tests.support.clock import FakeClock

KEY_FIELDS = {
    "hash", "name", "label", "disabled", "limit", "limit_remaining", "limit_reset",
    "include_byok_in_limit", "usage", "usage_daily", "usage_weekly", "usage_monthly",
    "byok_usage", "byok_usage_daily", "byok_usage_weekly", "byok_usage_monthly", "created_at",
    "updated_at", "last_used_at", "expires_at", "creator_user_id", "external_user",
    "workspace_id", "app_id", "allowed_models",
}  # fmt: skip

MANAGEMENT_ONLY = "Only management keys can perform this operation"
NOT_FOUND = "Resource not found"
NAME_NULL = "Invalid value for name: Expected `string`, got `null`"
LIMIT_STRING = "Invalid value for limit: Expected `number | null`, got `string`"
DISABLED_STRING = "Invalid value for disabled: Expected `boolean`, got `string`"
DISABLED_NULL = "Invalid value for disabled: Expected `boolean`, got `null`"
IN_THE_PAST = "expires_at must be in the future"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def management_key(services: Services, account: Account) -> str:
    return (await services.keys.create(account.user, name="admin", is_management=True)).secret


@pytest.fixture
async def admin(services: Services, account: Account) -> dict[str, str]:
    return bearer(await management_key(services, account))


def error(response: httpx.Response, status: int) -> tuple[str, dict[str, Any] | None]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "user_id"}
    assert body["error"]["code"] == status
    metadata = body["error"]["metadata"]
    field = {k: v for k, v in metadata.items() if k != "request_id"} if metadata else None
    return body["error"]["message"], field or None


async def create(
    client: httpx.AsyncClient, auth: dict[str, str], **body: Any
) -> tuple[dict[str, Any], str]:
    response = await client.post("/api/v1/keys", headers=auth, json={"name": "k", **body})
    assert response.status_code == 201, response.text
    answer = response.json()
    assert set(answer) == {"data", "key"}
    return answer["data"], answer["key"]


# --- create, get, list -------------------------------------------------------


async def test_create_returns_201_with_the_key_shown_once(
    client: httpx.AsyncClient, account: Account, admin: dict[str, str], clock: FakeClock
) -> None:
    expires = (clock() + timedelta(days=30)).replace(microsecond=0)
    data, key = await create(
        client, admin, name="  CI key  ", limit=12.5, limit_reset="weekly",
        expires_at=expires.isoformat().replace("+00:00", "Z"), include_byok_in_limit=True,
    )  # fmt: skip
    assert tokens.looks_like_api_key(key)
    assert set(data) == KEY_FIELDS
    assert data["hash"] == tokens.sha256_hex(key)
    assert data["name"] == data["label"] == "CI key"
    assert data["disabled"] is False
    assert (data["limit"], data["limit_remaining"], data["limit_reset"]) == (12.5, 12.5, "weekly")
    assert data["usage"] == data["usage_daily"] == data["byok_usage"] == 0
    assert data["include_byok_in_limit"] is False
    assert data["expires_at"] == expires.isoformat().replace("+00:00", "Z")
    assert data["created_at"] == clock().isoformat().replace("+00:00", "Z")
    assert data["updated_at"] is None and data["last_used_at"] is None
    assert data["creator_user_id"] is None and data["external_user"] is None
    assert data["workspace_id"] == account.user.workspace_id
    assert data["app_id"] is None

    # The new key works, and is an ordinary key.
    current = await client.get("/api/v1/key", headers=bearer(key))
    assert current.status_code == 200
    assert current.json()["data"]["is_management_key"] is False

    fetched = await client.get(f"/api/v1/keys/{data['hash']}", headers=admin)
    assert fetched.status_code == 200
    assert fetched.json() == {"data": data}


async def test_list_pages_of_100_newest_first_without_disabled_by_default(
    client: httpx.AsyncClient,
    services: Services,
    account: Account,
    admin: dict[str, str],
    clock: FakeClock,
) -> None:
    start = clock()
    for i in range(105):
        clock.set(start + timedelta(seconds=i + 1))
        new = services.keys.mint(user_id=account.user.id, name=f"k{i}")
        await services.store.create_key(replace(new.record, disabled=i == 104))

    first = await client.get("/api/v1/keys", headers=admin)
    assert first.status_code == 200
    page = first.json()["data"]
    assert len(page) == 100
    assert all(set(item) == KEY_FIELDS for item in page)
    assert [item["name"] for item in page[:2]] == ["k103", "k102"]  # k104 is disabled

    rest = (await client.get("/api/v1/keys?offset=100", headers=admin)).json()["data"]
    # k3..k0, then the two keys made before at one instant (personal, admin: order by hash)
    assert [item["name"] for item in rest[:4]] == ["k3", "k2", "k1", "k0"]
    assert sorted(item["name"] for item in rest[4:]) == ["admin", "personal"]

    with_disabled = await client.get(
        "/api/v1/keys", params={"include_disabled": "true"}, headers=admin
    )
    names = [item["name"] for item in with_disabled.json()["data"]]
    assert names[0] == "k104" and len(names) == 100
    assert with_disabled.json()["data"][0]["disabled"] is True

    explicit = await client.get("/api/v1/keys?include_disabled=false&offset=0", headers=admin)
    assert explicit.json() == first.json()

    empty = await client.get("/api/v1/keys?offset=1000", headers=admin)
    assert empty.status_code == 200 and empty.json() == {"data": []}


async def test_list_shows_only_the_callers_user_and_hides_revoked(
    client: httpx.AsyncClient, services: Services, account: Account, admin: dict[str, str]
) -> None:
    other = await make_account(services, "bob@example.com")
    await management_key(services, other)
    _, doomed = await create(client, admin, name="doomed")
    await services.keys.revoke(tokens.sha256_hex(doomed))

    listed = (await client.get("/api/v1/keys", headers=admin)).json()["data"]
    assert sorted(item["name"] for item in listed) == ["admin", "personal"]
    assert {item["workspace_id"] for item in listed} == {account.user.workspace_id}


async def test_usage_and_limit_fields(
    client: httpx.AsyncClient,
    services: Services,
    account: Account,
    admin: dict[str, str],
    clock: FakeClock,
) -> None:
    clock.set(datetime(2026, 11, 25, 10, tzinfo=UTC))
    new = services.keys.mint(
        user_id=account.user.id, name="spent", limit=10 * 10**9, limit_reset="daily"
    )
    usage = UsageCounters(
        total=4 * 10**9,
        day=1 * 10**9, day_start=datetime(2026, 11, 25, tzinfo=UTC),
        week=2 * 10**9, week_start=datetime(2026, 11, 23, tzinfo=UTC),
        month=3 * 10**9, month_start=datetime(2026, 11, 1, tzinfo=UTC),
    )  # fmt: skip
    await services.store.create_key(replace(new.record, usage=usage))
    data = (await client.get(f"/api/v1/keys/{new.record.hash}", headers=admin)).json()["data"]
    assert (data["usage"], data["usage_daily"], data["usage_weekly"], data["usage_monthly"]) == (
        4.0, 1.0, 2.0, 3.0,
    )  # fmt: skip
    assert data["limit_remaining"] == 9.0


# --- update --------------------------------------------------------------------


async def test_patch_changes_only_the_given_fields(
    client: httpx.AsyncClient, admin: dict[str, str], clock: FakeClock
) -> None:
    data, key = await create(client, admin, name="orig", limit=5, limit_reset="monthly")
    url = f"/api/v1/keys/{data['hash']}"
    clock.advance(60)

    renamed = await client.patch(url, headers=admin, json={"name": " renamed ", "extra": 1})
    assert renamed.status_code == 200, renamed.text
    after = renamed.json()["data"]
    assert after["name"] == "renamed"
    assert after["label"] == "orig"  # the label is the key's display form, not renamed
    assert (after["limit"], after["limit_reset"], after["disabled"]) == (5.0, "monthly", False)
    assert after["updated_at"] == clock().isoformat().replace("+00:00", "Z")

    raised = (await client.patch(url, headers=admin, json={"limit": 20})).json()["data"]
    assert (raised["limit"], raised["limit_remaining"], raised["limit_reset"]) == (
        20.0,
        20.0,
        "monthly",
    )

    daily = (await client.patch(url, headers=admin, json={"limit_reset": "daily"})).json()
    assert daily["data"]["limit_reset"] == "daily" and daily["data"]["limit"] == 20.0

    lifetime = (await client.patch(url, headers=admin, json={"limit_reset": None})).json()
    assert lifetime["data"]["limit_reset"] is None and lifetime["data"]["limit"] == 20.0

    both = await client.patch(url, headers=admin, json={"limit": 3, "limit_reset": "weekly"})
    assert (both.json()["data"]["limit"], both.json()["data"]["limit_reset"]) == (3.0, "weekly")

    # An explicit null removes the limit (and its reset interval with it).
    unlimited = (await client.patch(url, headers=admin, json={"limit": None})).json()["data"]
    assert unlimited["limit"] is None and unlimited["limit_remaining"] is None
    assert unlimited["limit_reset"] is None
    assert unlimited["name"] == "renamed"

    unchanged = (await client.patch(url, headers=admin, json={})).json()["data"]
    assert {k: v for k, v in unchanged.items() if k != "updated_at"} == {
        k: v for k, v in unlimited.items() if k != "updated_at"
    }

    # The key itself still works throughout.
    assert (await client.get("/api/v1/key", headers=bearer(key))).status_code == 200


async def test_disable_and_enable(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    data, key = await create(client, admin, name="toggle")
    url = f"/api/v1/keys/{data['hash']}"
    off = await client.patch(url, headers=admin, json={"disabled": True})
    assert off.json()["data"]["disabled"] is True
    message, _ = error(await client.get("/api/v1/key", headers=bearer(key)), 401)
    assert message == "Key disabled"
    # A disabled key stays visible to GET by hash and to include_disabled lists.
    assert (await client.get(url, headers=admin)).json()["data"]["disabled"] is True
    listed = (await client.get("/api/v1/keys", headers=admin)).json()["data"]
    assert data["hash"] not in {item["hash"] for item in listed}

    on = await client.patch(url, headers=admin, json={"disabled": False})
    assert on.json()["data"]["disabled"] is False
    assert (await client.get("/api/v1/key", headers=bearer(key))).status_code == 200


async def test_patch_limit_reset_needs_a_limit(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    data, _ = await create(client, admin, name="free")
    url = f"/api/v1/keys/{data['hash']}"
    message, field = error(
        await client.patch(url, headers=admin, json={"limit_reset": "daily"}), 400
    )
    assert (message, field) == ("limit_reset requires a limit", {"field": "limit_reset"})
    response = await client.patch(url, headers=admin, json={"limit": None, "limit_reset": "daily"})
    assert error(response, 400)[1] == {"field": "limit_reset"}
    unchanged = (await client.get(url, headers=admin)).json()["data"]
    assert unchanged["limit"] is None and unchanged["limit_reset"] is None


# --- delete --------------------------------------------------------------------


async def test_delete_revokes_the_key_everywhere(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    data, key = await create(client, admin, name="bye")
    url = f"/api/v1/keys/{data['hash']}"
    deleted = await client.delete(url, headers=admin)
    assert deleted.status_code == 200
    assert deleted.json() == {"deleted": True}

    assert error(await client.get("/api/v1/key", headers=bearer(key)), 401)[0] == "Key revoked"
    for response in (
        await client.get(url, headers=admin),
        await client.patch(url, headers=admin, json={"name": "x"}),
        await client.delete(url, headers=admin),
    ):
        assert error(response, 404) == (NOT_FOUND, None)


async def test_a_management_key_can_revoke_itself(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    listed = (await client.get("/api/v1/keys", headers=admin)).json()["data"]
    (own,) = [item for item in listed if item["name"] == "admin"]
    assert (await client.delete(f"/api/v1/keys/{own['hash']}", headers=admin)).status_code == 200
    assert error(await client.get("/api/v1/keys", headers=admin), 401)[0] == "Key revoked"


# --- who may call --------------------------------------------------------------


def every_route(key_hash: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    return [
        ("GET", "/api/v1/keys", None),
        ("POST", "/api/v1/keys", {"name": "x"}),
        ("GET", f"/api/v1/keys/{key_hash}", None),
        ("PATCH", f"/api/v1/keys/{key_hash}", {"name": "x"}),
        ("DELETE", f"/api/v1/keys/{key_hash}", None),
    ]


async def test_ordinary_keys_get_403(
    client: httpx.AsyncClient, account: Account, admin: dict[str, str]
) -> None:
    own_hash = tokens.sha256_hex(account.key)
    for method, url, body in every_route(own_hash):
        response = await client.request(method, url, headers=account.auth, json=body)
        assert error(response, 403) == (MANAGEMENT_ONLY, None), (method, url)
    # Nothing changed.
    listed = (await client.get("/api/v1/keys", headers=admin)).json()["data"]
    assert sorted(item["name"] for item in listed) == ["admin", "personal"]


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "Missing Authentication header"),
        ({"Authorization": "Bearer nope"}, "Invalid API key"),
        ({"Authorization": f"Bearer sk-mg-v1-{'0' * 64}"}, "Invalid API key"),
    ],
)
async def test_missing_or_invalid_keys_get_401(
    client: httpx.AsyncClient, headers: dict[str, str], message: str
) -> None:
    for method, url, body in every_route("a" * 64):
        response = await client.request(method, url, headers=headers, json=body)
        assert error(response, 401) == (message, None), (method, url)


async def test_expired_and_disabled_management_keys_get_401(
    client: httpx.AsyncClient, services: Services, account: Account, clock: FakeClock
) -> None:
    expiring = await services.keys.create(
        account.user, name="m1", is_management=True, expires_at=clock() + timedelta(hours=1)
    )
    disabled = services.keys.mint(user_id=account.user.id, name="m2", is_management=True)
    await services.store.create_key(replace(disabled.record, disabled=True))
    clock.advance(3600)
    for secret, message in ((expiring.secret, "Key expired"), (disabled.secret, "Key disabled")):
        response = await client.get("/api/v1/keys", headers=bearer(secret))
        assert error(response, 401) == (message, None)


async def test_another_users_keys_are_not_found(
    client: httpx.AsyncClient, services: Services, account: Account, admin: dict[str, str]
) -> None:
    bob = await make_account(services, "bob@example.com")
    bob_admin = bearer(await management_key(services, bob))
    bob_personal = tokens.sha256_hex(bob.key)

    for method, url, body in every_route(bob_personal)[2:]:
        response = await client.request(method, url, headers=admin, json=body)
        assert error(response, 404) == (NOT_FOUND, None), (method, url)
    # ...and the other way round.
    ada_personal = tokens.sha256_hex(account.key)
    for method, url, body in every_route(ada_personal)[2:]:
        response = await client.request(method, url, headers=bob_admin, json=body)
        assert error(response, 404) == (NOT_FOUND, None), (method, url)

    # Both keys are untouched.
    assert (await client.get("/api/v1/key", headers=bob.auth)).json()["data"]["label"] == "personal"
    assert (await client.get("/api/v1/key", headers=account.auth)).status_code == 200
    # A key created by Ada's management key belongs to Ada.
    data, _ = await create(client, admin, name="ada's")
    assert data["workspace_id"] == account.user.workspace_id
    bob_list = (await client.get("/api/v1/keys", headers=bob_admin)).json()["data"]
    assert data["hash"] not in {item["hash"] for item in bob_list}


@pytest.mark.parametrize(
    "key_hash",
    ["0" * 64, "A" * 64, "abc", "g" * 64, "a" * 65, "%20" + "a" * 64],
)
async def test_unknown_or_malformed_hashes_are_not_found(
    client: httpx.AsyncClient, admin: dict[str, str], key_hash: str
) -> None:
    for method, url, body in every_route(key_hash)[2:]:
        response = await client.request(method, url, headers=admin, json=body)
        assert error(response, 404) == (NOT_FOUND, None), (method, url)


# --- bad requests --------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ("offset=-1", "offset", "offset must be an integer from 0 to 2147483647"),
        ("offset=abc", "offset", "offset must be an integer from 0 to 2147483647"),
        ("offset=1.5", "offset", "offset must be an integer from 0 to 2147483647"),
        ("offset=", "offset", "offset must be an integer from 0 to 2147483647"),
        ("offset=99999999999", "offset", "offset must be an integer from 0 to 2147483647"),
        ("include_disabled=yes", "include_disabled", 'include_disabled must be "true" or "false"'),
        ("include_disabled=True", "include_disabled", 'include_disabled must be "true" or "false"'),
    ],
)
async def test_list_rejects_bad_queries(
    client: httpx.AsyncClient, admin: dict[str, str], query: str, field: str, message: str
) -> None:
    response = await client.get(f"/api/v1/keys?{query}", headers=admin)
    assert error(response, 400) == (message, {"field": field})


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({}, "name", "name is required"),
        ({"name": None}, "name", NAME_NULL),
        ({"name": "   "}, "name", "name must be 1-100 characters"),
        ({"name": "x" * 101}, "name", "name must be 1-100 characters"),
        ({"name": "k", "limit": "5"}, "limit", LIMIT_STRING),
        ({"name": "k", "limit": -1}, "limit", "limit must be a finite number >= 0"),
        ({"name": "k", "limit_reset": "daily"}, "limit_reset", "limit_reset requires a limit"),
        ({"name": "k", "limit": 1, "limit_reset": "yearly"}, "limit_reset", None),
        ({"name": "k", "expires_at": "2999-01-01T00:00:00"}, "expires_at", None),
        ({"name": "k", "expires_at": "2000-01-01T00:00:00Z"}, "expires_at", IN_THE_PAST),
        ({"name": "k", "expires_at": 5}, "expires_at", None),
        ({"name": "k", "expires_at": "9999-12-31T23:59:59-01:00"}, "expires_at",
         "expires_at must be between the years 0001 and 9999 in UTC"),
    ],
)  # fmt: skip
async def test_create_rejects_bad_bodies(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    body: dict[str, Any],
    field: str,
    message: str | None,
) -> None:
    response = await client.post("/api/v1/keys", headers=admin, json=body)
    got_message, got_field = error(response, 400)
    assert got_field == {"field": field}
    if message is not None:
        assert got_message == message
    listed = (await client.get("/api/v1/keys", headers=admin)).json()["data"]
    assert len(listed) == 2  # nothing was created


async def test_create_rejects_malformed_json(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    response = await client.post("/api/v1/keys", headers=admin, content=b"{nope")
    assert error(response, 400) == ("Malformed JSON body", None)
    response = await client.post("/api/v1/keys", headers=admin, content=b"[]")
    assert error(response, 400)[0].startswith("Invalid request body")


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"name": None}, "name", NAME_NULL),
        ({"name": ""}, "name", "name must be 1-100 characters"),
        ({"disabled": "true"}, "disabled", DISABLED_STRING),
        ({"disabled": None}, "disabled", DISABLED_NULL),
        ({"limit": "5"}, "limit", LIMIT_STRING),
        ({"limit": -0.5}, "limit", "limit must be a finite number >= 0"),
        ({"limit_reset": "hourly"}, "limit_reset", None),
    ],
)  # fmt: skip
async def test_patch_rejects_bad_bodies(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    body: dict[str, Any],
    field: str,
    message: str | None,
) -> None:
    data, _ = await create(client, admin, name="target", limit=1)
    url = f"/api/v1/keys/{data['hash']}"
    got_message, got_field = error(await client.patch(url, headers=admin, json=body), 400)
    assert got_field == {"field": field}
    if message is not None:
        assert got_message == message
    assert (await client.get(url, headers=admin)).json()["data"] == data
