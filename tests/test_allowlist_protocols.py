"""Per-key model allowlists on the Anthropic Messages and OpenAI Responses routes, on
SQLite and PostgreSQL: a model outside the key's list is refused with 403 in the route's
own error shape, before the upstream is asked and with nothing charged; a model inside
it is served and charged."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from modelgates.container import Services
from modelgates.tokens import sha256_hex
from tests.conftest import Account
from tests.support.upstream import Upstream

ALLOWED = "test/echo"
OUTSIDE = "test/cached"
BODIES: dict[str, dict[str, Any]] = {
    "/messages": {"max_tokens": 2, "messages": [{"role": "user", "content": "one two"}]},
    "/responses": {"input": "one two", "max_output_tokens": 2, "store": False},
}


@pytest.fixture
async def management_key(services: Services, account: Account) -> str:
    """A management key of the account, to create the restricted key through the API."""
    admin = await services.keys.create(account.user, name="admin", is_management=True)
    return admin.secret


async def _restricted_key(client: httpx.AsyncClient, management_key: str) -> str:
    """A new key that may use ``ALLOWED`` only."""
    response = await client.post(
        "/api/v1/keys",
        headers={"Authorization": f"Bearer {management_key}"},
        json={"name": "contractor", "allowed_models": [ALLOWED]},
    )
    assert response.status_code == 201, response.text
    key: str = response.json()["key"]
    return key


async def _charged(services: Services, key: str) -> tuple[int, int]:
    record = await services.store.get_key(sha256_hex(key))
    assert record is not None
    audit = await services.store.usage_audit(record.hash, services.clock())
    return record.usage.total, audit.charges


def _refusal_message(path: str, response: httpx.Response) -> str:
    body = response.json()
    if path.startswith("/messages"):
        assert body["type"] == "error"
        assert body["error"]["type"] == "permission_error"
        message: str = body["error"]["message"]
        return message
    message = body["error"]["message"]
    assert body["error"]["code"] == 403
    return message


@pytest.mark.parametrize("path", list(BODIES))
@pytest.mark.parametrize("stream", [False, True])
async def test_a_model_outside_the_list_is_refused_in_the_routes_shape_and_charges_nothing(
    gateway_client: httpx.AsyncClient,
    services: Services,
    management_key: str,
    fake_upstream: Upstream,
    path: str,
    stream: bool,
) -> None:
    key = await _restricted_key(gateway_client, management_key)
    headers = {"Authorization": f"Bearer {key}"}
    asked = len(fake_upstream.requests)
    outside = await gateway_client.post(
        f"/api/v1{path}", headers=headers, json={"model": OUTSIDE, "stream": stream, **BODIES[path]}
    )
    assert outside.status_code == 403, outside.text
    assert _refusal_message(path, outside) == f"Model {OUTSIDE} is not allowed for this key"
    assert len(fake_upstream.requests) == asked
    assert await _charged(services, key) == (0, 0)

    inside = await gateway_client.post(
        f"/api/v1{path}", headers=headers, json={"model": ALLOWED, "stream": stream, **BODIES[path]}
    )
    assert inside.status_code == 200, inside.text
    usage, records = await _charged(services, key)
    assert usage > 0 and records == 1


async def test_count_tokens_refuses_a_model_outside_the_list(
    gateway_client: httpx.AsyncClient, services: Services, management_key: str
) -> None:
    key = await _restricted_key(gateway_client, management_key)
    body = {"messages": [{"role": "user", "content": "one two"}]}
    outside = await gateway_client.post(
        "/api/v1/messages/count_tokens",
        headers={"x-api-key": key},
        json={"model": OUTSIDE, **body},
    )
    assert outside.status_code == 403, outside.text
    assert _refusal_message("/messages", outside) == f"Model {OUTSIDE} is not allowed for this key"
    inside = await gateway_client.post(
        "/api/v1/messages/count_tokens", headers={"x-api-key": key}, json={"model": ALLOWED, **body}
    )
    assert inside.status_code == 200, inside.text
    assert inside.json()["input_tokens"] > 0
    assert await _charged(services, key) == (0, 0)
