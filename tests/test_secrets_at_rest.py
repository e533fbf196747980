"""A dump of the database after a full flow holds no usable secret (RFC 6749 §10.10)."""

from __future__ import annotations

import sqlite3

import asyncpg
import httpx

from modelgates.container import Services
from modelgates.store import Store
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


PLAIN_VERIFIER = "plain-verifier-is-the-challenge-" + "x" * 20
PLAIN_PENDING = "plain-verifier-of-a-code-never-exchanged-" + "y" * 10


async def code_for(
    client: httpx.AsyncClient, auth: dict[str, str], challenge: str, method: str
) -> str:
    body = {"callback_url": "https://myapp.com/cb", "code_challenge": challenge,
            "code_challenge_method": method}  # fmt: skip
    response = await client.post("/api/v1/auth/keys/code", json=body, headers=auth)
    assert response.status_code == 200, response.text
    code: str = response.json()["data"]["id"]
    return code


async def exchange(client: httpx.AsyncClient, code: str, verifier: str) -> httpx.Response:
    return await client.post("/api/v1/auth/keys", json={"code": code, "code_verifier": verifier})


async def test_no_key_code_verifier_or_password_in_a_dump(
    client: httpx.AsyncClient, services: Services, database_url: str
) -> None:
    account = await make_account(services)
    code = await code_for(client, account.auth, CHALLENGE, "S256")
    key = (await exchange(client, code, VERIFIER)).json()["key"]
    # With plain PKCE the challenge is the verifier: used or pending, it is not kept.
    plain_code = await code_for(client, account.auth, PLAIN_VERIFIER, "plain")
    plain_key = (await exchange(client, plain_code, PLAIN_VERIFIER)).json()["key"]
    pending = await code_for(client, account.auth, PLAIN_PENDING, "plain")
    conflict = await client.post(
        "/api/v1/auth/keys/code",
        json={"callback_url": "https://myapp.com/cb", "code_challenge": PLAIN_PENDING},
        headers=account.auth,
    )
    assert conflict.status_code == 409  # the live-challenge check works on the digest

    text = await dump(database_url)
    assert "$argon2id$" in text  # the password is there, as an argon2id hash only
    assert account.user.email in text  # sanity: the dump really holds the data
    secrets = (account.key, key, code, VERIFIER, account.password, plain_code, plain_key,
               PLAIN_VERIFIER, pending, PLAIN_PENDING)  # fmt: skip
    for secret in secrets:
        assert secret not in text
        # nor any long slice of it (no truncated or prefixed copies)
        assert secret[-20:] not in text
    assert (await exchange(client, pending, PLAIN_PENDING)).status_code == 200


async def test_the_migration_digests_plain_challenges_of_live_codes(
    client: httpx.AsyncClient, services: Services, store: Store, database_url: str
) -> None:
    """A plain challenge stored verbatim before migration 0007 is rewritten to its
    S256 form, and its code still exchanges with the verifier."""
    account = await make_account(services)
    code = await code_for(client, account.auth, PLAIN_VERIFIER, "plain")
    await raw_sql(
        database_url,
        "UPDATE auth_codes SET code_challenge = {p1} WHERE code_challenge_method = 'plain'",
        PLAIN_VERIFIER,
    )
    await raw_sql(database_url, f"DELETE FROM schema_migrations WHERE name = '{MIGRATION}'")
    assert PLAIN_VERIFIER in await dump(database_url)  # as an older server left it
    assert await store.migrate() == [MIGRATION]
    assert PLAIN_VERIFIER not in await dump(database_url)
    assert (await exchange(client, code, PLAIN_VERIFIER)).status_code == 200


MIGRATION = "0007_plain_challenge_digest"


async def raw_sql(database_url: str, sql: str, *args: str) -> None:
    if database_url.startswith("sqlite:///"):
        conn = sqlite3.connect(database_url.removeprefix("sqlite:///"))
        try:
            conn.execute(sql.replace("{p1}", "?"), args)
            conn.commit()
        finally:
            conn.close()
        return
    pg = await asyncpg.connect(database_url)
    try:
        await pg.execute(sql.replace("{p1}", "$1"), *args)
    finally:
        await pg.close()
