"""The Store contract (modelgates.store.base.Store), on SQLite and PostgreSQL.

Every test that takes ``store``, ``database_url`` or ``empty_database_url`` runs once per
backend. Records are built here with small helpers; users exist before their keys and
codes, apps before codes (foreign keys).
"""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import asyncpg
import pytest

from modelgates import tokens
from modelgates.admission import Ask, Budget, decide
from modelgates.errors import ChallengeInUse, Conflict, DuplicateEmail, StoreError
from modelgates.models import (
    ApiKey,
    App,
    AuditEvent,
    AuthCode,
    Generation,
    Refusal,
    User,
    WebSession,
)
from modelgates.store import Store, open_store
from modelgates.store.base import KeyChange, from_iso, iso, migration_files
from modelgates.store.postgres import PostgresStore
from modelgates.windows import Reset, UsageCounters
from tests.support.clock import FakeClock
from tests.support.postgres import reset_database


def all_migrations(database_url: str) -> list[str]:
    """Every migration of the URL's dialect, in order: what a fresh database gets."""
    dialect = "sqlite" if database_url.startswith("sqlite:") else "postgres"
    return [path.stem for path in migration_files(dialect)]


SIDE_POOL_SIZE = 3
"""Pool cap for extra PostgreSQL stores: several pools of 10 per test exhaust
``max_connections`` when test processes run in parallel."""
MICROS = timedelta(microseconds=123_457)


# --- builders --------------------------------------------------------------


def new_hash() -> str:
    return tokens.sha256_hex(secrets.token_hex(32))


def make_user(now: datetime, *, email: str | None = None) -> User:
    return User(
        id="user_" + secrets.token_hex(8),
        email=email or f"{secrets.token_hex(6)}@example.com",
        password_hash="$argon2id$v=19$m=65536,t=3,p=4$" + secrets.token_hex(16),
        workspace_id="ws_" + secrets.token_hex(8),
        created_at=now,
    )


def make_key(user: User, now: datetime, **overrides: object) -> ApiKey:
    key = ApiKey(
        hash=new_hash(),
        user_id=user.id,
        name="key " + secrets.token_hex(3),
        label="sk-mg-v1-abc...1c96",
        created_at=now,
    )
    return replace(key, **overrides)  # type: ignore[arg-type]


def make_code(user: User, app: App, now: datetime, **overrides: object) -> AuthCode:
    code = AuthCode(
        code_hash=new_hash(),
        user_id=user.id,
        app_id=app.id,
        callback_url="https://app.example.com/callback",
        created_at=now,
        expires_at=now + timedelta(minutes=5),
    )
    return replace(code, **overrides)  # type: ignore[arg-type]


def challenge() -> str:
    return secrets.token_urlsafe(32)[:43]


async def add_user(store: Store, now: datetime) -> User:
    user = make_user(now)
    await store.create_user(user)
    return user


async def add_app(store: Store, now: datetime, origin: str | None = None) -> App:
    origin = origin or f"https://{secrets.token_hex(4)}.example.com"
    return await store.get_or_create_app(origin, "Some App", now)


@asynccontextmanager
async def opened_stores(
    database_url: str, count: int, *, capped: bool = True
) -> AsyncIterator[list[Store]]:
    """``count`` stores opened separately on one database (own connections/threads).

    ``capped=False`` opens them exactly as the server does (``open_store``)."""
    stores: list[Store] = []
    try:
        for _ in range(count):
            if database_url.startswith("sqlite:") or not capped:
                stores.append(await open_store(database_url))
            else:
                stores.append(await PostgresStore.connect(database_url, max_size=SIDE_POOL_SIZE))
        yield stores
    finally:
        for opened in stores:
            await opened.close()


def assert_utc(moment: datetime | None) -> None:
    assert moment is not None
    assert moment.tzinfo is not None
    assert moment.utcoffset() == timedelta(0)


async def all_keys(store: Store, user: User) -> list[ApiKey]:
    return await store.list_keys(user.id, include_disabled=True, offset=0, limit=1000)


def count_ok(results: Iterable[object]) -> int:
    return sum(1 for r in results if r is None)


@pytest.fixture
def now(clock: FakeClock) -> datetime:
    """A 'now' with microseconds, so round-trips must keep them."""
    return clock.now + MICROS


# --- migrations ------------------------------------------------------------


async def test_migrate_applies_initial_once(empty_database_url: str) -> None:
    async with opened_stores(empty_database_url, 1, capped=False) as (store,):
        assert await store.migrate() == all_migrations(empty_database_url)
        assert await store.migrate() == []
        await store.ping()
        # The schema is really there.
        assert await store.get_user("nobody") is None


async def test_migrate_is_idempotent_across_stores(empty_database_url: str) -> None:
    async with opened_stores(empty_database_url, 2, capped=False) as (first, second):
        assert await first.migrate() == all_migrations(empty_database_url)
        assert await second.migrate() == []


async def test_concurrent_migrate_on_two_stores_applies_once(empty_database_url: str) -> None:
    async with opened_stores(empty_database_url, 2, capped=False) as (first, second):
        results = await asyncio.gather(first.migrate(), second.migrate())
        assert sorted(results) == [[], all_migrations(empty_database_url)]
        assert await first.migrate() == []
        assert await second.migrate() == []
        # Both see a working schema.
        now = datetime.now(UTC)
        user = await add_user(first, now)
        assert await second.get_user(user.id) == user


async def test_fixture_store_is_migrated(store: Store) -> None:
    assert await store.migrate() == []


