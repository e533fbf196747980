"""Key rotation on SQLite and PostgreSQL: a new secret that takes over the old key's
settings, usage, records, sub-keys and in-flight requests in one step; the old secret
stops at once, or works as the new key until its grace period ends (on a controlled
clock); the audit trail links the two; and the key page's button, CSRF-protected."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx

from modelgates import tokens
from modelgates.container import Services
from modelgates.money import NANOS_PER_USD
from modelgates.store import Store
from tests.conftest import Account
from tests.support.clock import FakeClock
from tests.support.pages import csrf_of, log_in
from tests.test_metering import bearer, chat, error_of, mint
from tests.test_store import add_user, make_key, make_record

COST = 24_000  # a chat request of MESSAGES with max_tokens=10
WORST = 32_000  # what admission reserves for it


async def management_key(services: Services, account: Account) -> dict[str, str]:
    return bearer(
        (await services.keys.create(account.user, name="admin", is_management=True)).secret
    )


async def rotate(
    http: httpx.AsyncClient, auth: dict[str, str], key_hash: str, **body: Any
) -> httpx.Response:
    return await http.post(f"/api/v1/keys/{key_hash}/rotate", headers=auth, json=body or None)


async def test_without_grace_the_old_secret_stops_at_once_and_the_new_one_takes_over(
    gateway_client: httpx.AsyncClient, services: Services, account: Account
) -> None:
    admin = await management_key(services, account)
    old = await services.keys.create(
        account.user, name="ci", limit_usd=(COST + WORST) / NANOS_PER_USD, limit_reset="monthly"
    )
    spent = await gateway_client.post(
        "/api/v1/chat/completions", headers=bearer(old.secret), json=chat(max_tokens=10)
    )
    assert spent.status_code == 200

    rotated = await rotate(gateway_client, admin, old.record.hash)

    assert rotated.status_code == 200, rotated.text
    body = rotated.json()
    new_secret, data = body["key"], body["data"]
    assert data["hash"] == tokens.sha256_hex(new_secret) != old.record.hash
    assert (data["name"], data["limit"], data["limit_reset"]) == (
        "ci",
        (COST + WORST) / NANOS_PER_USD,
        "monthly",
    )
    assert data["usage"] == COST / NANOS_PER_USD  # the usage history came along
    assert body["previous"]["hash"] == old.record.hash
    gone = await gateway_client.get("/api/v1/key", headers=bearer(old.secret))
    assert gone.status_code == 401 and error_of(gone)["message"] == "Key revoked"
    listed = (await gateway_client.get("/api/v1/keys", headers=admin)).json()["data"]
    assert data["hash"] in {k["hash"] for k in listed} and old.record.hash not in {
        k["hash"] for k in listed
    }

    # The limit goes on counting what the old secret spent: one more request fits, a second not.
    assert (await gateway_client.post("/api/v1/chat/completions", headers=bearer(new_secret),
                                      json=chat(max_tokens=10))).status_code == 200  # fmt: skip
    refused = await gateway_client.post(
        "/api/v1/chat/completions", headers=bearer(new_secret), json=chat(max_tokens=10)
    )
    assert refused.status_code == 403

    new_key = await services.store.get_key(data["hash"])
    old_key = await services.store.get_key(old.record.hash)
    assert new_key is not None and old_key is not None
    audit_new = await services.store.usage_audit(new_key.hash, services.clock())
    audit_old = await services.store.usage_audit(old_key.hash, services.clock())
    assert new_key.usage.total == audit_new.charged == 2 * COST and audit_new.charges == 2
    assert (old_key.usage.total, audit_old.charged) == (0, 0)
    assert (old_key.rotated_to, old_key.revoked_at) == (new_key.hash, old_key.grace_until)
    user = await services.store.get_user(account.user.id)
    assert user is not None and user.usage.total == 2 * COST

    events = {
        (e.event, e.key_hash, (e.detail or {}).get("previous"), (e.detail or {}).get("successor"))
        for e in await services.store.list_events(user_id=account.user.id)
    }
    assert ("key.rotated", new_key.hash, old_key.hash, None) in events
    assert ("key.rotated", old_key.hash, None, new_key.hash) in events


async def test_with_grace_the_old_secret_works_as_the_new_key_until_the_period_ends(
    gateway_client: httpx.AsyncClient, services: Services, account: Account, clock: FakeClock
) -> None:
    admin = await management_key(services, account)
    rotated = await rotate(
        gateway_client, admin, tokens.sha256_hex(account.key), grace_period_seconds=3600
    )
    assert rotated.status_code == 200, rotated.text
    new_hash = rotated.json()["data"]["hash"]
    works_until = clock.now + timedelta(hours=1)
    assert rotated.json()["previous"]["works_until"] == works_until.isoformat().replace(
        "+00:00", "Z"
    )

    clock.advance(3599)
    as_new = await gateway_client.get("/api/v1/key", headers=account.auth)
    assert as_new.status_code == 200
    charged = await gateway_client.post(
        "/api/v1/chat/completions", headers=account.auth, json=chat(max_tokens=10)
    )
    assert charged.status_code == 200
    record = await services.store.get_generation(charged.json()["id"])
    assert record is not None and record.key_hash == new_hash  # charged to the new key

    clock.advance(1)  # the grace period ends exactly now
    stopped = await gateway_client.get("/api/v1/key", headers=account.auth)
    assert stopped.status_code == 401 and error_of(stopped)["message"] == "Key revoked"
    assert (
        await gateway_client.get("/api/v1/key", headers=bearer(rotated.json()["key"]))
    ).status_code == 200


async def test_rotating_twice_leaves_every_old_secret_pointing_at_the_newest(
    client: httpx.AsyncClient, services: Services, account: Account
) -> None:
    admin = await management_key(services, account)
    first = await rotate(client, admin, tokens.sha256_hex(account.key), grace_period_seconds=600)
    second = await rotate(client, admin, first.json()["data"]["hash"], grace_period_seconds=0)
    newest = second.json()["data"]["hash"]
    seen = await services.keys.authenticate(f"Bearer {account.key}")  # within the first grace
    assert seen.hash == newest
    stopped = await client.get("/api/v1/key", headers=bearer(first.json()["key"]))
    assert stopped.status_code == 401


async def test_a_sub_key_keeps_drawing_on_its_rotated_parent(
    gateway_client: httpx.AsyncClient, services: Services, account: Account
) -> None:
    admin = await management_key(services, account)
    parent = await services.keys.create(
        account.user, name="parent", limit_usd=WORST / NANOS_PER_USD
    )
    _, child = await mint(gateway_client, parent.secret)
    assert child is not None
    rotated = await rotate(gateway_client, admin, parent.record.hash)
    new_parent = rotated.json()["data"]["hash"]
    stored_child = await services.store.get_key(tokens.sha256_hex(child))
    assert stored_child is not None and stored_child.parent_key_hash == new_parent

    assert (await gateway_client.post("/api/v1/chat/completions", headers=bearer(child),
                                      json=chat(max_tokens=10))).status_code == 200  # fmt: skip
    refused = await gateway_client.post(
        "/api/v1/chat/completions", headers=bearer(child), json=chat(max_tokens=10)
    )
    assert refused.status_code == 403
    assert error_of(refused)["metadata"]["budget"] == "parent_key"


async def test_a_request_in_flight_settles_on_the_successor(store: Store) -> None:
    from tests.test_store import WEDNESDAY, flat

    user = await add_user(store, WEDNESDAY)
    old = make_key(user, WEDNESDAY, limit=1_000)
    await store.create_key(old)
    assert (
        await store.reserve(
            old.hash, "in-flight", flat(300), WEDNESDAY, WEDNESDAY + timedelta(minutes=5)
        )
    ).admitted
    new_hash = tokens.sha256_hex("successor")

    successor = await store.rotate_key(old.hash, new_hash, WEDNESDAY, WEDNESDAY)
    assert successor is not None and successor.hash == new_hash and successor.limit == 1_000
    # The reservation moved along: it counts against the successor's limit.
    moved = await store.usage_audit(new_hash, WEDNESDAY)
    assert (moved.reserved, moved.reservations) == (300, 1)
    refused = await store.reserve(
        old.hash, "next", flat(701), WEDNESDAY, WEDNESDAY + timedelta(minutes=5)
    )
    assert refused.key is not None and refused.key.hash == new_hash and not refused.admitted

    await store.settle("in-flight", make_record(old, 250, WEDNESDAY, "in-flight"))

    after = await store.get_key(new_hash)
    record = await store.get_generation("in-flight")
    assert after is not None and after.usage.total == 250
    assert record is not None and record.key_hash == new_hash
    assert (await store.get_key(old.hash)).usage.total == 0  # type: ignore[union-attr]
    assert (
        await store.rotate_key(old.hash, tokens.sha256_hex("again"), WEDNESDAY, WEDNESDAY) is None
    )


async def test_rotation_mistakes(
    client: httpx.AsyncClient, services: Services, account: Account
) -> None:
    from tests.conftest import make_account

    admin = await management_key(services, account)
    other = await make_account(services, "other@example.com")
    cases = [
        (admin, tokens.sha256_hex(other.key), {}, 404),
        (admin, "0" * 64, {}, 404),
        (admin, "not-a-hash", {}, 404),
        (admin, tokens.sha256_hex(account.key), {"grace_period_seconds": -1}, 400),
        (admin, tokens.sha256_hex(account.key), {"grace_period_seconds": 2_592_001}, 400),
        (admin, tokens.sha256_hex(account.key), {"grace_period_seconds": "60"}, 400),
        (account.auth, tokens.sha256_hex(account.key), {}, 403),
    ]
    for auth, key_hash, body, status in cases:
        response = await client.post(f"/api/v1/keys/{key_hash}/rotate", headers=auth, json=body)
        assert response.status_code == status, (key_hash, body, response.text)
    negative = await client.post(
        f"/api/v1/keys/{tokens.sha256_hex(account.key)}/rotate",
        headers=admin, json={"grace_period_seconds": -1},
    )  # fmt: skip
    assert error_of(negative)["metadata"]["field"] == "grace_period_seconds"
    # No body at all is a rotation without grace.
    bare = await client.post(f"/api/v1/keys/{tokens.sha256_hex(account.key)}/rotate", headers=admin)
    assert bare.status_code == 200


async def test_the_key_page_rotates_with_its_csrf_token(
    client: httpx.AsyncClient, services: Services, account: Account
) -> None:
    assert (await log_in(client, account.user.email, account.password)).status_code == 303
    page = await client.get("/keys")
    assert "Rotate" in page.text
    target = f"/keys/{tokens.sha256_hex(account.key)}/rotate"
    forged = await client.post(target, data={"grace": "0"})
    assert forged.status_code == 403
    assert (await services.keys.authenticate(f"Bearer {account.key}")).hash == tokens.sha256_hex(
        account.key
    )

    done = await client.post(target, data={"grace": "3600", "csrf": csrf_of(page.text)})

    assert done.status_code == 200 and "works 1 more hour" in done.text
    new_secret = done.text.split('<code id="new-key">')[1].split("</code>")[0]
    assert tokens.looks_like_api_key(new_secret)
    assert (await services.keys.authenticate(f"Bearer {new_secret}")).name == "personal"
    assert (await services.keys.authenticate(f"Bearer {account.key}")).hash == tokens.sha256_hex(
        new_secret
    )
    bad = await client.post(target, data={"grace": "5", "csrf": csrf_of(page.text)})
    assert bad.status_code == 400
