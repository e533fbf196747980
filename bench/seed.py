"""Fixtures made before a run, straight through ModelGates' own services and store:
a user, a pool of personal keys, and a pool of unused authorization codes.

Codes are bulk-inserted (one transaction, or one COPY) because minting tens of
thousands through the API would take longer than the run that spends them.
"""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import timedelta

import asyncpg

from modelgates import tokens
from modelgates.container import Services
from modelgates.models import AuthCode
from modelgates.settings import Settings
from modelgates.store import open_store, rows
from modelgates.store.base import iso, utc
from modelgates.store.sqlite import path_from_url

CALLBACK = "https://bench.example.com/cb"
ORIGIN = "https://bench.example.com"
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


@dataclass(frozen=True)
class Account:
    user_id: str
    keys: list[str]


async def account(database_url: str, key_count: int) -> Account:
    """Migrate the database, create a user and ``key_count`` personal keys."""
    store = await open_store(database_url, pool_size=2)
    try:
        await store.migrate()
        svc = Services.build(Settings(database_url=database_url), store)
        user = await svc.users.create("bench@example.com", "bench-password")
        keys = [(await svc.keys.create(user, name=f"bench-{i}")).secret for i in range(key_count)]
        return Account(user.id, keys)
    finally:
        await store.close()


async def limited_key(database_url: str, user_id: str, limit_usd: float) -> str:
    """A key of the seeded user with a monthly credit limit (as apps' keys carry)."""
    store = await open_store(database_url, pool_size=2)
    try:
        svc = Services.build(Settings(database_url=database_url), store)
        user = await store.get_user(user_id)
        assert user is not None
        made = await svc.keys.create(user, name="bench-limited", limit_usd=limit_usd,
                                     limit_reset="monthly")  # fmt: skip
        return made.secret
    finally:
        await store.close()


async def codes(database_url: str, user_id: str, count: int) -> list[str]:
    """``count`` fresh codes without a challenge (10 minutes to live), bulk-inserted."""
    store = await open_store(database_url, pool_size=2)
    try:
        svc = Services.build(Settings(database_url=database_url), store)
        now = svc.clock()
        app = await store.get_or_create_app(ORIGIN, "bench", now)
        secrets_ = [tokens.generate_code() for _ in range(count)]
        records = [
            AuthCode(
                code_hash=tokens.sha256_hex(secret),
                user_id=user_id,
                app_id=app.id,
                callback_url=CALLBACK,
                created_at=now,
                expires_at=now + timedelta(seconds=svc.settings.code_ttl_seconds),
            )
            for secret in secrets_
        ]
    finally:
        await store.close()
    columns = [c.strip() for c in rows.CODE_COLUMNS.split(",")]
    if database_url.startswith("sqlite:"):
        sql = (
            f"INSERT INTO auth_codes ({rows.CODE_COLUMNS})"  # noqa: S608 - constant columns
            f" VALUES ({rows.placeholders(rows.CODE_COLUMN_COUNT, 'qmark')})"
        )
        with closing(sqlite3.connect(path_from_url(database_url))) as conn, conn:
            conn.executemany(sql, [rows.code_insert_values(r, iso) for r in records])
    else:
        pg = await asyncpg.connect(database_url)
        try:
            await pg.copy_records_to_table(
                "auth_codes",
                records=[rows.code_insert_values(r, utc) for r in records],
                columns=columns,
            )
        finally:
            await pg.close()
    return secrets_


async def postgres_version(admin_url: str) -> str:
    conn = await asyncpg.connect(admin_url, timeout=3)
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


async def _admin(admin_url: str, statement: str) -> None:
    conn = await asyncpg.connect(admin_url, timeout=5)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@contextmanager
def fresh_postgres(admin_url: str) -> Iterator[str]:
    """A new, empty database on the server ``admin_url`` names; dropped afterwards."""
    name = "mgbench_" + secrets.token_hex(6)
    asyncio.run(_admin(admin_url, f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.rsplit("/", 1)[0] + "/" + name
    finally:
        asyncio.run(_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