@pytest.mark.postgres
async def test_worker_database_reset_empties_every_table_but_the_ledger(
    postgres_worker_url: str, now: datetime
) -> None:
    """Between tests a worker's PostgreSQL database loses its rows, restarts its
    identities, and keeps its schema and migration ledger."""
    async with opened_stores(postgres_worker_url, 1) as (store,):
        user = await add_user(store, now)
        first_app = await add_app(store, now)
        await store.create_key(make_key(user, now))
    await reset_database(postgres_worker_url)
    async with opened_stores(postgres_worker_url, 1) as (store,):
        assert await store.migrate() == []
        assert await store.get_user(user.id) is None
        assert (await add_app(store, now)).id == 1 <= first_app.id
    conn = await asyncpg.connect(postgres_worker_url)
    try:
        ledger = [r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")]
        assert sorted(ledger) == all_migrations(postgres_worker_url)
    finally:
        await conn.close()


# --- users -----------------------------------------------------------------


async def test_user_round_trip(store: Store, now: datetime) -> None:
    user = make_user(now)
    await store.create_user(user)

    by_id = await store.get_user(user.id)
    by_email = await store.get_user_by_email(user.email)
    assert by_id == user
    assert by_email == user
    assert by_id is not None
    assert_utc(by_id.created_at)
    assert by_id.created_at.microsecond == now.microsecond


async def test_user_timestamp_in_other_zone_comes_back_utc(store: Store, now: datetime) -> None:
    ist = timezone(timedelta(hours=5, minutes=30))
    user = make_user(now.astimezone(ist))
    await store.create_user(user)

    found = await store.get_user(user.id)
    assert found is not None
    assert_utc(found.created_at)
    assert found.created_at == now


async def test_unknown_user_is_none(store: Store) -> None:
    assert await store.get_user("user_missing") is None
    assert await store.get_user_by_email("missing@example.com") is None


async def test_duplicate_email_raises(store: Store, now: datetime) -> None:
    first = await add_user(store, now)
    second = make_user(now, email=first.email)

    with pytest.raises(DuplicateEmail):
        await store.create_user(second)
    # The client's fault (a 409 if it ever reached a client), never an outage's 503.
    assert issubclass(DuplicateEmail, Conflict) and not issubclass(DuplicateEmail, StoreError)
    assert await store.get_user(second.id) is None
    assert await store.get_user_by_email(first.email) == first


async def test_store_still_writes_after_duplicate_email(store: Store, now: datetime) -> None:
    first = await add_user(store, now)
    with pytest.raises(DuplicateEmail):
        await store.create_user(make_user(now, email=first.email))
    other = await add_user(store, now)
    assert await store.get_user(other.id) == other


# --- apps ------------------------------------------------------------------


async def test_get_or_create_app_is_stable_and_keeps_first_name(
    store: Store, now: datetime
) -> None:
    origin = "https://app.example.com"
    first = await store.get_or_create_app(origin, "First", now)
    again = await store.get_or_create_app(origin, "Second", now + timedelta(hours=1))

    assert isinstance(first.id, int)
    assert first.origin == origin
    assert first.name == "First"
    assert first.created_at == now
    assert_utc(first.created_at)
    assert again == first
    assert await store.get_app(first.id) == first


async def test_different_origins_get_different_ids(store: Store, now: datetime) -> None:
    a = await store.get_or_create_app("https://a.example.com", "A", now)
    b = await store.get_or_create_app("https://b.example.com", "B", now)

    assert isinstance(a.id, int)
    assert isinstance(b.id, int)
    assert a.id != b.id
    assert (await store.get_app(a.id)) == a
    assert (await store.get_app(b.id)) == b


async def test_unknown_app_is_none(store: Store) -> None:
    assert await store.get_app(987_654) is None


async def test_concurrent_get_or_create_app_returns_one_id(store: Store, now: datetime) -> None:
    origin = "https://racy.example.com"
    apps = await asyncio.gather(
        *(store.get_or_create_app(origin, f"name {i}", now) for i in range(20))
    )

    assert len({app.id for app in apps}) == 1
    assert len({app.name for app in apps}) == 1
    assert await store.get_app(apps[0].id) == apps[0]


async def test_concurrent_get_or_create_app_across_stores(
    store: Store, database_url: str, now: datetime
) -> None:
    origin = "https://racy-stores.example.com"
    async with opened_stores(database_url, 4) as stores:
        apps = await asyncio.gather(
            *(s.get_or_create_app(origin, f"name {i}", now) for s in stores for i in range(5))
        )

    assert len({app.id for app in apps}) == 1
    assert len({app.name for app in apps}) == 1


# --- keys ------------------------------------------------------------------


async def test_key_round_trip_defaults(store: Store, now: datetime) -> None:
    user = await add_user(store, now)
    key = make_key(user, now)
    await store.create_key(key)

    found = await store.get_key(key.hash)
    assert found == key
    assert found is not None
    assert found.usage == UsageCounters()
    assert found.app_id is None
    assert found.limit is None
    assert found.limit_reset is None
    assert found.expires_at is None
    assert found.disabled is False
    assert found.revoked_at is None
    assert found.is_management is False
    assert found.issued_by_code is False
    assert found.updated_at is None
    assert found.last_used_at is None
    assert_utc(found.created_at)


async def test_key_round_trip_every_field(store: Store, now: datetime) -> None:
    user = await add_user(store, now)
    app = await add_app(store, now)
    key = make_key(
        user,
        now,
        app_id=app.id,
        limit=1_234_567_890_123,
        limit_reset="weekly",
        expires_at=now + timedelta(days=30, microseconds=1),
        is_management=True,
        issued_by_code=True,
        updated_at=now + timedelta(seconds=1),
        last_used_at=now + timedelta(seconds=2),
        usage=UsageCounters(
            total=9_000_000_001,
            day=1,
            day_start=now.replace(hour=0, minute=0, second=0, microsecond=0),
            week=22,
            week_start=now - timedelta(days=3),
            month=333,
            month_start=now - timedelta(days=10),
        ),
    )
    await store.create_key(key)

    found = await store.get_key(key.hash)
    assert found == key
    assert found is not None
    assert found.app_id == app.id
    assert isinstance(found.app_id, int)
    assert found.limit == 1_234_567_890_123
    assert found.limit_reset == "weekly"
    assert found.is_management is True
    assert found.issued_by_code is True
    for moment in (
        found.created_at,
        found.updated_at,
        found.last_used_at,
        found.expires_at,
        found.usage.day_start,
        found.usage.week_start,
        found.usage.month_start,
    ):
        assert_utc(moment)
    assert found.expires_at is not None
    assert found.expires_at.microsecond == (now + timedelta(microseconds=1)).microsecond


@pytest.mark.parametrize("reset", ["daily", "weekly", "monthly"])
async def test_key_limit_reset_values(store: Store, now: datetime, reset: str) -> None:
    user = await add_user(store, now)
    key = make_key(user, now, limit=0, limit_reset=reset)
    await store.create_key(key)
    assert await store.get_key(key.hash) == key


async def test_disabled_and_revoked_key_round_trip(store: Store, now: datetime) -> None:
    user = await add_user(store, now)
    key = make_key(user, now, disabled=True, revoked_at=now + timedelta(minutes=1))
    await store.create_key(key)
    assert await store.get_key(key.hash) == key


async def test_unknown_key_is_none(store: Store) -> None:
    assert await store.get_key(new_hash()) is None


async def test_list_keys_newest_first_excludes_revoked_and_other_users(
    store: Store, now: datetime
) -> None:
    user = await add_user(store, now)
    other = await add_user(store, now)
    keys = [make_key(user, now + timedelta(seconds=i)) for i in range(4)]
    for key in keys:
        await store.create_key(key)
    await store.create_key(make_key(other, now + timedelta(seconds=10)))
    assert await store.revoke_key(keys[2].hash, now + timedelta(minutes=1)) == []

    listed = await store.list_keys(user.id, include_disabled=False, offset=0, limit=100)
    assert [k.hash for k in listed] == [keys[3].hash, keys[1].hash, keys[0].hash]
    assert listed[0] == keys[3]


async def test_list_keys_include_disabled(store: Store, now: datetime) -> None:
    user = await add_user(store, now)
    enabled = make_key(user, now)
    disabled = make_key(user, now + timedelta(seconds=1), disabled=True)
    await store.create_key(enabled)
    await store.create_key(disabled)

    without = await store.list_keys(user.id, include_disabled=False, offset=0, limit=100)
    with_disabled = await store.list_keys(user.id, include_disabled=True, offset=0, limit=100)

    assert [k.hash for k in without] == [enabled.hash]
    assert [k.hash for k in with_disabled] == [disabled.hash, enabled.hash]
    assert with_disabled[0].disabled is True


async def test_list_keys_excludes_revoked_even_with_disabled(store: Store, now: datetime) -> None:
    user = await add_user(store, now)
    revoked = make_key(user, now, disabled=True)
    await store.create_key(revoked)
    assert await store.revoke_key(revoked.hash, now) == []
    assert await store.list_keys(user.id, include_disabled=True, offset=0, limit=100) == []


async def test_list_keys_paging(store: Store, now: datetime) -> None:
    user = await add_user(store, now)
    keys = [make_key(user, now + timedelta(minutes=i)) for i in range(7)]
    # Insert out of order: the listing must sort, not rely on insertion order.
    for key in [keys[i] for i in (3, 0, 6, 1, 5, 2, 4)]:
        await store.create_key(key)
    newest_first = [k.hash for k in reversed(keys)]

    pages = [
        await store.list_keys(user.id, include_disabled=False, offset=offset, limit=3)
        for offset in (0, 3, 6, 9)
    ]
    assert [len(p) for p in pages] == [3, 3, 1, 0]
    assert [k.hash for page in pages for k in page] == newest_first
    assert pages[0] == list(reversed(keys))[:3]


async def test_list_keys_unknown_user_is_empty(store: Store) -> None:
    assert await store.list_keys("user_missing", include_disabled=True, offset=0, limit=10) == []


async def test_revoke_key_once(store: Store, now: datetime) -> None:
    user = await add_user(store, now)
    key = make_key(user, now)
    await store.create_key(key)
    revoked_at = now + timedelta(hours=1)

    assert await store.revoke_key(key.hash, revoked_at) == []
    assert await store.revoke_key(key.hash, revoked_at + timedelta(hours=1)) is None

    found = await store.get_key(key.hash)
    assert found is not None
    assert found.revoked_at == revoked_at
    assert_utc(found.revoked_at)


async def test_revoke_unknown_key_is_none(store: Store, now: datetime) -> None:
    assert await store.revoke_key(new_hash(), now) is None


async def test_update_key_sets_only_the_given_fields(store: Store, now: datetime) -> None:
    user = await add_user(store, now)
    key = make_key(user, now, limit=5 * 10**9, limit_reset="monthly")
    await store.create_key(key)
    later = now + timedelta(minutes=5)

    renamed = (await updated(store, key.hash, later, name="renamed")).key
    assert renamed == replace(key, name="renamed", updated_at=later)
    assert_utc(renamed.updated_at)
    assert await store.get_key(key.hash) == renamed

    changed = (
        await updated(store, key.hash, later, disabled=True, limit=None, limit_reset=None)
    ).key
    assert changed == replace(renamed, disabled=True, limit=None, limit_reset=None)

    again = (
        await updated(store, key.hash, later, limit=7, limit_reset="daily", disabled=False)
    ).key
    assert again == replace(changed, disabled=False, limit=7, limit_reset="daily")

    touched = (await updated(store, key.hash, later + timedelta(minutes=1))).key
    assert touched == replace(again, updated_at=later + timedelta(minutes=1))


async def updated(store: Store, key_hash: str, now: datetime, **changes: Any) -> KeyChange:
    change = await store.update_key(key_hash, now, **changes)
    assert change is not None
    return change


async def test_update_unknown_or_revoked_key_is_none(store: Store, now: datetime) -> None:
    assert await store.update_key(new_hash(), now, name="x") is None
    user = await add_user(store, now)
    key = make_key(user, now)
    await store.create_key(key)
    await store.revoke_key(key.hash, now)
    assert await store.update_key(key.hash, now, name="x") is None
    found = await store.get_key(key.hash)
    assert found is not None and found.name == key.name


# --- codes: create / get ---------------------------------------------------


async def test_code_round_trip_minimal(store: Store, now: datetime) -> None:
    user = await add_user(store, now)
    app = await add_app(store, now)
    code = make_code(user, app, now, callback_url=None)
    await store.create_code(code, now)

    found = await store.get_code(code.code_hash)
    assert found == code
    assert found is not None
    assert found.used_at is None
    assert found.minted_key_hash is None
    assert_utc(found.created_at)
    assert_utc(found.expires_at)


async def test_code_round_trip_every_field(store: Store, now: datetime) -> None:
    user = await add_user(store, now)
    app = await add_app(store, now)
    code = make_code(
        user,
        app,
        now,
        code_challenge=challenge(),
        code_challenge_method="S256",
        key_label="my agent",
        limit=5_000_000_000,
        usage_limit_type="monthly",
        key_expires_at=now + timedelta(days=7, microseconds=3),
    )
    await store.create_code(code, now)

    found = await store.get_code(code.code_hash)
    assert found == code
    assert found is not None
    assert isinstance(found.app_id, int)
    assert_utc(found.key_expires_at)


async def test_code_plain_method_round_trip(store: Store, now: datetime) -> None:
    user = await add_user(store, now)
    app = await add_app(store, now)
    code = make_code(user, app, now, code_challenge="x" * 60, code_challenge_method="plain")
    await store.create_code(code, now)
    assert await store.get_code(code.code_hash) == code


async def test_unknown_code_is_none(store: Store) -> None:
    assert await store.get_code(new_hash()) is None


# --- codes: the live-challenge rule ---------------------------------------


async def test_create_code_rejects_live_challenge(store: Store, now: datetime) -> None:
    user = await add_user(store, now)
    app = await add_app(store, now)
    shared = challenge()
    first = make_code(user, app, now, code_challenge=shared, code_challenge_method="S256")
    await store.create_code(first, now)

    second = make_code(user, app, now, code_challenge=shared, code_challenge_method="S256")
    with pytest.raises(ChallengeInUse):
        await store.create_code(second, now + timedelta(seconds=1))
    assert await store.get_code(second.code_hash) is None
    assert await store.get_code(first.code_hash) == first


async def test_create_code_rejects_live_challenge_from_another_app(
    store: Store, now: datetime
) -> None:
    user = await add_user(store, now)
    app_a = await add_app(store, now)
    app_b = await add_app(store, now)
    shared = challenge()
    await store.create_code(make_code(user, app_a, now, code_challenge=shared), now)

    second = make_code(user, app_b, now, code_challenge=shared)
    with pytest.raises(ChallengeInUse):
        await store.create_code(second, now)
    assert await store.get_code(second.code_hash) is None


async def test_create_code_rejects_just_before_expiry(store: Store, now: datetime) -> None:
    user = await add_user(store, now)
    app = await add_app(store, now)
    shared = challenge()
    first = make_code(user, app, now, code_challenge=shared)
    await store.create_code(first, now)

    with pytest.raises(ChallengeInUse):
        await store.create_code(
            make_code(user, app, now, code_challenge=shared),
            first.expires_at - timedelta(microseconds=1),
        )


async def test_create_code_allows_challenge_of_expired_code(store: Store, now: datetime) -> None:
    user = await add_user(store, now)
    app = await add_app(store, now)
    shared = challenge()
    first = make_code(user, app, now, code_challenge=shared)
    await store.create_code(first, now)

    # Expired from its expires_at instant on.
    at_expiry = first.expires_at
    second = make_code(user, app, at_expiry, code_challenge=shared)
    await store.create_code(second, at_expiry)
    assert await store.get_code(second.code_hash) == second


async def test_create_code_allows_challenge_of_used_code(store: Store, now: datetime) -> None:
    user = await add_user(store, now)
    app = await add_app(store, now)
    shared = challenge()
    first = make_code(user, app, now, code_challenge=shared)
    await store.create_code(first, now)
    assert await store.consume_code(first.code_hash, now, make_key(user, now)) is True

    second = make_code(user, app, now, code_challenge=shared)
    await store.create_code(second, now)
    assert await store.get_code(second.code_hash) == second


async def test_create_code_allows_same_challenge_for_another_user(
    store: Store, now: datetime
) -> None:
    alice = await add_user(store, now)
    bob = await add_user(store, now)
    app = await add_app(store, now)
    shared = challenge()
    await store.create_code(make_code(alice, app, now, code_challenge=shared), now)

    bobs = make_code(bob, app, now, code_challenge=shared)
    await store.create_code(bobs, now)
    assert await store.get_code(bobs.code_hash) == bobs


async def test_create_code_allows_codes_without_challenge(store: Store, now: datetime) -> None:
    user = await add_user(store, now)
    app = await add_app(store, now)
    first = make_code(user, app, now)
    second = make_code(user, app, now)
    await store.create_code(first, now)
    await store.create_code(second, now)

    assert await store.get_code(first.code_hash) == first
    assert await store.get_code(second.code_hash) == second


async def test_create_code_allows_different_challenges(store: Store, now: datetime) -> None:
    user = await add_user(store, now)
    app = await add_app(store, now)
    first = make_code(user, app, now, code_challenge=challenge())
    second = make_code(user, app, now, code_challenge=challenge())
    await store.create_code(first, now)
    await store.create_code(second, now)
    assert await store.get_code(second.code_hash) == second


async def test_concurrent_create_code_same_challenge_one_wins(store: Store, now: datetime) -> None:
    user = await add_user(store, now)
    app = await add_app(store, now)
    shared = challenge()
    codes = [make_code(user, app, now, code_challenge=shared) for _ in range(20)]

    results = await asyncio.gather(
        *(store.create_code(code, now) for code in codes), return_exceptions=True
    )

    assert count_ok(results) == 1
    assert all(isinstance(r, ChallengeInUse) for r in results if r is not None)
    stored = [await store.get_code(code.code_hash) for code in codes]
    assert sum(1 for c in stored if c is not None) == 1
    winner = results.index(None)
    assert stored[winner] == codes[winner]


async def test_concurrent_create_code_same_challenge_across_stores(
    store: Store, database_url: str, now: datetime
) -> None:
    user = await add_user(store, now)
    app = await add_app(store, now)
    shared = challenge()
    async with opened_stores(database_url, 4) as stores:
        calls = [
            s.create_code(make_code(user, app, now, code_challenge=shared), now)
            for s in stores
            for _ in range(5)
        ]
        results = await asyncio.gather(*calls, return_exceptions=True)

    assert count_ok(results) == 1
    assert all(isinstance(r, ChallengeInUse) for r in results if r is not None)


# --- codes: consume --------------------------------------------------------


async def test_consume_code_once_inserts_key(store: Store, now: datetime) -> None:
    user = await add_user(store, now)
    app = await add_app(store, now)
    code = make_code(user, app, now)
    await store.create_code(code, now)
    used_at = now + timedelta(seconds=30)
    key = make_key(user, used_at, app_id=app.id, issued_by_code=True, limit=42)

    assert await store.consume_code(code.code_hash, used_at, key) is True

    assert await store.get_key(key.hash) == key
    consumed = await store.get_code(code.code_hash)
    assert consumed is not None
    assert consumed.used_at == used_at
    assert_utc(consumed.used_at)
    assert consumed.minted_key_hash == key.hash
    assert consumed == replace(code, used_at=used_at, minted_key_hash=key.hash)
    assert [k.hash for k in await all_keys(store, user)] == [key.hash]


async def test_consume_code_second_call_is_false_and_inserts_nothing(
    store: Store, now: datetime
) -> None:
    user = await add_user(store, now)
    app = await add_app(store, now)
    code = make_code(user, app, now)
    await store.create_code(code, now)
    first = make_key(user, now)
    assert await store.consume_code(code.code_hash, now, first) is True

    second = make_key(user, now)
    assert await store.consume_code(code.code_hash, now + timedelta(seconds=1), second) is False

    assert await store.get_key(second.hash) is None
    consumed = await store.get_code(code.code_hash)
    assert consumed is not None
    assert consumed.used_at == now
    assert consumed.minted_key_hash == first.hash
    assert [k.hash for k in await all_keys(store, user)] == [first.hash]


async def test_consume_code_writes_its_audit_event_with_the_key(
    store: Store, now: datetime
) -> None:
    """The issue's audit record shares the consuming transaction: a successful consume
    leaves exactly one, a losing one leaves none."""
    user = await add_user(store, now)
    app = await add_app(store, now)
    code = make_code(user, app, now)
    await store.create_code(code, now)
    key = make_key(user, now)

    def issued(minted: ApiKey) -> AuditEvent:
        return AuditEvent(
            at=now, event="key.issued", actor=f"app:{app.id}", user_id=user.id,
            key_hash=minted.hash, detail={"app_id": app.id},
        )  # fmt: skip

    assert await store.consume_code(code.code_hash, now, key, issued(key)) is True
    loser = make_key(user, now)
    assert await store.consume_code(code.code_hash, now, loser, issued(loser)) is False
    events = await store.list_events(user_id=user.id)
    assert [(e.event, e.key_hash, e.detail) for e in events] == [
        ("key.issued", key.hash, {"app_id": app.id})
    ]


@pytest.mark.parametrize("late", [timedelta(0), timedelta(microseconds=1), timedelta(hours=1)])
async def test_consume_expired_code_is_false(store: Store, now: datetime, late: timedelta) -> None:
    user = await add_user(store, now)
    app = await add_app(store, now)
    code = make_code(user, app, now)
    await store.create_code(code, now)
    key = make_key(user, now)

    assert await store.consume_code(code.code_hash, code.expires_at + late, key) is False

    assert await store.get_key(key.hash) is None
    assert await store.get_code(code.code_hash) == code
    assert await all_keys(store, user) == []


async def test_consume_code_just_before_expiry_is_true(store: Store, now: datetime) -> None:
    user = await add_user(store, now)
    app = await add_app(store, now)
    code = make_code(user, app, now)
    await store.create_code(code, now)
    key = make_key(user, now)

    moment = code.expires_at - timedelta(microseconds=1)
    assert await store.consume_code(code.code_hash, moment, key) is True
    assert await store.get_key(key.hash) == key


async def test_consume_unknown_code_is_false(store: Store, now: datetime) -> None:
    user = await add_user(store, now)
    key = make_key(user, now)

    assert await store.consume_code(new_hash(), now, key) is False
    assert await store.get_key(key.hash) is None
    assert await all_keys(store, user) == []


async def test_consume_code_race_exactly_one_wins(store: Store, now: datetime) -> None:
    user = await add_user(store, now)
    app = await add_app(store, now)
    code = make_code(user, app, now)
    await store.create_code(code, now)
    keys = [make_key(user, now, app_id=app.id, issued_by_code=True) for _ in range(50)]

    results = await asyncio.gather(*(store.consume_code(code.code_hash, now, k) for k in keys))

    assert results.count(True) == 1
    assert results.count(False) == 49
    winner = keys[results.index(True)]
    stored = await all_keys(store, user)
    assert [k.hash for k in stored] == [winner.hash]
    assert [await store.get_key(k.hash) for k in keys].count(None) == 49
    consumed = await store.get_code(code.code_hash)
    assert consumed is not None
    assert consumed.minted_key_hash == winner.hash


async def test_consume_code_race_across_stores(
    store: Store, database_url: str, now: datetime
) -> None:
    user = await add_user(store, now)
    app = await add_app(store, now)
    code = make_code(user, app, now)
    await store.create_code(code, now)

    async with opened_stores(database_url, 5) as stores:
        attempts = [(s, make_key(user, now)) for s in stores for _ in range(10)]
        results = await asyncio.gather(
            *(s.consume_code(code.code_hash, now, key) for s, key in attempts)
        )
        # Every store agrees on the outcome.
        for s in stores:
            consumed = await s.get_code(code.code_hash)
            assert consumed is not None
            assert consumed.used_at == now

    assert results.count(True) == 1
    assert results.count(False) == 49
    winner = attempts[results.index(True)][1]
    assert [k.hash for k in await all_keys(store, user)] == [winner.hash]
    consumed = await store.get_code(code.code_hash)
    assert consumed is not None
    assert consumed.minted_key_hash == winner.hash


async def test_consume_code_race_with_replay_revocation(store: Store, now: datetime) -> None:
    """Replays racing the first exchange never revoke anything but the minted key."""
    user = await add_user(store, now)
    app = await add_app(store, now)
    code = make_code(user, app, now)
    await store.create_code(code, now)
    keys = [make_key(user, now) for _ in range(10)]

    results = await asyncio.gather(*(store.consume_code(code.code_hash, now, k) for k in keys))
    assert results.count(True) == 1
    winner = keys[results.index(True)]

    assert await store.revoke_key_minted_by(code.code_hash, now) == winner.hash
    assert await all_keys(store, user) == []


async def test_consume_code_is_atomic_when_key_insert_fails(store: Store, now: datetime) -> None:
    """A failing key insert rolls back the code's consumption: nothing changes."""
    user = await add_user(store, now)
    app = await add_app(store, now)
    existing = make_key(user, now)
    await store.create_key(existing)
    code = make_code(user, app, now)
    await store.create_code(code, now)

    clash = make_key(user, now + timedelta(seconds=5), hash=existing.hash, name="clash")
    with pytest.raises((sqlite3.IntegrityError, asyncpg.UniqueViolationError)):
        await store.consume_code(code.code_hash, now, clash)

    assert await store.get_code(code.code_hash) == code
    assert await store.get_key(existing.hash) == existing
    # The code is still usable.
    fresh = make_key(user, now)
    assert await store.consume_code(code.code_hash, now, fresh) is True


ZONES = [timezone(timedelta(hours=14)), timezone(timedelta(hours=-12)), UTC]


@pytest.mark.parametrize("zone", ZONES, ids=["+14", "-12", "utc"])
async def test_expiry_compares_instants_in_any_zone(
    store: Store, now: datetime, zone: timezone
) -> None:
    user = await add_user(store, now)
    app = await add_app(store, now)
    shared = challenge()
    code = make_code(user, app, now, code_challenge=shared)
    await store.create_code(code, now)
    just_before = (code.expires_at - timedelta(microseconds=1)).astimezone(zone)
    at_expiry = code.expires_at.astimezone(zone)

    with pytest.raises(ChallengeInUse):
        await store.create_code(make_code(user, app, now, code_challenge=shared), just_before)
    assert await store.consume_code(code.code_hash, at_expiry, make_key(user, now)) is False

    other = make_code(user, app, now, code_challenge=shared)
    await store.create_code(other, at_expiry)
    key = make_key(user, now)
    assert await store.consume_code(other.code_hash, just_before, key) is True
    consumed = await store.get_code(other.code_hash)
    assert consumed is not None
    assert consumed.used_at == just_before
    assert_utc(consumed.used_at)


async def test_list_keys_orders_by_instant_across_zones(store: Store, now: datetime) -> None:
    user = await add_user(store, now)
    east = timezone(timedelta(hours=14))
    west = timezone(timedelta(hours=-12))
    # Wall-clock text would order these the other way round.
    older = make_key(user, now.astimezone(east))
    newer = make_key(user, (now + timedelta(seconds=1)).astimezone(west))
    await store.create_key(older)
    await store.create_key(newer)

    listed = await store.list_keys(user.id, include_disabled=False, offset=0, limit=10)
    assert [k.hash for k in listed] == [newer.hash, older.hash]
    for key in listed:
        assert_utc(key.created_at)


# --- codes: replay revocation ---------------------------------------------


async def test_revoke_key_minted_by_used_code(store: Store, now: datetime) -> None:
    user = await add_user(store, now)
    app = await add_app(store, now)
    code = make_code(user, app, now)
    await store.create_code(code, now)
    key = make_key(user, now)
    assert await store.consume_code(code.code_hash, now, key) is True
    replay_at = now + timedelta(minutes=1)

    assert await store.revoke_key_minted_by(code.code_hash, replay_at) == key.hash

    revoked = await store.get_key(key.hash)
    assert revoked is not None
    assert revoked.revoked_at == replay_at
    assert_utc(revoked.revoked_at)
    assert await all_keys(store, user) == []
    # Already revoked: revoke_key now reports nothing to do.
    assert await store.revoke_key(key.hash, replay_at) is None


async def test_revoke_key_minted_by_does_not_touch_other_keys(store: Store, now: datetime) -> None:
    user = await add_user(store, now)
    app = await add_app(store, now)
    bystander = make_key(user, now)
    await store.create_key(bystander)
    code = make_code(user, app, now)
    await store.create_code(code, now)
    minted = make_key(user, now + timedelta(seconds=1))
    assert await store.consume_code(code.code_hash, now, minted) is True

    assert await store.revoke_key_minted_by(code.code_hash, now) == minted.hash
    assert await store.get_key(bystander.hash) == bystander
    assert [k.hash for k in await all_keys(store, user)] == [bystander.hash]


async def test_revoke_key_minted_by_unused_code_is_none(store: Store, now: datetime) -> None:
    user = await add_user(store, now)
    app = await add_app(store, now)
    code = make_code(user, app, now)
    await store.create_code(code, now)

    assert await store.revoke_key_minted_by(code.code_hash, now) is None
    assert await store.get_code(code.code_hash) == code


async def test_revoke_key_minted_by_unknown_code_is_none(store: Store, now: datetime) -> None:
    assert await store.revoke_key_minted_by(new_hash(), now) is None


async def test_revoke_key_minted_by_expired_unused_code_is_none(
    store: Store, now: datetime
) -> None:
    user = await add_user(store, now)
    app = await add_app(store, now)
    code = make_code(user, app, now)
    await store.create_code(code, now)
    key = make_key(user, now)
    assert await store.consume_code(code.code_hash, code.expires_at, key) is False

    assert await store.revoke_key_minted_by(code.code_hash, code.expires_at) is None


def test_both_dialects_have_the_same_migrations() -> None:
    names = [path.stem for path in migration_files("postgres")]
    assert names == [path.stem for path in migration_files("sqlite")]
    assert names[0] == "0001_initial"


# --- page sessions and app look-ups ----------------------------------------


async def test_sessions_round_trip_and_end(store: Store, now: datetime) -> None:
    user = await add_user(store, now)
    session = WebSession(
        token_hash=new_hash(),
        user_id=user.id,
        csrf_secret="csrf-" + secrets.token_urlsafe(8),
        created_at=now,
        expires_at=now + timedelta(hours=1),
    )
    await store.create_session(session)
    assert await store.get_session(session.token_hash) == session
    assert await store.get_session(new_hash()) is None
    assert await store.delete_session(session.token_hash) is True
    assert await store.delete_session(session.token_hash) is False
    assert await store.get_session(session.token_hash) is None


async def test_expired_sessions_are_swept(store: Store, now: datetime) -> None:
    user = await add_user(store, now)
    old = WebSession(new_hash(), user.id, "a", now - timedelta(hours=2), now - timedelta(hours=1))
    live = WebSession(new_hash(), user.id, "b", now, now + timedelta(hours=1))
    await store.create_session(old)
    await store.create_session(live)
    assert await store.delete_expired_sessions(now) == 1
    assert await store.get_session(old.token_hash) is None
    assert await store.get_session(live.token_hash) == live


async def test_find_app_never_creates(store: Store, now: datetime) -> None:
    assert await store.find_app("https://unknown.example") is None
    created = await store.get_or_create_app("https://known.example", "Known", now)
    assert await store.find_app("https://known.example") == created
    assert await store.find_app("https://unknown.example") is None


async def test_late_settlement_never_resets_a_newer_window(store: Store) -> None:
    """A settlement that raced a day rollover in another process counts towards the
    lifetime total only; it must not wipe the newer day's counter."""
    day_two = datetime(2026, 3, 2, 0, 0, 1, tzinfo=UTC)
    day_one = datetime(2026, 3, 1, 23, 59, 59, tzinfo=UTC)
    user = await add_user(store, day_one)
    key = make_key(user, day_one)
    await store.create_key(key)

    await store.settle("r-new", make_record(key, 7, day_two))
    await store.settle("r-late", make_record(key, 5, day_one))
    stored = await store.get_key(key.hash)
    assert stored is not None
    assert stored.usage.total == 12
    assert stored.usage.daily(day_two) == 7
    assert stored.usage.day_start == datetime(2026, 3, 2, tzinfo=UTC)


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 11, 29, 10, 30, tzinfo=UTC),
        datetime(2026, 11, 29, 11, 30, 0, 5, tzinfo=timezone(timedelta(hours=1))),
        datetime(2026, 11, 29, 10, 30),  # naive: taken as UTC
    ],
    ids=["utc", "+01:00", "naive"],
)
def test_iso_text_is_fixed_width_utc_and_round_trips(moment: datetime) -> None:
    text = iso(moment)
    assert len(text) == len("2026-11-29T10:30:00.000000Z") and text.endswith("Z")
    assert text.startswith("2026-11-29T10:30:00.")
    back = from_iso(text)
    assert back.tzinfo is not None and back == moment.replace(tzinfo=moment.tzinfo or UTC)


