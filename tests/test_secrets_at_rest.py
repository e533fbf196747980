"""A dump of the database after a full flow holds no usable secret (RFC 6749 §10.10)."""

from __future__ import annotations

import sqlite3

import asyncpg
import httpx

from modelgates.container import Services
from tests.conftest import make_account

VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


async def dump(database_url: str) -> str:
    """Every row of every table, as text."""
    if database_url.startswith("sqlite:///"):
        conn = sqlite3.connect(database_url.removeprefix("sqlite:///"))
        try:
            return "\n".join(conn.iterdump())
        finally:
            conn.close()
    pg = await asyncpg.connect(database_url)
    try:
        tables = await pg.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        parts: list[str] = []
        for table in tables:
            rows = await pg.fetch(f'SELECT t::text AS row FROM "{table["tablename"]}" t')
            parts.extend(r["row"] for r in rows)
        return "\n".join(parts)
    finally:
        await pg.close()


async def test_no_key_code_verifier_or_password_in_a_dump(
    client: httpx.AsyncClient, services: Services, database_url: str
) -> None:
    account = await make_account(services)
    code = (
        await client.post(
            "/api/v1/auth/keys/code",
            json={
                "callback_url": "https://myapp.com/cb",
                "code_challenge": CHALLENGE,
                "code_challenge_method": "S256",
            },
            headers=account.auth,
        )
    ).json()["data"]["id"]
    key = (
        await client.post("/api/v1/auth/keys", json={"code": code, "code_verifier": VERIFIER})
    ).json()["key"]

    text = await dump(database_url)
    assert "$argon2id$" in text  # the password is there, as an argon2id hash only
    assert account.user.email in text  # sanity: the dump really holds the data
    for secret in (account.key, key, code, VERIFIER, account.password):
        assert secret not in text
        # nor any long slice of it (no truncated or prefixed copies)
        assert secret[-20:] not in text
