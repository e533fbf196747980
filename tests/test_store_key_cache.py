"""The key cache inside the stores, on SQLite and PostgreSQL: a change made through
another store on the same database (as another worker makes it) reaches a store's
cached authentication within 1 s; the database signals every change authentication
reads, and none of the updates every charge makes; on PostgreSQL a lost listener
empties and bypasses the cache until it listens again."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import closing
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest

from modelgates import tokens
from modelgates.admission import Ask
from modelgates.container import Services
from modelgates.errors import Forbidden, Unauthorized
from modelgates.models import ApiKey
from modelgates.settings import Settings
from modelgates.store import SqliteStore, Store, open_store, rows
from modelgates.store.postgres import PostgresStore
from modelgates.store.postgres_keywatch import KeyWatch
from modelgates.store.sqlite_engine import path_from_url
from tests.conftest import Account, make_account
from tests.support.clock import FakeClock

PROMISE_S = 1.0
"""A change made anywhere reaches every worker's cache within this."""
SETTLE_S = 10.0
"""Bound on waits that are no promise (a listener connecting on a loaded machine)."""

USAGE_COLUMNS = {
    "usage_nanos", "usage_day_nanos", "usage_day_start", "usage_week_nanos",
    "usage_week_start", "usage_month_nanos", "usage_month_start",
}  # fmt: skip
"""What every charge updates: the users' counters, and the keys' with ``last_used_at``."""