# --- metering ----------------------------------------------------------------


def make_record(key: ApiKey, cost: int, at: datetime, record_id: str | None = None) -> Generation:
    return Generation(
        id=record_id or secrets.token_hex(8), key_hash=key.hash, user_id=key.user_id,
        app_id=key.app_id, model="m", provider="p", upstream_model="m", api_type="chat",
        created_at=at, cost=cost, reserved=cost, prompt_tokens=1, completion_tokens=1,
    )  # fmt: skip


def flat(amount: int) -> Ask:
    """An ask of exactly ``amount`` nano-dollars (no output priced)."""
    return Ask(fixed=amount, per_million=0, tokens=0, cap=0)


async def test_concurrent_reserve_and_settle_across_stores_keep_the_ledger(
    store: Store, database_url: str, now: datetime
) -> None:
    """Admissions and settlements of one key racing from two stores all succeed (on
    PostgreSQL a settlement that took the key's row lock after the charge's foreign-key
    lock deadlocked against a queued admission) and usage equals the charges."""
    user = await add_user(store, now)
    key = make_key(user, now)
    await store.create_key(key)

    async def metered_requests(s: Store, count: int) -> None:
        for _ in range(count):
            ticket = secrets.token_hex(8)
            admission = await s.reserve(
                key.hash, ticket, flat(100), now, now + timedelta(minutes=5)
            )
            assert admission.admitted
            await s.settle(ticket, make_record(key, 7, now, ticket))

    async with opened_stores(database_url, 2) as stores:
        await asyncio.gather(*(metered_requests(s, 50) for s in stores for _ in range(8)))

    stored = await store.get_key(key.hash)
    assert stored is not None
    audit = await store.usage_audit(key.hash, now)
    assert (audit.charges, audit.charged, audit.reservations) == (800, 800 * 7, 0)
    assert stored.usage.total == stored.usage.daily(now) == audit.charged


