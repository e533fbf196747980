"""PostgreSQL for the tests: one migrated database per xdist worker, emptied between
tests, a throw-away database for the few tests that need one of their own, or a
visible skip where there is no server.

``MODELGATES_TEST_POSTGRES_URL`` names a server and a database we may create
databases from (default: the local ``postgres`` user over TCP). Under CI
(``CI=true``) an unreachable server fails the run instead of skipping.

Creating and dropping a database costs far more than a test on it, so each worker
creates one database when its first PostgreSQL test starts, migrates it, and drops
it when the session ends; :func:`reset_database` empties its tables before every
test. The server is shared (several suites may run on it at once), so the worker's
database is named after the migration set, the worker and a random suffix: two runs
never meet, and a run never sees a schema made by other migrations.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from functools import cache
from typing import TypeVar

import asyncpg
import pytest

from modelgates.store import open_store
from modelgates.store.base import migration_files

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

T = TypeVar("T")

# Empties every table but the migration ledger and restarts every sequence, in one
# round trip and one transaction, whatever tables the migrations made. Tables are
# emptied children first (a pass takes every table no other pending table refers to).
# DELETE on a few rows is about ten times quicker than TRUNCATE, which makes new files
# for each table and index.
RESET_SQL = """
DO $reset$
DECLARE
    pending regclass[];
    ready regclass[];
    item regclass;
    seq record;
BEGIN
    SELECT coalesce(array_agg(oid::regclass), '{}') INTO pending FROM pg_class
    WHERE relkind = 'r' AND relnamespace = current_schema()::regnamespace
      AND relname <> 'schema_migrations';
    WHILE cardinality(pending) > 0 LOOP
        SELECT coalesce(array_agg(t), '{}') INTO ready FROM unnest(pending) AS t
        WHERE NOT EXISTS (
            SELECT 1 FROM pg_constraint fk
            WHERE fk.contype = 'f' AND fk.confrelid = t AND fk.conrelid <> t
              AND fk.conrelid = ANY (pending)
        );
        IF cardinality(ready) = 0 THEN
            RAISE EXCEPTION 'foreign keys form a cycle among %', pending;
        END IF;
        FOREACH item IN ARRAY ready LOOP
            EXECUTE format('DELETE FROM %s', item);
        END LOOP;
        pending := array(SELECT t FROM unnest(pending) AS t WHERE t <> ALL (ready));
    END LOOP;
    FOR seq IN SELECT schemaname, sequencename FROM pg_sequences
               WHERE schemaname = current_schema() LOOP
        EXECUTE format('ALTER SEQUENCE %I.%I RESTART', seq.schemaname, seq.sequencename);
    END LOOP;
END
$reset$
"""

# Connections a finished test left open (a leak, or a killed server's backend not yet
# gone) would count against max_connections, and could still be writing.
TERMINATE_OTHERS_SQL = """
SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
"""


def admin_url() -> str:
    return os.environ.get("MODELGATES_TEST_POSTGRES_URL", DEFAULT_URL)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def run_private(work: Callable[[], Awaitable[T]]) -> T:
    """Run ``work()`` to completion on a private loop in a thread.

    Callers may already be inside a running loop (an async fixture asking for a
    session fixture), where ``asyncio.run`` is not allowed.
    """

    async def main() -> T:
        return await work()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, main()).result()


@cache
def unavailable_reason() -> str | None:
    """Why PostgreSQL cannot be used here, or ``None`` when it can (probed once)."""

    async def probe() -> None:
        conn = await asyncpg.connect(admin_url(), timeout=3)
        await conn.close()

    try:
        run_private(probe)
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


def migrations_digest() -> str:
    """A short digest of the PostgreSQL migrations, which differ between branches."""
    digest = hashlib.sha256()
    for path in migration_files("postgres"):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:12]


async def _create(name: str) -> None:
    admin = await asyncpg.connect(admin_url())
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()


async def _drop(name: str) -> None:
    admin = await asyncpg.connect(admin_url())
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    """A database of its own with no schema yet (for tests that migrate it themselves):
    yield its URL, drop it afterwards."""
    require_postgres()
    name = "mgtest_" + secrets.token_hex(6)
    await _create(name)
    try:
        yield database_url(name)
    finally:
        await _drop(name)


@contextmanager
def worker_database(worker: str) -> Iterator[str]:
    """Create and migrate the database of one xdist worker (``gw0``..., or ``main``
    without xdist); yield its URL; drop it (closing what is still connected) after."""
    require_postgres()
    name = f"mgtest_{migrations_digest()}_{worker}_{secrets.token_hex(3)}"
    url = database_url(name)

    async def create() -> None:
        await _create(name)
        store = await open_store(url, pool_size=1)
        try:
            await store.migrate()
        finally:
            await store.close()

    run_private(create)
    try:
        yield url
    finally:
        run_private(lambda: _drop(name))


async def reset_database(url: str) -> None:
    """Empty every table of a migrated database (its schema and migration ledger stay),
    after closing any connection an earlier test left on it."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(TERMINATE_OTHERS_SQL)
        await conn.execute(RESET_SQL)
    finally:
        await conn.close()
