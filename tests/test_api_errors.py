"""The error envelope on every route, unknown routes and methods included."""

from __future__ import annotations

import httpx
import pytest

UNKNOWN = ["/nope", "/api/v1", "/api/v1/nope", "/api/v2/key", "/api/v1/key/extra", "/%00"]


@pytest.mark.parametrize("path", UNKNOWN)
@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
async def test_unknown_routes_are_404_in_the_envelope(
    client: httpx.AsyncClient, path: str, method: str
) -> None:
    response = await client.request(method, path, headers={"Authorization": "Bearer junk"})
    assert response.status_code == 404
    body = response.json()
    assert body["error"]["code"] == 404 and body["error"]["message"] == "Not Found"
    assert body["user_id"] is None
    assert body["error"]["metadata"]["request_id"] == response.headers["x-request-id"]


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/api/v1/auth/keys/code", "POST"),
        ("DELETE", "/api/v1/auth/keys", "POST"),
        ("POST", "/api/v1/key", "GET, HEAD"),
        ("PUT", "/api/v1/auth/key", "GET, HEAD"),
        ("POST", "/api/v1/openapi.json", "GET, HEAD"),
        ("POST", "/.well-known/oauth-authorization-server", "GET, HEAD"),
    ],
)
async def test_wrong_methods_are_405_whatever_the_credentials(
    client: httpx.AsyncClient, method: str, path: str, allow: str
) -> None:
    response = await client.request(method, path, headers={"Authorization": "Bearer junk"})
    assert response.status_code == 405
    assert response.json()["error"] == {
        "code": 405,
        "message": "Method Not Allowed",
        "metadata": {"request_id": response.headers["x-request-id"]},
    }
    assert set(response.headers["allow"].split(", ")) == set(allow.split(", "))


async def test_a_sane_client_request_id_is_echoed(client: httpx.AsyncClient) -> None:
    response = await client.get("/nope", headers={"X-Request-Id": "trace-123"})
    assert response.headers["x-request-id"] == "trace-123"
    assert response.json()["error"]["metadata"]["request_id"] == "trace-123"
    hostile = await client.get("/nope", headers={"X-Request-Id": "a b<script>"})
    assert hostile.headers["x-request-id"] != "a b<script>"


async def test_health_ready_and_openapi(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health")).json() == {"status": "ok"}
    assert (await client.get("/ready")).json() == {"status": "ready"}
    document = (await client.get("/api/v1/openapi.json")).json()
    assert document["openapi"].startswith("3.1")
    operation = document["paths"]["/auth/keys/code"]["post"]
    assert operation["operationId"] == "create-auth-keys-code"


async def test_pages_get_no_cors_headers(client: httpx.AsyncClient) -> None:
    response = await client.get("/health", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in response.headers


def test_every_client_visible_error_lives_in_one_module_and_draws_its_tree() -> None:
    """errors.py holds every error a client can see; its docstring names each class."""
    import inspect

    from modelgates import errors

    visible = [
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, errors.ModelGatesError) and cls.__module__ == errors.__name__
    ]
    assert {c.__name__ for c in visible} >= {
        "TooManyRequests", "PasswordChecksBusy", "ReplayedCode", "ChallengeInUse",
        "DuplicateEmail", "InvalidCode", "CodeExpired", "InvalidChallengeMethod",
    }  # fmt: skip
    doc = errors.__doc__ or ""
    for cls in visible:
        assert cls.__name__ in doc, cls
        assert cls.__doc__, cls
    for client_error in (errors.ChallengeInUse, errors.DuplicateEmail, errors.DuplicateIdentity):
        assert not issubclass(client_error, errors.StoreError)