async def test_concurrent_reserves_across_stores_admit_exactly_up_to_the_limit(
    store: Store, database_url: str, now: datetime
) -> None:
    """Admission is serialised per key across stores (processes): with a limit of five
    reservations' worth, exactly five of 40 racing reservations are admitted, and every
    refusal names the key's lifetime limit with nothing left to afford."""
    user = await add_user(store, now)
    key = make_key(user, now, limit=5 * 100)
    await store.create_key(key)
    expires = now + timedelta(minutes=5)

    async with opened_stores(database_url, 2) as stores:
        admissions = await asyncio.gather(
            *(s.reserve(key.hash, f"r{s_i}-{i}", flat(100), now, expires)
              for s_i, s in enumerate(stores) for i in range(20))
        )  # fmt: skip

    admitted = [a for a in admissions if a.admitted]
    refused = [a for a in admissions if not a.admitted]
    assert len(admitted) == 5
    assert {a.refused for a in refused} == {Refusal("key_limit", "total", 0)}
    assert [a.amount for a in admitted] == [100] * 5
    audit = await store.usage_audit(key.hash, now)
    assert (audit.reserved, audit.reservations) == (500, 5)


WEDNESDAY = datetime(2026, 11, 25, 15, 30, tzinfo=UTC)
"""Day 2026-11-25, week from Monday 2026-11-23, month from 2026-11-01 (all UTC)."""


