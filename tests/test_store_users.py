"""The stores' side of user budgets, disabled users and the operator's reads, on SQLite
and PostgreSQL: admission against a user's budget decides as ``admission.decide`` does,
under the user's lock, across stores (processes); settlements keep the user's counters
in step with the keys'; migration 0010 starts the users' counters from their keys'."""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
from contextlib import closing
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import asyncpg
import pytest

from modelgates.admission import Ask, Budget, decide
from modelgates.models import Refusal
from modelgates.store import Store, open_store
from modelgates.store.base import iso, migration_files
from modelgates.store.sqlite_engine import register_migration_functions
from modelgates.windows import Reset, UsageCounters
from tests.test_store import (
    WEDNESDAY,
    add_user,
    flat,
    make_key,
    make_record,
    make_user,
    opened_stores,
)

EXPIRES = WEDNESDAY + timedelta(minutes=5)


async def budgeted_user(
    store: Store, limit: int, reset: Reset | None = None, usage: UsageCounters | None = None
) -> str:
    user = make_user(WEDNESDAY)
    await store.create_user(replace(user, limit=limit, limit_reset=reset))
    if usage is not None:  # as settlements would have left it
        settled = make_key(user, WEDNESDAY)
        await store.create_key(settled)
        for i, (cost, at) in enumerate(_charges(usage)):
            await store.settle(f"seed{i}", make_record(settled, cost, at))
    return user.id


def _charges(usage: UsageCounters) -> list[tuple[int, datetime]]:
    """Charges that leave a user's counters as ``usage`` says (within WEDNESDAY's month)."""
    assert usage.day_start is None or usage.day_start.date() == WEDNESDAY.date()
    older = usage.total - usage.month
    charges = [(older, WEDNESDAY - timedelta(days=40))] if older else []
    earlier_in_month = usage.month - usage.day
    if earlier_in_month:
        charges.append((earlier_in_month, datetime(2026, 11, 2, 12, tzinfo=UTC)))
    if usage.day:
        charges.append((usage.day, WEDNESDAY))
    return charges


@pytest.mark.parametrize(
    ("reset", "usage", "refused"),
    [
        # Spend in the budget's window counts: 60 spent + 40 held reaches a budget of 100.
        ("daily", UsageCounters(60, 60, month=60), "daily"),
        ("daily", UsageCounters(59, 59, month=59), None),
        ("monthly", UsageCounters(90, 30, month=60), "monthly"),
        ("monthly", UsageCounters(500, 0, month=59), None),  # earlier months do not count
        (None, UsageCounters(60, 0, month=0), "total"),
        (None, UsageCounters(59, 59, month=59), None),
    ],
)  # fmt: skip
async def test_admission_counts_the_users_window_spend_and_every_keys_reservations(
    store: Store, reset: Reset | None, usage: UsageCounters, refused: str | None
) -> None:
    usage = replace(usage, day_start=WEDNESDAY if usage.day else None)
    user_id = await budgeted_user(store, 100, reset, usage)
    user = await store.get_user(user_id)
    assert user is not None
    one, two = (make_key(user, WEDNESDAY) for _ in range(2))
    await store.create_key(one)
    await store.create_key(two)
    assert (await store.reserve(one.hash, "held", flat(40), WEDNESDAY, EXPIRES)).admitted

    admission = await store.reserve(two.hash, "next", flat(1), WEDNESDAY, EXPIRES)

    spent = user.usage.in_window(WEDNESDAY, reset)
    expected = decide([Budget("user_budget", reset or "total", 100 - spent - 40)], flat(1))
    assert admission.refused == expected.refusal
    assert (admission.refused.kind if admission.refused else None) == refused


