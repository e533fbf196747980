"""A throw-away PostgreSQL database per test, or a visible skip where there is none.

``MODELGATES_TEST_POSTGRES_URL`` names a server and a database we may create
databases from (default: the local ``postgres`` user over TCP). Under CI
(``CI=true``) an unreachable server fails the run instead of skipping.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from functools import cache

import asyncpg
import pytest

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def admin_url() -> str:
    return os.environ.get("MODELGATES_TEST_POSTGRES_URL", DEFAULT_URL)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@cache
def unavailable_reason() -> str | None:
    """Why PostgreSQL cannot be used here, or ``None`` when it can (probed once)."""

    async def probe() -> None:
        conn = await asyncpg.connect(admin_url(), timeout=3)
        await conn.close()

    # Probe on a private loop in a thread: callers may already be inside a loop.
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(asyncio.run, probe()).result()
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return f"PostgreSQL not reachable at {admin_url()}: {exc}"
    return None


def require_postgres() -> None:
    """Skip (or, under CI, fail) when PostgreSQL is not reachable."""
    reason = unavailable_reason()
    if reason is None:
        return
    if in_ci():
        pytest.fail(f"CI requires PostgreSQL: {reason}")
    pytest.skip(reason)


def database_url(name: str) -> str:
    base = admin_url().rsplit("/", 1)[0]
    return f"{base}/{name}"


@asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    """Create an empty database, yield its URL, drop it afterwards."""
    require_postgres()
    name = "mgtest_" + secrets.token_hex(6)
    admin = await asyncpg.connect(admin_url())
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield database_url(name)
    finally:
        admin = await asyncpg.connect(admin_url())
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
