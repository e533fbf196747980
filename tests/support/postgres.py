"""A throw-away PostgreSQL database per test, or a visible skip where there is none.

``MODELGATES_TEST_POSTGRES_URL`` names a server and a database we may create
databases from (default: the local ``postgres`` user over TCP). Under CI
(``CI=true``) an unreachable server fails the run instead of skipping.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from functools import cache

import asyncpg
import pytest

from modelgates.store import open_store
from modelgates.store.base import migration_files

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


def _template_name() -> str:
    """A template per migration set, so a changed migration gets a new template."""
    digest = hashlib.sha256()
    for path in migration_files("postgres"):
        digest.update(path.name.encode() + path.read_bytes())
    return "mgtemplate_" + digest.hexdigest()[:12]


async def _ensure_template(admin: asyncpg.Connection) -> str:
    """Create (once, under an advisory lock) a migrated database to clone from."""
    name = _template_name()
    await admin.execute("SELECT pg_advisory_lock(hashtext($1))", name)
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await admin.execute(f'CREATE DATABASE "{name}"')
            store = await open_store(database_url(name))
            try:
                await store.migrate()
            finally:
                await store.close()
    finally:
        await admin.execute("SELECT pg_advisory_unlock(hashtext($1))", name)
    return name


@asynccontextmanager
async def fresh_database(*, migrated: bool = False) -> AsyncIterator[str]:
    """Create a database (empty, or already migrated by cloning a template), yield its
    URL, drop it afterwards."""
    require_postgres()
    name = "mgtest_" + secrets.token_hex(6)
    admin = await asyncpg.connect(admin_url())
    try:
        template = f' TEMPLATE "{await _ensure_template(admin)}"' if migrated else ""
        await admin.execute(f'CREATE DATABASE "{name}"{template}')
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