@pytest.mark.parametrize(
    ("reset", "counters", "refused"),
    [
        # Spend in the current window counts: 60 + 40 reserved reaches the limit of 100.
        ("daily", UsageCounters(60, 60, datetime(2026, 11, 25, tzinfo=UTC)), "daily"),
        ("daily", UsageCounters(59, 59, datetime(2026, 11, 25, tzinfo=UTC)), None),
        # A counter stored for an earlier (or a later) window counts as zero.
        ("daily", UsageCounters(500, 500, datetime(2026, 11, 24, tzinfo=UTC)), None),
        ("daily", UsageCounters(500, 500, datetime(2026, 11, 26, tzinfo=UTC)), None),
        ("daily", UsageCounters(500, 500, None), None),
        ("weekly", UsageCounters(60, week=60, week_start=datetime(2026, 11, 23, tzinfo=UTC)),
         "weekly"),
        ("weekly", UsageCounters(500, week=500, week_start=datetime(2026, 11, 16, tzinfo=UTC)),
         None),
        ("monthly", UsageCounters(60, month=60, month_start=datetime(2026, 11, 1, tzinfo=UTC)),
         "monthly"),
        ("monthly", UsageCounters(500, month=500, month_start=datetime(2026, 10, 1, tzinfo=UTC)),
         None),
        # No reset: the lifetime total counts, whatever the windows hold.
        (None, UsageCounters(60, 0, datetime(2026, 11, 24, tzinfo=UTC)), "total"),
        (None, UsageCounters(59, 59, datetime(2026, 11, 25, tzinfo=UTC)), None),
    ],
)  # fmt: skip
async def test_admission_counts_only_the_current_window(
    store: Store, reset: Reset | None, counters: UsageCounters, refused: str | None
) -> None:
    """The store decides as :func:`modelgates.admission.decide` does, counting the
    current window's spend, the live reservations and the request itself, and returns
    the key as it was locked."""
    user = await add_user(store, WEDNESDAY)
    key = make_key(user, WEDNESDAY, limit=100, limit_reset=reset, usage=counters)
    await store.create_key(key)
    expires = WEDNESDAY + timedelta(minutes=5)
    assert (await store.reserve(key.hash, "held", flat(40), WEDNESDAY, expires)).admitted

    admission = await store.reserve(key.hash, "next", flat(1), WEDNESDAY, expires)

    assert admission.key == key
    assert (admission.refused.kind if admission.refused else None) == refused
    remaining = 100 - key.usage.in_window(WEDNESDAY, reset) - 40
    expected = decide([Budget("key_limit", reset or "total", remaining)], flat(1))
    assert admission.refused == expected.refusal
    audit = await store.usage_audit(key.hash, WEDNESDAY)
    assert audit.reservations == (1 if refused else 2)


