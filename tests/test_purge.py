"""The background purge (modelgates.purge) and its store methods, on both backends."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from modelgates.app import build_app
from modelgates.container import Services
from modelgates.models import WebSession
from modelgates.purge import purge_forever, purge_once
from modelgates.settings import Settings
from modelgates.store import Store, open_store
from tests.support.clock import FakeClock
from tests.test_store import add_app, add_user, flat, make_code, make_key, make_record, new_hash

RETENTION = 3600


@pytest.fixture
def settings() -> Settings:
    return Settings(used_code_retention_seconds=RETENTION)


async def _code_hashes(store: Store, hashes: list[str]) -> set[str]:
    return {h for h in hashes if await store.get_code(h) is not None}


async def test_codes_purged_by_expiry_and_retention(store: Store, clock: FakeClock) -> None:
    now = clock.now
    user = await add_user(store, now)
    app = await add_app(store, now)
    expired = make_code(
        user, app, now - timedelta(minutes=20), expires_at=now - timedelta(seconds=1)
    )
    live = make_code(user, app, now)
    used_old = make_code(user, app, now - timedelta(hours=3), expires_at=now - timedelta(hours=2))
    used_recent = make_code(user, app, now - timedelta(minutes=5))
    for code in (expired, live, used_old, used_recent):
        await store.create_code(code, code.created_at)
    await store.consume_code(
        used_old.code_hash, now - timedelta(hours=2, minutes=59), make_key(user, now)
    )
    await store.consume_code(used_recent.code_hash, now - timedelta(minutes=4), make_key(user, now))

    deleted = await store.purge_codes(now, now - timedelta(seconds=RETENTION), 500)

    assert deleted == 2
    hashes = [c.code_hash for c in (expired, live, used_old, used_recent)]
    # The used code within retention stays (replay detection), even though it expired.
    assert await _code_hashes(store, hashes) == {live.code_hash, used_recent.code_hash}
    assert await store.purge_codes(now, now - timedelta(seconds=RETENTION), 500) == 0


async def test_a_used_code_is_kept_until_it_expires(store: Store, clock: FakeClock) -> None:
    """With a retention shorter than a code's life, a used code still stays until it
    expires: a replay within its lifetime must be recognised as one."""
    now = clock.now
    user = await add_user(store, now)
    app = await add_app(store, now)
    code = make_code(user, app, now - timedelta(minutes=2), expires_at=now + timedelta(minutes=8))
    await store.create_code(code, code.created_at)
    await store.consume_code(code.code_hash, now - timedelta(minutes=1), make_key(user, now))
    assert await store.purge_codes(now, now, 500) == 0
    later = now + timedelta(minutes=8)
    assert await store.purge_codes(later, later, 500) == 1


def test_sqlite_code_purge_uses_the_expiry_index(tmp_path: Path) -> None:
    """The purge runs on the event loop: it must not scan the whole table."""
    import sqlite3

    from modelgates.store.base import migration_files
    from modelgates.store.sqlite import PURGE_CODES_SQL
    from modelgates.store.sqlite_engine import register_migration_functions

    conn = sqlite3.connect(tmp_path / "plan.db")
    register_migration_functions(conn)
    for path in migration_files("sqlite"):
        conn.executescript(path.read_text())
    plan = " ".join(
        str(row[3]) for row in conn.execute("EXPLAIN QUERY PLAN " + PURGE_CODES_SQL, ("a", "b", 10))
    )
    conn.close()
    assert "auth_codes_by_expiry" in plan and "SCAN auth_codes" not in plan, plan


async def test_purge_deletes_in_bounded_batches(store: Store, clock: FakeClock) -> None:
    now = clock.now
    user = await add_user(store, now)
    app = await add_app(store, now)
    for _ in range(7):
        code = make_code(user, app, now - timedelta(hours=1), expires_at=now - timedelta(minutes=1))
        await store.create_code(code, code.created_at)
    assert await store.purge_codes(now, now, 3) == 3
    assert await store.purge_codes(now, now, 3) == 3
    assert await store.purge_codes(now, now, 3) == 1
    assert await store.purge_codes(now, now, 3) == 0


async def test_sessions_and_reservations_purged_when_expired(
    store: Store, clock: FakeClock
) -> None:
    now = clock.now
    user = await add_user(store, now)
    old = WebSession(new_hash(), user.id, "a", now - timedelta(hours=2), now - timedelta(hours=1))
    live = WebSession(new_hash(), user.id, "b", now, now + timedelta(hours=1))
    await store.create_session(old)
    await store.create_session(live)
    key, idle = make_key(user, now), make_key(user, now)
    await store.create_key(key)
    await store.create_key(idle)
    # reserve() drops a key's own expired reservations; a key never used again keeps them.
    await store.reserve(
        idle.hash, "gone", flat(10), now - timedelta(hours=1), now - timedelta(minutes=1)
    )
    await store.reserve(key.hash, "held", flat(20), now, now + timedelta(minutes=10))

    assert await store.purge_sessions(now, 500) == 1
    assert await store.purge_reservations(now, 500) == 1

    assert await store.get_session(old.token_hash) is None
    assert await store.get_session(live.token_hash) == live
    assert (await store.usage_audit(idle.hash, now - timedelta(hours=2))).reservations == 0
    assert (await store.usage_audit(key.hash, now)).reserved == 20


async def test_purge_once_follows_the_clock(services: Services, clock: FakeClock) -> None:
    store = services.store
    now = clock.now
    user = await add_user(store, now)
    app = await add_app(store, now)
    codes = [make_code(user, app, now) for _ in range(5)]
    for code in codes:
        await store.create_code(code, now)
    await store.create_session(WebSession(new_hash(), user.id, "c", now, now + timedelta(hours=1)))

    assert (await purge_once(services, batch=2, pause=0)).total == 0
    clock.advance(2 * 3600)
    purged = await purge_once(services, batch=2, pause=0)
    assert (purged.codes, purged.sessions, purged.reservations) == (5, 1, 0)


async def test_generation_records_go_after_the_retention_period_and_usage_stays(
    services: Services, clock: FakeClock
) -> None:
    store = services.store
    now = clock.now
    user = await add_user(store, now)
    key = make_key(user, now)
    await store.create_key(key)
    for age_days in (91, 89):
        record = make_record(key, 5, now - timedelta(days=age_days), f"gen-{age_days}")
        await store.settle(record.id, record)

    purged = await purge_once(services, batch=1, pause=0)

    assert purged.generations == 1
    assert await store.get_generation("gen-91") is None
    assert await store.get_generation("gen-89") is not None
    stored = await store.get_key(key.hash)
    assert stored is not None and stored.usage.total == 10  # totals are kept for good


async def test_purge_from_two_processes_at_once_is_safe(
    database_url: str, clock: FakeClock, settings: Settings
) -> None:
    """Idempotent deletes: two stores purging one database together remove each row once."""
    first = await open_store(database_url)
    second = await open_store(database_url)
    try:
        await first.migrate()
        now = clock.now
        user = await add_user(first, now)
        app = await add_app(first, now)
        for _ in range(40):
            code = make_code(user, app, now - timedelta(hours=1), expires_at=now)
            await first.create_code(code, code.created_at)
        services = [Services.build(settings, s, clock=clock) for s in (first, second)]
        results = await asyncio.gather(*(purge_once(svc, batch=7, pause=0) for svc in services))
        assert sum(r.codes for r in results) == 40
    finally:
        await first.close()
        await second.close()


async def test_background_task_runs_after_start_and_stops(
    services: Services, clock: FakeClock
) -> None:
    store = services.store
    now = clock.now
    user = await add_user(store, now)
    app = await add_app(store, now)
    code = make_code(user, app, now - timedelta(hours=1), expires_at=now - timedelta(seconds=1))
    await store.create_code(code, code.created_at)
    quick = replace(services, settings=replace(services.settings, purge_interval_seconds=1))
    task = purge_forever(quick, first_delay=0)
    assert task is not None
    try:
        for _ in range(100):
            if await store.get_code(code.code_hash) is None:
                break
            await asyncio.sleep(0.02)
        assert await store.get_code(code.code_hash) is None
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def test_interval_zero_disables_the_task(services: Services) -> None:
    off = replace(services, settings=replace(services.settings, purge_interval_seconds=0))
    assert purge_forever(off) is None


async def test_lifespan_starts_and_cancels_the_purge_task(tmp_path: Path) -> None:
    """An app that opens its own store purges in the background; shutdown cancels it."""
    app = build_app(Settings(database_url=f"sqlite:///{tmp_path / 'p.db'}"))
    async with app.router.lifespan_context(app):
        names = {t.get_name() for t in asyncio.all_tasks()}
        assert "modelgates-purge" in names
    await asyncio.sleep(0)
    assert "modelgates-purge" not in {t.get_name() for t in asyncio.all_tasks() if not t.done()}
