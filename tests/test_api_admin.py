"""The admin API, ``/api/v1/admin/...``, on SQLite and PostgreSQL: only management keys of
admin users get in; users are listed, searched, shown and changed (budget, role, disabled),
each change applying from the next request and landing in the audit trail; every key,
the audit trail and the spend per day are readable; answers match the OpenAPI document."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from modelgates.container import Services
from tests.conftest import Account, make_account
from tests.support.clock import FakeClock
from tests.test_metering import bearer, chat, error_of
from tests.test_openapi_document import DOC, component_validator

ADMINS_ONLY = "Only admins can perform this operation"
MANAGEMENT_ONLY = "Only management keys can perform this operation"
ROUTES = [
    ("GET", "/api/v1/admin/users"),
    ("GET", "/api/v1/admin/users/{user_id}"),
    ("PATCH", "/api/v1/admin/users/{user_id}"),
    ("GET", "/api/v1/admin/keys"),
    ("GET", "/api/v1/admin/audit"),
    ("GET", "/api/v1/admin/spend"),
]


class Admin:
    """An admin's management key, and the member it administers."""

    def __init__(self, key: str, member: Account, admin: Account) -> None:
        self.auth = bearer(key)
        self.member = member
        self.admin = admin


@pytest.fixture
async def setup(services: Services, account: Account, clock: FakeClock) -> Admin:
    clock.advance(1)  # listed after the member
    boss = await make_account(services, "boss@example.com")
    await services.store.update_user(boss.user.id, services.clock(), is_admin=True)
    key = await services.keys.create(boss.user, name="admin", is_management=True)
    return Admin(key.secret, account, boss)


def url(path: str, setup: Admin) -> str:
    return path.replace("{user_id}", setup.member.user.id)


async def test_only_management_keys_of_admins_get_in(
    client: httpx.AsyncClient, services: Services, setup: Admin
) -> None:
    member_management = await services.keys.create(setup.member.user, name="m", is_management=True)
    admin_ordinary = await services.keys.create(setup.admin.user, name="plain")
    cases = [
        (None, 401, "Missing Authentication header"),
        (bearer(member_management.secret), 403, ADMINS_ONLY),
        (bearer(admin_ordinary.secret), 403, MANAGEMENT_ONLY),
    ]
    for method, path in ROUTES:
        for headers, status, message in cases:
            response = await client.request(method, url(path, setup), headers=headers, json={})
            assert response.status_code == status, (method, path, response.text)
            assert error_of(response)["message"] == message
        assert (
            await client.request(method, url(path, setup), headers=setup.auth, json={})
        ).is_success
    # A disabled admin is no admin.
    await services.store.update_user(setup.admin.user.id, services.clock(), disabled=True)
    assert (await client.get("/api/v1/admin/users", headers=setup.auth)).status_code == 401


async def test_users_are_listed_searched_and_shown(
    client: httpx.AsyncClient, services: Services, setup: Admin
) -> None:
    listed = await client.get("/api/v1/admin/users", headers=setup.auth)
    component_validator("Admin_listUsers_Response_200").validate(listed.json())
    users = listed.json()["data"]
    assert [(u["email"], u["role"], u["keys"]) for u in users] == [
        ("ada@example.com", "member", 1), ("boss@example.com", "admin", 2),
    ]  # fmt: skip
    assert set(users[0]) == set(DOC["components"]["schemas"]["AdminUser"]["required"])
    found = await client.get("/api/v1/admin/users", headers=setup.auth, params={"search": "BOSS"})
    assert [u["email"] for u in found.json()["data"]] == ["boss@example.com"]

    shown = await client.get(f"/api/v1/admin/users/{setup.member.user.id}", headers=setup.auth)
    component_validator("Admin_getUser_Response_200").validate(shown.json())
    data = shown.json()["data"]
    assert (data["email"], data["limit"], data["disabled"]) == ("ada@example.com", None, False)
    assert [(k["name"], k["user_id"], k["status"]) for k in data["api_keys"]] == [
        ("personal", setup.member.user.id, "active")
    ]
    missing = await client.get("/api/v1/admin/users/user_nobody", headers=setup.auth)
    assert missing.status_code == 404 and error_of(missing)["message"] == "User not found"


async def patch(client: httpx.AsyncClient, setup: Admin, **body: Any) -> httpx.Response:
    return await client.patch(
        f"/api/v1/admin/users/{setup.member.user.id}", headers=setup.auth, json=body
    )