@pytest.mark.parametrize("tokens", [None, 3, 16, 50])
@pytest.mark.parametrize(
    ("key_limit", "budget"), [(60_000, 40_000), (30_000, 40_000), (None, 9_000)]
)
async def test_admission_draws_on_the_key_and_the_user_as_decide_does(
    store: Store, tokens: int | None, key_limit: int | None, budget: int
) -> None:
    user_id = await budgeted_user(store, budget)
    user = await store.get_user(user_id)
    assert user is not None
    key = make_key(user, WEDNESDAY, limit=key_limit)
    sibling = make_key(user, WEDNESDAY)
    await store.create_key(key)
    await store.create_key(sibling)
    assert (await store.reserve(sibling.hash, "held", flat(5_000), WEDNESDAY, EXPIRES)).admitted

    ask = Ask(fixed=1_000, per_million=2_000 * 10**6, tokens=tokens, cap=40)
    admission = await store.reserve(key.hash, "next", ask, WEDNESDAY, EXPIRES)

    found = [Budget("user_budget", "total", budget - 5_000)]
    if key_limit is not None:
        found.insert(0, Budget("key_limit", "total", key_limit))
    expected = decide(found, ask)
    assert (admission.amount, admission.granted_tokens, admission.refused) == (
        expected.amount, expected.granted_tokens, expected.refusal,
    )  # fmt: skip


async def test_a_disabled_users_keys_are_not_admitted(store: Store) -> None:
    user = await add_user(store, WEDNESDAY)
    key = make_key(user, WEDNESDAY, limit=1_000)
    await store.create_key(key)
    await store.update_user(user.id, WEDNESDAY, disabled=True)

    admission = await store.reserve(key.hash, "r", flat(1), WEDNESDAY, EXPIRES)

    assert admission.user_disabled and not admission.admitted and admission.amount == 0
    stored = await store.get_key(key.hash)
    assert stored is not None and stored.user_disabled and not stored.user_budgeted
    assert (await store.usage_audit(key.hash, WEDNESDAY)).reservations == 0


async def test_concurrent_admissions_on_three_keys_across_stores_stop_at_the_budget(
    store: Store, database_url: str
) -> None:
    """The user's row serialises admissions of all their keys across stores: with a budget
    of seven reservations' worth, exactly seven of 60 racing on three keys get in."""
    user_id = await budgeted_user(store, 7 * 100)
    user = await store.get_user(user_id)
    assert user is not None
    keys = [make_key(user, WEDNESDAY) for _ in range(3)]
    for key in keys:
        await store.create_key(key)

    async with opened_stores(database_url, 2) as stores:
        admissions = await asyncio.gather(
            *(s.reserve(keys[i % 3].hash, f"r{n}-{i}", flat(100), WEDNESDAY, EXPIRES)
              for n, s in enumerate(stores) for i in range(30))
        )  # fmt: skip

    assert sum(a.admitted for a in admissions) == 7
    assert {a.refused for a in admissions if not a.admitted} == {Refusal("user_budget", "total", 0)}
    audit = await store.user_usage_audit(user_id, WEDNESDAY)
    assert (audit.reserved, audit.reservations) == (700, 7)


async def test_settlements_keep_the_user_in_step_with_their_keys(
    store: Store, database_url: str
) -> None:
    user = await add_user(store, WEDNESDAY)
    keys = [make_key(user, WEDNESDAY, limit=10**9) for _ in range(3)]
    for key in keys:
        await store.create_key(key)

    async def requests(s: Store, key_index: int) -> None:
        for _ in range(20):
            ticket = secrets.token_hex(8)
            assert (
                await s.reserve(keys[key_index].hash, ticket, flat(50), WEDNESDAY, EXPIRES)
            ).admitted
            await s.settle(ticket, make_record(keys[key_index], 7, WEDNESDAY, ticket))

    async with opened_stores(database_url, 2) as stores:
        await asyncio.gather(*(requests(s, i) for s in stores for i in range(3)))

    stored = await store.get_user(user.id)
    assert stored is not None
    audit = await store.user_usage_audit(user.id, WEDNESDAY)
    key_usage = [(await store.get_key(k.hash)).usage.total for k in keys]  # type: ignore[union-attr]
    assert stored.usage.total == sum(key_usage) == audit.charged == 2 * 3 * 20 * 7
    assert stored.usage.daily(WEDNESDAY) == stored.usage.monthly(WEDNESDAY) == audit.charged
    assert audit.reservations == 0


