"""The admin pages in-process on SQLite and PostgreSQL: only signed-in admins see them (a
member gets 403, a visitor the log-in page), every form needs the session's CSRF token,
and each action changes the user as the admin API would, recorded in the audit trail."""

from __future__ import annotations

import httpx
import pytest

from modelgates.container import Services
from modelgates.web.security import PAGE_HEADERS
from tests.conftest import Account, make_account
from tests.support.clock import FakeClock
from tests.support.pages import csrf_of, log_in

PAGES = ["/admin", "/admin/users/{user_id}", "/admin/keys", "/admin/audit"]
FORMS = [
    ("/admin/users/{user_id}/budget", {"limit": "5", "reset": "daily"}),
    ("/admin/users/{user_id}/status", {"action": "disable"}),
    ("/admin/users/{user_id}/role", {"role": "admin"}),
]


@pytest.fixture
async def boss(services: Services, account: Account, clock: FakeClock) -> Account:
    clock.advance(1)
    boss = await make_account(services, "boss@example.com")
    await services.store.update_user(boss.user.id, services.clock(), is_admin=True)
    return boss


async def signed_in(http: httpx.AsyncClient, who: Account) -> str:
    """Sign ``who`` in; the CSRF token of their session."""
    assert (await log_in(http, who.user.email, who.password)).status_code == 303
    return csrf_of((await http.get("/keys")).text)


async def test_visitors_are_sent_to_log_in_and_members_get_403(
    client: httpx.AsyncClient, account: Account, boss: Account
) -> None:
    for path in PAGES:
        visitor = await client.get(path.format(user_id=account.user.id))
        assert visitor.status_code == 303 and visitor.headers["location"].startswith("/login")
    csrf = await signed_in(client, account)
    assert 'href="/admin"' not in (await client.get("/keys")).text
    for path in PAGES:
        refused = await client.get(path.format(user_id=boss.user.id))
        assert refused.status_code == 403, path
        assert "Admins only" in refused.text
    for path, form in FORMS:
        refused = await client.post(path.format(user_id=boss.user.id), data={**form, "csrf": csrf})
        assert refused.status_code == 403, path


async def test_admins_see_users_keys_spend_and_the_audit_trail(
    client: httpx.AsyncClient, account: Account, boss: Account
) -> None:
    await signed_in(client, boss)
    assert 'href="/admin"' in (await client.get("/keys")).text
    listing = await client.get("/admin")
    assert listing.status_code == 200
    for name, value in PAGE_HEADERS.items():
        assert listing.headers[name] == value
    assert "ada@example.com" in listing.text and "boss@example.com" in listing.text
    assert "Spend per day" in listing.text and "style=" not in listing.text
    searched = await client.get("/admin", params={"search": "ada"})
    assert f"/admin/users/{account.user.id}" in searched.text
    assert f"/admin/users/{boss.user.id}" not in searched.text
    assert "No users match" in (await client.get("/admin", params={"search": "zz"})).text

    user = await client.get(f"/admin/users/{account.user.id}")
    assert user.status_code == 200 and "personal" in user.text and "Disable user" in user.text
    every = await client.get("/admin/keys")
    assert every.text.count("personal") == 2
    assert (await client.get("/admin/users/user_nobody")).status_code == 404
    assert (await client.get("/admin/audit")).status_code == 200


async def test_forms_change_the_user_with_the_sessions_csrf_token_only(
    client: httpx.AsyncClient, services: Services, account: Account, boss: Account
) -> None:
    csrf = await signed_in(client, boss)
    target = f"/admin/users/{account.user.id}"
    for path, form in FORMS:
        for token in (None, "forged-token"):
            data = form if token is None else {**form, "csrf": token}
            refused = await client.post(path.format(user_id=account.user.id), data=data)
            assert refused.status_code == 403, (path, token)
            assert "This form has expired" in refused.text
    unchanged = await services.store.get_user(account.user.id)
    assert unchanged is not None
    assert (unchanged.limit, unchanged.disabled, unchanged.is_admin) == (None, False, False)

    budget = await client.post(f"{target}/budget", data={"limit": "12.5", "reset": "weekly",
                                                         "csrf": csrf})  # fmt: skip
    assert budget.status_code == 303 and budget.headers["location"] == target
    disabled = await client.post(f"{target}/status", data={"action": "disable", "csrf": csrf})
    assert disabled.status_code == 303
    promoted = await client.post(f"{target}/role", data={"role": "admin", "csrf": csrf})
    assert promoted.status_code == 303
    changed = await services.store.get_user(account.user.id)
    assert changed is not None
    assert (changed.limit, changed.limit_reset, changed.disabled, changed.is_admin) == (
        12_500_000_000, "weekly", True, True,
    )  # fmt: skip
    page = (await client.get(target)).text
    assert "$12.50, weekly" in page and "Enable user" in page and "Make member" in page
    assert 'value="12.5"' in page
    events = [e.event for e in await services.store.list_events(user_id=account.user.id)]
    assert events[:3] == ["user.role_changed", "user.disabled", "user.budget_changed"]

    cleared = await client.post(f"{target}/budget", data={"limit": "", "reset": "", "csrf": csrf})
    assert cleared.status_code == 303
    after = await services.store.get_user(account.user.id)
    assert after is not None and after.limit is None


async def test_bad_values_and_self_lockout_answer_400_pages(
    client: httpx.AsyncClient, services: Services, account: Account, boss: Account
) -> None:
    csrf = await signed_in(client, boss)
    target = f"/admin/users/{account.user.id}"
    mistakes = [({"limit": "lots"}, "Credit limit"), ({"limit": "-1"}, "must be a finite number"),
                ({"limit": "", "reset": "daily"}, "requires a limit")]  # fmt: skip
    for form, text in mistakes:
        bad = await client.post(f"{target}/budget", data={**form, "csrf": csrf})
        assert bad.status_code == 400 and text in bad.text, form
    unknown = await client.post(f"{target}/status", data={"action": "x", "csrf": csrf})
    assert unknown.status_code == 400
    own = f"/admin/users/{boss.user.id}"
    assert "you cannot disable or demote yourself" in (await client.get(own)).text
    refused = await client.post(f"{own}/status", data={"action": "disable", "csrf": csrf})
    assert refused.status_code == 400 and "cannot disable or demote themselves" in refused.text
    me = await services.store.get_user(boss.user.id)
    assert me is not None and me.is_admin and not me.disabled
    assert (await services.store.get_user(account.user.id)).limit is None  # type: ignore[union-attr]