async def test_reserve_on_unknown_key_admits_nothing(store: Store, now: datetime) -> None:
    admission = await store.reserve(new_hash(), "r", flat(1), now, now + timedelta(minutes=5))
    assert (admission.key, admission.amount, admission.admitted) == (None, 0, False)


@pytest.mark.parametrize("tokens", [None, 3, 16, 50])
@pytest.mark.parametrize("child_limit", [60_000, None])
async def test_admission_draws_on_the_minting_keys_limit_as_decide_does(
    store: Store, tokens: int | None, child_limit: int | None
) -> None:
    """A sub-key's request must fit its own limit and its parent's, where the parent's
    counts its own spend, every sub-key's spend and their live reservations; the store
    decides as :func:`modelgates.admission.decide` (PostgreSQL in PL/pgSQL)."""
    user = await add_user(store, WEDNESDAY)
    parent = make_key(user, WEDNESDAY, limit=100_000, usage=UsageCounters(20_000))
    child = make_key(
        user, WEDNESDAY, limit=child_limit, parent_key_hash=parent.hash,
        usage=UsageCounters(30_000),
    )  # fmt: skip
    sibling = make_key(user, WEDNESDAY, parent_key_hash=parent.hash, usage=UsageCounters(10_000))
    for key in (parent, child, sibling):
        await store.create_key(key)
    expires = WEDNESDAY + timedelta(minutes=5)
    assert (await store.reserve(sibling.hash, "held", flat(5_000), WEDNESDAY, expires)).admitted

    ask = Ask(fixed=1_000, per_million=2_000 * 10**6, tokens=tokens, cap=40)
    admission = await store.reserve(child.hash, "next", ask, WEDNESDAY, expires)

    found = [Budget("parent_key", "total", 100_000 - 20_000 - 30_000 - 10_000 - 5_000)]
    if child_limit is not None:
        found.insert(0, Budget("key_limit", "total", child_limit - 30_000))
    expected = decide(found, ask)
    assert (admission.amount, admission.granted_tokens, admission.refused) == (
        expected.amount, expected.granted_tokens, expected.refusal,
    )  # fmt: skip
    audit = await store.usage_audit(child.hash, WEDNESDAY)
    assert audit.reserved == expected.amount


async def test_apps_are_listed_and_renamed(store: Store, now: datetime) -> None:
    first = await store.get_or_create_app("https://a.example", "A", now)
    second = await store.get_or_create_app("https://b.example", "B", now)
    assert [app.id for app in await store.list_apps()] == [first.id, second.id]
    renamed = await store.rename_app(second.id, "Bee")
    assert renamed is not None and renamed.name == "Bee" and renamed.origin == second.origin
    assert (await store.find_app("https://b.example")) == renamed
    assert await store.rename_app(second.id + 100, "nobody") is None
