"""Request bodies (modelgates.api.body): the nesting cap on every JSON route."""

from __future__ import annotations

import logging

import httpx
import pytest
from starlette.routing import Route

from modelgates.api.body import (
    MAX_JSON_DEPTH,
    decode_json_object,
    json_depth_exceeds,
)
from modelgates.app import routes
from modelgates.container import Services
from modelgates.errors import BadRequest
from tests.conftest import make_account

DEEP = b"[" * 1000 + b"]" * 1000
DEEP_IN_A_FIELD = b'{"model": "test/echo", "code": ' + b'{"a":' * 1000 + b"1" + b"}" * 1000 + b"}"


def json_routes() -> list[tuple[str, str]]:
    """(method, path) of every API route that reads a JSON body, from the route table."""
    found = []
    for route in routes():
        if isinstance(route, Route) and route.include_in_schema:
            for method in sorted((route.methods or set()) & {"POST", "PATCH", "PUT"}):
                found.append((method, route.path.replace("{hash}", "0" * 64)))
    return found


def test_depth_counts_brackets_outside_strings_only() -> None:
    at_limit = b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH
    assert not json_depth_exceeds(at_limit)
    assert json_depth_exceeds(b"[" + at_limit + b"]")
    assert not json_depth_exceeds(b'{"a": "' + b"[{" * 5000 + b'"}')
    assert not json_depth_exceeds(b'["\\"' + b"[" * 500 + b'"]')  # an escaped quote
    assert not json_depth_exceeds(b"[" + b"[]," * 5000 + b"[]]")  # wide, not deep
    assert json_depth_exceeds(b"[" * 1000)  # unbalanced counts as deep: refused either way


@pytest.mark.parametrize(
    "raw",
    [DEEP, b'{"a": 1e999}', b'{"a": NaN}', b'{"a": "\xff"}', b'{"a": "\\ud800"}', b"{"],
)
def test_decode_json_object_refuses_what_is_not_json(raw: bytes) -> None:
    with pytest.raises(BadRequest) as refused:
        decode_json_object(raw)
    assert refused.value.message == "Malformed JSON body"


def test_decode_json_object_wants_an_object() -> None:
    assert decode_json_object(b'{"model": "m", "n": [1, {"x": null}]}') == {
        "model": "m",
        "n": [1, {"x": None}],
    }
    with pytest.raises(BadRequest, match="must be a JSON object"):
        decode_json_object(b"[1]")


@pytest.mark.parametrize("body", [DEEP, DEEP_IN_A_FIELD], ids=["top", "in-a-field"])
@pytest.mark.parametrize(("method", "path"), json_routes())
async def test_deep_nesting_is_a_400_on_every_json_route(
    gateway_client: httpx.AsyncClient,
    services: Services,
    caplog: pytest.LogCaptureFixture,
    method: str,
    path: str,
    body: bytes,
) -> None:
    account = await make_account(services)
    # An admin, so that the admin API reads the body too.
    await services.store.update_user(account.user.id, services.clock(), is_admin=True)
    management = await services.keys.create(account.user, name="m", is_management=True)
    managed = path.startswith(("/api/v1/keys", "/api/v1/admin"))
    key = management.secret if managed else account.key
    with caplog.at_level(logging.DEBUG):
        response = await gateway_client.request(
            method,
            path,
            content=body,
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["message"] == "Malformed JSON body"
    assert "Traceback" not in caplog.text
    assert not [r for r in caplog.records if r.exc_info]
