"""Per-key model allowlists through the API, on SQLite and PostgreSQL: set on POST and
PATCH /keys, shown by /key and /keys, enforced on every metered route (and on every
model of a fallback list) with a 403 that charges nothing, and /models/user."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from modelgates.container import Services
from modelgates.store import Store
from modelgates.tokens import sha256_hex
from tests.conftest import Account
from tests.support.upstream import Upstream

ECHO = "test/echo"
OTHER = "test/cached"
MESSAGES = [{"role": "user", "content": "one two three"}]
ROUTES: dict[str, dict[str, Any]] = {
    "/chat/completions": {"messages": MESSAGES, "max_tokens": 2},
    "/completions": {"prompt": "one two", "max_tokens": 2},
    "/embeddings": {"input": "one two"},
}
"""Every metered route of the OpenAI-compatible family, with a body for it."""


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
async def admin(services: Services, account: Account) -> dict[str, str]:
    key = await services.keys.create(account.user, name="admin", is_management=True)
    return bearer(key.secret)


async def new_key(
    client: httpx.AsyncClient, admin: dict[str, str], allowed: object
) -> tuple[str, dict[str, Any]]:
    response = await client.post(
        "/api/v1/keys", headers=admin, json={"name": "contractor", "allowed_models": allowed}
    )
    assert response.status_code == 201, response.text
    return response.json()["key"], response.json()["data"]


async def patch(
    client: httpx.AsyncClient, admin: dict[str, str], key_hash: str, body: dict[str, Any]
) -> httpx.Response:
    return await client.patch(f"/api/v1/keys/{key_hash}", headers=admin, json=body)


async def spent(services: Services, key: str) -> tuple[int, int]:
    """(usage, generation records) of the key."""
    record = await services.store.get_key(sha256_hex(key))
    assert record is not None
    audit = await services.store.usage_audit(record.hash, services.clock())
    assert audit.charged == record.usage.total
    return record.usage.total, audit.charges


def refused(response: httpx.Response, model: str, field: str = "model") -> None:
    assert response.status_code == 403, response.text
    error = response.json()["error"]
    assert error["message"] == f"Model {model} is not allowed for this key"
    assert error["metadata"]["field"] == field
    assert error["metadata"]["model"] == model


@pytest.mark.parametrize("path", list(ROUTES))
async def test_every_metered_route_refuses_a_model_outside_the_list_and_charges_nothing(
    gateway_client: httpx.AsyncClient,
    services: Services,
    admin: dict[str, str],
    fake_upstream: Upstream,
    path: str,
) -> None:
    key, data = await new_key(gateway_client, admin, [ECHO])
    assert data["allowed_models"] == [ECHO]
    sent = len(fake_upstream.requests)
    outside = await gateway_client.post(
        f"/api/v1{path}", headers=bearer(key), json={"model": OTHER, **ROUTES[path]}
    )
    refused(outside, OTHER)
    assert len(fake_upstream.requests) == sent
    assert await spent(services, key) == (0, 0)
    inside = await gateway_client.post(
        f"/api/v1{path}", headers=bearer(key), json={"model": ECHO, **ROUTES[path]}
    )
    assert inside.status_code == 200, inside.text
    usage, records = await spent(services, key)
    assert usage > 0 and records == 1


async def test_a_streamed_request_is_refused_before_any_event(
    gateway_client: httpx.AsyncClient, services: Services, admin: dict[str, str]
) -> None:
    key, _ = await new_key(gateway_client, admin, [ECHO])
    body = {"model": OTHER, "stream": True, **ROUTES["/chat/completions"]}
    refused(await gateway_client.post("/api/v1/chat/completions", headers=bearer(key), json=body),
            OTHER)  # fmt: skip
    assert await spent(services, key) == (0, 0)


async def test_every_model_of_a_fallback_list_must_be_allowed(
    gateway_client: httpx.AsyncClient,
    services: Services,
    admin: dict[str, str],
    fake_upstream: Upstream,
) -> None:
    key, _ = await new_key(gateway_client, admin, ["test/echo", "other/*"])
    chat = ROUTES["/chat/completions"]
    for models in (["test/echo", OTHER], [OTHER], ["test/echo", "other/x", "nope/y"]):
        outside = next(model for model in models if not model.startswith(("test/echo", "other/")))
        response = await gateway_client.post(
            "/api/v1/chat/completions",
            headers=bearer(key),
            json={"model": ECHO, "models": models, **chat},
        )
        refused(response, outside, field="models")
    for bad in ("test/echo", [1], [""], {"model": ECHO}):
        response = await gateway_client.post(
            "/api/v1/chat/completions", headers=bearer(key),
            json={"model": ECHO, "models": bad, **chat},
        )  # fmt: skip
        assert response.status_code == 400, response.text
        assert response.json()["error"]["metadata"]["field"] == "models"
    assert await spent(services, key) == (0, 0)
    allowed = await gateway_client.post(
        "/api/v1/chat/completions",
        headers=bearer(key),
        json={"model": ECHO, "models": [ECHO, "other/x"], **chat},
    )
    assert allowed.status_code == 200, allowed.text
    assert "models" not in fake_upstream.requests[-1].body  # the gateway dispatches one model


async def test_author_wildcards_empty_lists_and_star(
    gateway_client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    chat = ROUTES["/chat/completions"]
    by_author, data = await new_key(gateway_client, admin, ["test/*"])
    assert data["allowed_models"] == ["test/*"]
    for model in (ECHO, OTHER):
        response = await gateway_client.post(
            "/api/v1/chat/completions", headers=bearer(by_author), json={"model": model, **chat}
        )
        assert response.status_code == 200, response.text
    refused(
        await gateway_client.post(
            "/api/v1/chat/completions", headers=bearer(by_author),
            json={"model": "down/echo", **chat},
        ),
        "down/echo",
    )  # fmt: skip
    nothing, data = await new_key(gateway_client, admin, [])
    assert data["allowed_models"] == []
    refused(
        await gateway_client.post(
            "/api/v1/chat/completions", headers=bearer(nothing), json={"model": ECHO, **chat}
        ),
        ECHO,
    )
    _, everything = await new_key(gateway_client, admin, ["*"])
    assert everything["allowed_models"] is None
    _, absent = await new_key(gateway_client, admin, None)
    assert absent["allowed_models"] is None


@pytest.mark.parametrize(
    "bad", ["test/echo", [1], [None], [""], ["stub/e*"], ["*/echo"], ["a b"], {"x": 1}]
)
async def test_malformed_lists_are_400_on_create(
    gateway_client: httpx.AsyncClient, admin: dict[str, str], bad: object
) -> None:
    response = await gateway_client.post(
        "/api/v1/keys", headers=admin, json={"name": "k", "allowed_models": bad}
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["metadata"]["field"].startswith("allowed_models")


async def test_patch_absent_leaves_null_clears_and_a_refused_patch_changes_nothing(
    gateway_client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    key, data = await new_key(gateway_client, admin, [ECHO])
    key_hash = data["hash"]
    renamed = await patch(gateway_client, admin, key_hash, {"name": "renamed"})
    assert renamed.json()["data"]["allowed_models"] == [ECHO]
    for bad in (["stub/e*"], [2], "x"):
        response = await patch(
            gateway_client, admin, key_hash, {"name": "changed", "allowed_models": bad}
        )
        assert response.status_code == 400, response.text
    unchanged = await gateway_client.get(f"/api/v1/keys/{key_hash}", headers=admin)
    assert unchanged.json()["data"]["name"] == "renamed"
    assert unchanged.json()["data"]["allowed_models"] == [ECHO]
    widened = await patch(gateway_client, admin, key_hash, {"allowed_models": [ECHO, OTHER]})
    assert widened.json()["data"]["allowed_models"] == [ECHO, OTHER]
    listed = await gateway_client.get("/api/v1/keys", headers=admin)
    mine = next(k for k in listed.json()["data"] if k["hash"] == key_hash)
    assert mine["allowed_models"] == [ECHO, OTHER]
    current = await gateway_client.get("/api/v1/key", headers=bearer(key))
    assert current.json()["data"]["allowed_models"] == [ECHO, OTHER]
    cleared = await patch(gateway_client, admin, key_hash, {"allowed_models": None})
    assert cleared.json()["data"]["allowed_models"] is None
    response = await gateway_client.post(
        "/api/v1/chat/completions",
        headers=bearer(key),
        json={"model": "test/priced", **ROUTES["/chat/completions"]},
    )
    assert response.status_code == 200, response.text


async def test_a_patch_takes_effect_on_the_next_request(
    gateway_client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    key, data = await new_key(gateway_client, admin, None)
    chat = {"model": ECHO, **ROUTES["/chat/completions"]}
    ok = await gateway_client.post("/api/v1/chat/completions", headers=bearer(key), json=chat)
    assert ok.status_code == 200
    await patch(gateway_client, admin, data["hash"], {"allowed_models": [OTHER]})
    refused(
        await gateway_client.post("/api/v1/chat/completions", headers=bearer(key), json=chat),
        ECHO,
    )


async def test_models_user_lists_what_the_key_may_use(
    gateway_client: httpx.AsyncClient, admin: dict[str, str], account: Account
) -> None:
    key, _ = await new_key(gateway_client, admin, ["test/*", "nope/not-configured"])
    listed = await gateway_client.get("/api/v1/models/user", headers=bearer(key))
    assert listed.status_code == 200, listed.text
    ids = [model["id"] for model in listed.json()["data"]]
    assert ids and all(model_id.startswith("test/") for model_id in ids)
    assert listed.json()["total_count"] == len(ids)
    everything = await gateway_client.get("/api/v1/models/user", headers=account.auth)
    every_id = [model["id"] for model in everything.json()["data"]]
    assert "down/echo" in every_id and set(ids) < set(every_id)
    unauthenticated = await gateway_client.get("/api/v1/models/user")
    assert unauthenticated.status_code == 401
    management = await gateway_client.get("/api/v1/models/user", headers=admin)
    assert management.status_code == 403


async def test_stored_lists_survive_the_store(store: Store, services: Services) -> None:
    user = await services.users.create("store@example.com", "a long enough password")
    new = await services.keys.create(user, name="k", allowed_models=("a/*", "b/c"))
    fetched = await store.get_key(new.record.hash)
    assert fetched is not None and fetched.allowed_models == ("a/*", "b/c")
    keys = await store.list_keys(user.id, include_disabled=True, offset=0, limit=10)
    (listed,) = [key for key in keys if key.hash == new.record.hash]
    assert listed.allowed_models == ("a/*", "b/c")