async def eventually(check: Callable[[], Awaitable[bool]], within: float, what: str) -> None:
    """Poll ``check`` until it holds; fail if it does not within ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await check():
        assert loop.time() < deadline, f"not within {within} s: {what}"
        await asyncio.sleep(0.005)


@dataclass
class Workers:
    """Two stores on one database, as two server processes have them."""

    a: Services
    b: Services
    account: Account

    @property
    def auth(self) -> str:
        return f"Bearer {self.account.key}"

    @property
    def key_hash(self) -> str:
        return tokens.sha256_hex(self.account.key)

    async def cached(self) -> ApiKey:
        return await self.a.keys.authenticate(self.auth, cached=True)

    async def kept(self) -> None:
        """Authenticate through ``a`` until its cache serves the key."""

        async def served() -> bool:
            await self.cached()
            return self.a.store.key_cache.get(self.key_hash) is not None

        await eventually(served, SETTLE_S, "the key is served from the cache")


async def opened(url: str) -> Store:
    store = await open_store(url, pool_size=2)
    await store.migrate()
    return store


@pytest.fixture
async def workers(database_url: str, clock: FakeClock) -> AsyncIterator[Workers]:
    a, b = await opened(database_url), await opened(database_url)
    try:
        one = Services.build(Settings(), a, clock=clock)
        other = Services.build(Settings(), b, clock=clock)
        yield Workers(one, other, await make_account(other))
    finally:
        await a.close()
        await b.close()


def refused(message: str) -> Callable[[Workers], Awaitable[bool]]:
    async def check(w: Workers) -> bool:
        try:
            await w.cached()
        except Unauthorized as exc:
            answer = exc.message
        else:
            return False
        assert answer == message
        return True

    return check


def reads(test: Callable[[ApiKey], bool]) -> Callable[[Workers], Awaitable[bool]]:
    async def check(w: Workers) -> bool:
        return test(await w.cached())

    return check


async def revoke(w: Workers) -> None:
    await w.b.keys.revoke(w.key_hash)


async def disable(w: Workers) -> None:
    await w.b.store.update_key(w.key_hash, w.b.clock(), disabled=True)


async def limit(w: Workers) -> None:
    await w.b.store.update_key(w.key_hash, w.b.clock(), limit=5_000, limit_reset="daily")


async def allow(w: Workers) -> None:
    await w.b.store.update_key(w.key_hash, w.b.clock(), allowed_models=("test/echo",))


async def rotate(w: Workers) -> None:
    now = w.b.clock()
    await w.b.store.rotate_key(w.key_hash, "e" * 64, now, now)


async def disable_user(w: Workers) -> None:
    await w.b.store.update_user(w.account.user.id, w.b.clock(), disabled=True)


async def budget_user(w: Workers) -> None:
    await w.b.store.update_user(w.account.user.id, w.b.clock(), limit=10**9)


CHANGES = {
    "revoked": (revoke, refused("Key revoked")),
    "disabled": (disable, refused("Key disabled")),
    "limited": (limit, reads(lambda key: (key.limit, key.limit_reset) == (5_000, "daily"))),
    "allowlisted": (allow, reads(lambda key: key.allowed_models == ("test/echo",))),
    "rotated": (rotate, refused("Key revoked")),
    "user disabled": (disable_user, refused("User disabled")),
    "user budgeted": (budget_user, reads(lambda key: key.user_budgeted)),
}


@pytest.mark.parametrize("change", CHANGES)
async def test_a_change_through_another_store_reaches_the_cache_within_a_second(
    workers: Workers, change: str
) -> None:
    make, seen = CHANGES[change]
    await workers.kept()
    assert not await seen(workers)  # the change is not there yet
    await make(workers)
    loop = asyncio.get_running_loop()
    made = loop.time()
    await eventually(lambda: seen(workers), PROMISE_S, f"{change} seen through the cache")
    if isinstance(workers.a.store, SqliteStore):
        assert loop.time() - made < 0.2  # on SQLite, from the next lookup (one poll)


async def test_a_user_budget_unset_reaches_the_cache(workers: Workers) -> None:
    await budget_user(workers)
    await workers.kept()
    assert (await workers.cached()).user_budgeted
    await workers.b.store.update_user(workers.account.user.id, workers.b.clock(), limit=None)
    unbudgeted = reads(lambda key: not key.user_budgeted)
    await eventually(lambda: unbudgeted(workers), PROMISE_S, "the budget's removal seen")


async def test_a_change_through_the_same_store_applies_to_the_next_request(
    workers: Workers,
) -> None:
    await workers.kept()
    await workers.a.keys.revoke(workers.key_hash)
    assert await refused("Key revoked")(workers)


async def test_an_unknown_key_is_not_kept_so_a_new_key_works_at_once(workers: Workers) -> None:
    await workers.kept()
    new = await workers.b.keys.create(workers.account.user, name="second")
    key = await workers.a.keys.authenticate(f"Bearer {new.secret}", cached=True)
    assert key.hash == new.record.hash
    for _ in range(3):
        with pytest.raises(Unauthorized):
            await workers.a.keys.authenticate("Bearer sk-mg-v1-" + "0" * 64, cached=True)
    assert workers.a.store.key_cache.get(tokens.sha256_hex("sk-mg-v1-" + "0" * 64)) is None


async def test_admission_decides_on_the_rows_not_on_the_key_it_is_given(
    workers: Workers,
) -> None:
    """A key with a budget is admitted on its row and its user's, read under their locks:
    a cached key that has not yet heard of a change does not carry it past admission."""
    await limit(workers)
    await workers.kept()
    stale = await workers.cached()
    await workers.b.store.update_key(workers.key_hash, workers.b.clock(), limit=0)
    with pytest.raises(Forbidden):
        await workers.a.metering.admit(stale, Ask(fixed=1, per_million=0, tokens=0, cap=0), "g1")
    await workers.b.store.update_key(workers.key_hash, workers.b.clock(), limit=5_000)
    await disable_user(workers)
    with pytest.raises(Unauthorized, match="User disabled"):
        await workers.a.metering.admit(stale, Ask(fixed=1, per_million=0, tokens=0, cap=0), "g2")


# --- what the database signals ---------------------------------------------------


class Signals:
    """The key changes a database signalled: PostgreSQL's notifications on the cache's
    channel, or SQLite's revision number."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.heard: list[str] = []
        self._listener: asyncpg.Connection | None = None

    async def __aenter__(self) -> Signals:
        if self.url.startswith("postgresql"):
            self._listener = await asyncpg.connect(self.url)
            await self._listener.add_listener("modelgates_keys", self._heard)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._listener is not None:
            await self._listener.close()

    def _heard(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        self.heard.append(str(payload))

    async def count(self) -> int:
        """How many so far (every change committed before the call is counted)."""
        if self._listener is None:
            with closing(sqlite3.connect(path_from_url(self.url))) as db:
                return int(db.execute("SELECT n FROM key_revision").fetchone()[0])
        await self._listener.fetchval("SELECT 1")  # notifications come before its answer
        await asyncio.sleep(0)
        return len(self.heard)

    async def execute(self, sql: str, *args: Any) -> None:
        """Run one statement on a connection of its own (not through a store)."""
        if self._listener is None:
            with closing(sqlite3.connect(path_from_url(self.url))) as db, db:
                db.execute(sql.replace("$1", "?"), args)
            return
        conn = await asyncpg.connect(self.url)
        try:
            await conn.execute(sql, *args)
        finally:
            await conn.close()


async def table_columns(url: str, table: str) -> list[str]:
    if url.startswith("postgresql"):
        conn = await asyncpg.connect(url)
        try:
            found = await conn.fetch(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_schema = current_schema() AND table_name = $1",
                table,
            )
        finally:
            await conn.close()
        return [row["column_name"] for row in found]
    with closing(sqlite3.connect(path_from_url(url))) as db:
        return [row[1] for row in db.execute(f"PRAGMA table_info({table})")]


AUTHENTICATION_READS_OF_USERS = set(re.findall(r"\bu\.(\w+)", rows.KEY_WITH_OWNER_COLUMNS))


async def test_every_column_authentication_reads_is_signalled_and_no_counter(
    database_url: str, store: Store, account: Account
) -> None:
    key_hash = tokens.sha256_hex(account.key)
    async with Signals(database_url) as signals:
        for table, where, value in (
            ("api_keys", "hash", key_hash),
            ("users", "id", account.user.id),
        ):
            for column in await table_columns(database_url, table):
                before = await signals.count()
                await signals.execute(
                    f"UPDATE {table} SET {column} = {column} WHERE {where} = $1", value
                )
                signalled = await signals.count() > before
                if column in USAGE_COLUMNS or column == "last_used_at":
                    assert not signalled, f"{table}.{column} is updated by every charge"
                elif table == "api_keys" or column in AUTHENTICATION_READS_OF_USERS | {"id"}:
                    assert signalled, f"a change of {table}.{column} is not signalled"
        before = await signals.count()
        await signals.execute("DELETE FROM api_keys WHERE hash = $1", key_hash)
        assert await signals.count() > before


async def test_charges_signal_nothing(
    database_url: str,
    services: Services,
    account: Account,
    gateway_client: httpx.AsyncClient,
) -> None:
    limited = await services.keys.create(account.user, name="limited", limit_usd=1.0)
    body = {"model": "test/echo", "messages": [{"role": "user", "content": "hi"}]}
    async with Signals(database_url) as signals:
        before = await signals.count()
        for secret in (account.key, limited.secret):  # settled alone, and reserved first
            for stream in (False, True):
                answer = await gateway_client.post(
                    "/api/v1/chat/completions",
                    headers={"Authorization": f"Bearer {secret}"},
                    json={**body, "max_tokens": 5, "stream": stream},
                )
                assert answer.status_code == 200, answer.text
        key = await services.store.get_key(limited.record.hash)
        assert key is not None and key.usage.total > 0  # charged
        assert await signals.count() == before
        await services.keys.revoke(limited.record.hash)
        assert await signals.count() > before


# --- PostgreSQL: the listener ----------------------------------------------------


def watch_of(store: Store) -> KeyWatch:
    assert isinstance(store, PostgresStore)
    assert store.key_watch is not None
    return store.key_watch


async def kill_listener(url: str, store: Store) -> None:
    pid = watch_of(store).server_pid
    assert pid is not None
    conn = await asyncpg.connect(url)
    try:
        assert await conn.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await conn.close()


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_a_lost_listener_empties_and_bypasses_the_cache(
    database_url: str, workers: Workers
) -> None:
    watch_of(workers.a.store).reconnect_first_s = 3600.0  # stays down for this test
    await workers.kept()
    await kill_listener(database_url, workers.a.store)
    cache = workers.a.store.key_cache

    async def off() -> bool:
        return not cache.serving and len(cache) == 0

    await eventually(off, PROMISE_S, "the cache is off once its listener is gone")
    await workers.cached()
    assert len(cache) == 0  # nothing kept while nobody listens
    await revoke(workers)  # its notification reaches nobody in ``a``
    assert await refused("Key revoked")(workers)  # read from the database at once


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_a_listener_that_reconnects_serves_and_hears_again(
    database_url: str, workers: Workers
) -> None:
    await workers.kept()
    watch = watch_of(workers.a.store)
    assert watch.connections == 1
    await kill_listener(database_url, workers.a.store)

    async def back() -> bool:
        return bool(watch.connections == 2 and workers.a.store.key_cache.serving)

    await eventually(back, SETTLE_S, "the listener reconnects")
    await workers.kept()
    await disable(workers)
    await eventually(lambda: refused("Key disabled")(workers), PROMISE_S, "heard again")