async def test_update_user_changes_only_the_given_fields(store: Store) -> None:
    user = await add_user(store, WEDNESDAY)
    later = WEDNESDAY + timedelta(hours=1)

    budgeted = await store.update_user(user.id, later, limit=5_000, limit_reset="weekly")
    assert budgeted is not None
    assert (budgeted.limit, budgeted.limit_reset, budgeted.disabled, budgeted.is_admin) == (
        5_000, "weekly", False, False,
    )  # fmt: skip
    assert budgeted.updated_at == later
    promoted = await store.update_user(user.id, later, is_admin=True, disabled=True)
    assert promoted is not None
    assert (promoted.limit, promoted.is_admin, promoted.disabled) == (5_000, True, True)
    cleared = await store.update_user(user.id, later, limit=None, limit_reset=None)
    assert cleared is not None and (cleared.limit, cleared.limit_reset) == (None, None)
    assert await store.get_user(user.id) == cleared
    assert await store.update_user("user_nobody", later, disabled=True) is None


async def test_users_are_listed_searched_and_summarised(store: Store) -> None:
    ada = replace(make_user(WEDNESDAY, email="ada@example.com"))
    bob = replace(make_user(WEDNESDAY + timedelta(seconds=1), email="bob_b@example.org"))
    for user in (ada, bob):
        await store.create_user(user)
    used = make_key(ada, WEDNESDAY, last_used_at=WEDNESDAY + timedelta(hours=2))
    revoked = make_key(ada, WEDNESDAY, revoked_at=WEDNESDAY)
    for key in (used, revoked, make_key(ada, WEDNESDAY)):
        await store.create_key(key)

    everyone = await store.list_users(search=None, offset=0, limit=10)
    assert [s.user.email for s in everyone] == ["ada@example.com", "bob_b@example.org"]
    assert (everyone[0].keys, everyone[0].last_used_at) == (2, WEDNESDAY + timedelta(hours=2))
    assert (everyone[1].keys, everyone[1].last_used_at) == (0, None)
    assert [s.user.id for s in await store.list_users(search="ADA", offset=0, limit=10)] == [ada.id]
    # LIKE's wildcards are literal in a search.
    assert [s.user.id for s in await store.list_users(search="b_b", offset=0, limit=10)] == [bob.id]
    assert await store.list_users(search="%", offset=0, limit=10) == []
    assert [s.user.id for s in await store.list_users(search=None, offset=1, limit=10)] == [bob.id]
    listed = await store.list_every_key(offset=0, limit=10)
    assert revoked.hash not in {key.hash for key in listed} and len(listed) == 2


async def test_spend_by_day_sums_the_records_of_every_key_per_utc_day(store: Store) -> None:
    user = await add_user(store, WEDNESDAY)
    key = make_key(user, WEDNESDAY)
    await store.create_key(key)
    moments = [WEDNESDAY, WEDNESDAY + timedelta(hours=8), WEDNESDAY + timedelta(days=2)]
    for i, at in enumerate(moments):
        await store.settle(f"r{i}", make_record(key, 100 * (i + 1), at))

    days = await store.spend_by_day(WEDNESDAY - timedelta(days=1), WEDNESDAY + timedelta(days=3))

    assert [(d.day, d.cost, d.requests) for d in days] == [
        (date(2026, 11, 25), 300, 2), (date(2026, 11, 27), 300, 1),
    ]  # fmt: skip
    assert (
        await store.spend_by_day(WEDNESDAY + timedelta(days=3), WEDNESDAY + timedelta(days=4)) == []
    )


