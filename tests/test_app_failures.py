"""Failures inside the server answer in the envelope: 503 for the database, 500 otherwise."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from modelgates.app import build_app
from modelgates.settings import Settings


class FailingStore:
    """A store whose every read raises ``error``: stands in for a database gone away."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def __getattr__(self, name: str) -> Any:
        async def fail(*args: object, **kwargs: object) -> None:
            raise self.error

        return fail


async def client_for(store: object) -> AsyncIterator[httpx.AsyncClient]:
    app = build_app(Settings(), store=store)  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as http,
    ):
        yield http


KEY = "Bearer sk-mg-v1-" + "1" * 64


@pytest.mark.parametrize(
    "error",
    [sqlite3.OperationalError("database is locked"), ConnectionRefusedError("no route")],
)
async def test_database_failure_is_503_without_details(error: Exception) -> None:
    async for client in client_for(FailingStore(error)):
        response = await client.get("/api/v1/key", headers={"Authorization": KEY})
        assert response.status_code == 503
        body = response.json()
        assert body["error"]["message"] == "Service Unavailable"
        assert "locked" not in response.text and "route" not in response.text
        assert response.headers["retry-after"] == "1"
        ready = await client.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["error"]["message"] == "Database unavailable"


async def test_unexpected_error_is_a_bare_500_with_request_id() -> None:
    async for client in client_for(FailingStore(RuntimeError("secret internals"))):
        response = await client.get("/api/v1/key", headers={"Authorization": KEY})
        assert response.status_code == 500
        body = response.json()
        assert body["error"]["message"] == "Internal Server Error"
        assert body["error"]["metadata"] == {"request_id": response.headers["x-request-id"]}
        assert "secret internals" not in response.text
        assert "Traceback" not in response.text


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.exceptions.CharacterNotInRepertoireError("database is locked"),
        asyncpg.exceptions.NumericValueOutOfRangeError("connection refused"),
        sqlite3.DataError("string or blob too big"),
    ],
    ids=["pg-nul", "pg-range", "sqlite-data"],
)
async def test_a_value_the_database_refuses_is_a_400_by_its_type(
    error: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    """Client-caused database errors are told apart by type; the messages here would
    read as outages if anything looked at them."""
    async for client in client_for(FailingStore(error)):
        response = await client.get("/api/v1/key", headers={"Authorization": KEY})
        assert response.status_code == 400
        body = response.json()
        assert body["error"]["message"] == "Invalid request: a value in it cannot be stored"
        assert "retry-after" not in response.headers
        assert "locked" not in response.text and "refused" not in response.text
        client.cookies.set("mg_session", "x" * 40)
        page = await client.get("/keys")
        assert page.status_code == 400
    assert "database error" not in caplog.text