async def test_a_budget_set_by_an_admin_applies_from_the_next_request(
    gateway_client: httpx.AsyncClient, services: Services, setup: Admin
) -> None:
    member = setup.member
    assert (await gateway_client.post("/api/v1/chat/completions", headers=member.auth,
                                      json=chat(max_tokens=10))).status_code == 200  # fmt: skip
    changed = await patch(gateway_client, setup, limit=0.00003, limit_reset="daily")
    assert changed.status_code == 200, changed.text
    data = changed.json()["data"]
    assert (data["limit"], data["limit_reset"], data["window_usage"]) == (
        0.00003,
        "daily",
        0.000024,
    )

    refused = await gateway_client.post(
        "/api/v1/chat/completions", headers=member.auth, json=chat(max_tokens=10)
    )
    assert refused.status_code == 402
    assert error_of(refused)["message"].startswith("User budget exceeded (daily limit)")

    cleared = (await patch(gateway_client, setup, limit=None)).json()["data"]
    assert (cleared["limit"], cleared["limit_reset"]) == (None, None)
    events = await gateway_client.get(
        "/api/v1/admin/audit", headers=setup.auth, params={"user_id": member.user.id}
    )
    component_validator("Admin_listAuditEvents_Response_200").validate(events.json())
    budget_events = [e for e in events.json()["data"] if e["event"] == "user.budget_changed"]
    admin_key = (await services.keys.authenticate(setup.auth["Authorization"])).hash
    assert [(e["detail"]["new_limit"], e["actor"]) for e in budget_events] == [
        (None, f"key:{admin_key}"), (0.00003, f"key:{admin_key}"),
    ]  # fmt: skip


async def test_disabling_stops_the_users_keys_at_once_and_enabling_restores_them(
    gateway_client: httpx.AsyncClient, setup: Admin
) -> None:
    assert (await patch(gateway_client, setup, disabled=True)).json()["data"]["disabled"] is True
    refused = await gateway_client.get("/api/v1/key", headers=setup.member.auth)
    assert refused.status_code == 401 and error_of(refused)["message"] == "User disabled"
    assert (await patch(gateway_client, setup, disabled=False)).json()["data"]["disabled"] is False
    assert (await gateway_client.get("/api/v1/key", headers=setup.member.auth)).status_code == 200


async def test_roles_change_but_an_admin_never_locks_themselves_out(
    client: httpx.AsyncClient, setup: Admin
) -> None:
    assert (await patch(client, setup, role="admin")).json()["data"]["role"] == "admin"
    assert (await patch(client, setup, role="member")).json()["data"]["role"] == "member"
    own = f"/api/v1/admin/users/{setup.admin.user.id}"
    own_changes: list[tuple[dict[str, Any], str]] = [
        ({"disabled": True}, "disabled"), ({"role": "member"}, "role"),
    ]  # fmt: skip
    for own_change, field in own_changes:
        refused = await client.patch(own, headers=setup.auth, json=own_change)
        assert refused.status_code == 400
        assert error_of(refused)["metadata"]["field"] == field
    mistakes: list[tuple[dict[str, Any], str]] = [
        ({"limit_reset": "daily"}, "limit_reset"), ({"limit": -1}, "limit"),
        ({"role": "owner"}, "role"), ({"disabled": "yes"}, "disabled"),
    ]  # fmt: skip
    for body, field in mistakes:
        bad = await patch(client, setup, **body)
        assert bad.status_code == 400 and error_of(bad)["metadata"]["field"] == field, body


async def test_every_key_and_the_spend_per_day(
    gateway_client: httpx.AsyncClient, setup: Admin
) -> None:
    for _ in range(2):
        response = await gateway_client.post(
            "/api/v1/chat/completions", headers=setup.member.auth, json=chat(max_tokens=10)
        )
        assert response.status_code == 200
    keys = await gateway_client.get("/api/v1/admin/keys", headers=setup.auth)
    component_validator("Admin_listKeys_Response_200").validate(keys.json())
    owners = {(k["user_id"], k["name"]) for k in keys.json()["data"]}
    assert owners == {(setup.member.user.id, "personal"), (setup.admin.user.id, "personal"),
                      (setup.admin.user.id, "admin")}  # fmt: skip

    spend = await gateway_client.get("/api/v1/admin/spend", headers=setup.auth, params={"days": 7})
    component_validator("Admin_getSpend_Response_200").validate(spend.json())
    assert [(d["spend"], d["requests"]) for d in spend.json()["data"]] == [(0.000048, 2)]
    for params in ({"days": "0"}, {"days": "367"}, {"days": "x"}):
        bad = await gateway_client.get("/api/v1/admin/spend", headers=setup.auth, params=params)
        assert bad.status_code == 400 and error_of(bad)["metadata"]["field"] == "days"
    bad_offset = await gateway_client.get(
        "/api/v1/admin/keys", headers=setup.auth, params={"offset": "-1"}
    )
    assert bad_offset.status_code == 400