TWO_USERS = (
    "INSERT INTO users (id, email, password_hash, workspace_id, created_at)"
    " VALUES ('u1', 'a@example.com', '', 'w', $1), ('u2', 'b@example.com', '', 'w', $1)"
)


async def test_migration_0010_starts_the_users_counters_from_their_keys(
    empty_database_url: str,
) -> None:
    """Keys with spend before the migration: each user's lifetime counter is their keys'
    sum, and each window counter the sum over the keys in the latest window."""
    day, earlier = "2026-11-25T00:00:00.000000Z", "2026-11-24T00:00:00.000000Z"
    month = "2026-11-01T00:00:00.000000Z"
    keys = [
        # usage, day counter and start, month counter and start
        (100, 10, day, 60, month),
        (50, 5, earlier, 50, month),
        (7, 0, None, 0, None),
    ]
    before = [p for p in migration_files("sqlite") if p.stem < "0010"]
    if empty_database_url.startswith("sqlite:"):
        path = empty_database_url.removeprefix("sqlite:///")
        with closing(sqlite3.connect(path)) as conn:
            register_migration_functions(conn)
            conn.execute(
                "CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
            )
            for migration in before:
                conn.executescript(migration.read_text())
                conn.execute("INSERT INTO schema_migrations VALUES (?, ?)", (migration.stem, day))
            conn.execute(TWO_USERS.replace("$1", "?"), (day, day))
            for i, (total, daily, day_start, monthly, month_start) in enumerate(keys):
                conn.execute(
                    "INSERT INTO api_keys (hash, user_id, name, label, created_at, usage_nanos,"
                    " usage_day_nanos, usage_day_start, usage_month_nanos, usage_month_start)"
                    " VALUES (?, 'u1', 'k', 'k', ?, ?, ?, ?, ?, ?)",
                    (f"h{i}", day, total, daily, day_start, monthly, month_start),
                )
            conn.commit()
    else:
        pg = await asyncpg.connect(empty_database_url)
        try:
            await pg.execute("CREATE TABLE schema_migrations (name text PRIMARY KEY,"
                             " applied_at timestamptz NOT NULL DEFAULT now())")  # fmt: skip
            for migration in (p for p in migration_files("postgres") if p.stem < "0010"):
                await pg.execute(migration.read_text())
                await pg.execute("INSERT INTO schema_migrations (name) VALUES ($1)", migration.stem)
            stamp = datetime.fromisoformat(day)
            await pg.execute(TWO_USERS, stamp)
            for i, (total, daily, day_start, monthly, month_start) in enumerate(keys):
                await pg.execute(
                    "INSERT INTO api_keys (hash, user_id, name, label, created_at, usage_nanos,"
                    " usage_day_nanos, usage_day_start, usage_month_nanos, usage_month_start)"
                    " VALUES ($1, 'u1', 'k', 'k', $2, $3, $4, $5, $6, $7)",
                    f"h{i}", stamp, total, daily,
                    None if day_start is None else datetime.fromisoformat(day_start), monthly,
                    None if month_start is None else datetime.fromisoformat(month_start),
                )  # fmt: skip
        finally:
            await pg.close()

    store = await open_store(empty_database_url, pool_size=2)
    try:
        assert "0010_user_budgets" in await store.migrate()
        first, second = await store.get_user("u1"), await store.get_user("u2")
    finally:
        await store.close()
    assert first is not None and second is not None
    moment = datetime.fromisoformat(day) + timedelta(hours=1)
    assert first.usage.total == 157
    assert first.usage.daily(moment) == 10  # the key of the earlier day counts zero
    assert first.usage.monthly(moment) == 110
    assert iso(first.usage.month_start) == month  # type: ignore[arg-type]
    assert (second.usage.total, second.usage.daily(moment), second.limit, second.disabled) == (
        0, 0, None, False,
    )  # fmt: skip
