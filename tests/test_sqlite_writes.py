"""How the SQLite backend writes: group commit, and a bounded write-ahead log.

Writes issued in the same loop turn share one transaction; each runs in its own
savepoint, so one failing leaves the others intact, and each caller returns only
once the shared commit is done.

Inline commits on the event loop never pause by themselves, so a checkpoint that
only copies (PASSIVE) never finds the WAL wholly copied, and SQLite would never
start it over: the file would grow with every write for as long as the load
lasts. The store's checkpoint ends with a RESTART while its own writes wait.
"""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from modelgates import tokens
from modelgates.errors import DuplicateEmail, StoreError
from modelgates.models import AuditEvent, User
from modelgates.store import sqlite_engine as sqlite_store
from modelgates.store.sqlite import SqliteStore

CHECKPOINT_EVERY = 50
WRITES = 3_000
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def event(n: int) -> AuditEvent:
    return AuditEvent(
        id=0,
        at=NOW + timedelta(microseconds=n),
        event="key.issued",
        actor="system",
        user_id=None,
        # A random hash per row touches a random page of the by-key index, as keys do.
        key_hash=tokens.sha256_hex(secrets.token_hex(16)),
        detail={"n": n, "padding": "x" * 200},
    )


@pytest.fixture
async def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SqliteStore:
    monkeypatch.setattr(sqlite_store, "CHECKPOINT_EVERY", CHECKPOINT_EVERY)
    opened = SqliteStore(str(tmp_path / "wal.db"))
    await opened.migrate()
    return opened


async def test_wal_stays_bounded_under_steady_inline_writes(
    store: SqliteStore, tmp_path: Path
) -> None:
    wal = tmp_path / "wal.db-wal"
    largest = 0
    try:
        for n in range(WRITES):
            await store.record_event(event(n))
            if n % 100 == 0:
                # A server's loop yields between requests: let a checkpoint finish.
                await asyncio.sleep(0.002)
                largest = max(largest, wal.stat().st_size if wal.exists() else 0)
        assert len(await store.list_events(limit=WRITES + 1)) == WRITES
    finally:
        await store.close()
    # Each write appends a few 4 KiB pages: without restarts the WAL would hold all
    # of them (over 50 MB); with them it holds a few checkpoint intervals at most.
    per_interval = CHECKPOINT_EVERY * 8 * 4096
    assert largest < 5 * per_interval, f"WAL grew to {largest} bytes"


async def test_writes_during_a_checkpoint_wait_and_all_land(store: SqliteStore) -> None:
    user = User("user_wal", "wal@example.com", "hash", "ws_wal", NOW)
    await store.create_user(user)
    try:
        # Many concurrent writers: some arrive while a RESTART holds writes back.
        await asyncio.gather(*(store.record_event(event(n)) for n in range(WRITES // 3)))
        assert len(await store.list_events(limit=WRITES)) == WRITES // 3
    finally:
        await store.close()


async def test_checkpoint_gives_up_while_another_process_writes(
    store: SqliteStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process holding the write lock makes the RESTART give up after
    RESTART_BUSY_TIMEOUT_MS: this process's writes are held back only that long."""
    monkeypatch.setattr(sqlite_store, "RESTART_BUSY_TIMEOUT_MS", 50)
    for n in range(10):
        await store.record_event(event(n))
    other = sqlite3.connect(tmp_path / "wal.db", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        started = asyncio.get_running_loop().time()
        await asyncio.wait_for(store._checkpoint(), timeout=5)
        assert asyncio.get_running_loop().time() - started < 2
        other.execute("COMMIT")
        await asyncio.wait_for(store.record_event(event(10)), timeout=5)
        assert len(await store.list_events(limit=WRITES)) == 11
    finally:
        other.close()
        await store.close()


def user(name: str) -> User:
    return User(f"user_{name}", f"{name}@example.com", "hash", f"ws_{name}", NOW)


async def test_a_failing_write_leaves_the_rest_of_its_group_intact(store: SqliteStore) -> None:
    await store.create_user(user("taken"))
    try:
        results = await asyncio.gather(
            store.create_user(user("a")),
            store.create_user(User("user_dup", "taken@example.com", "h", "ws", NOW)),
            store.create_user(user("b")),
            return_exceptions=True,
        )
        assert results[0] is None and results[2] is None
        assert isinstance(results[1], DuplicateEmail)
        assert await store.get_user("user_a") is not None
        assert await store.get_user("user_b") is not None
        assert await store.get_user("user_dup") is None
    finally:
        await store.close()


async def test_a_failed_shared_commit_fails_every_write_in_it(store: SqliteStore) -> None:
    """A deferred constraint fails at COMMIT: every caller of that commit must hear
    of it (a 503), and none of their rows may remain."""
    await store._write(
        lambda conn: conn.execute(
            "CREATE TABLE probe (id INTEGER PRIMARY KEY, parent TEXT"
            " REFERENCES users (id) DEFERRABLE INITIALLY DEFERRED)"
        ),
        inline=False,
    )
    await store.create_user(user("parent"))

    def insert(row_id: int, parent: str) -> Awaitable[sqlite3.Cursor]:
        return store._write(
            lambda conn: conn.execute("INSERT INTO probe VALUES (?, ?)", (row_id, parent))
        )

    try:
        results = await asyncio.gather(
            insert(1, "user_parent"), insert(2, "user_missing"), return_exceptions=True
        )
        assert all(isinstance(r, StoreError) for r in results), results
        count = await store._write(
            lambda conn: conn.execute("SELECT count(*) FROM probe").fetchone()[0]
        )
        assert count == 0
        await insert(3, "user_parent")  # the next group commits normally
    finally:
        await store.close()


async def test_a_write_whose_caller_was_cancelled_still_lands(store: SqliteStore) -> None:
    try:
        writing = asyncio.ensure_future(store.create_user(user("cancelled")))
        await asyncio.sleep(0)  # the write ran; its caller now waits for the commit
        writing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await writing
        await asyncio.sleep(0)
        assert await store.get_user("user_cancelled") is not None
    finally:
        await store.close()


def wal_frames(path: str) -> int:
    """Frames in the WAL (a PASSIVE checkpoint reports them; it never resets the log)."""
    conn = sqlite3.connect(path)
    try:
        frames: int = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]
        return frames
    finally:
        conn.close()


async def test_writes_of_one_turn_share_one_commit(store: SqliteStore) -> None:
    """Group commit: ten writes issued together append one transaction's pages to
    the WAL, not ten transactions' (each of which rewrites the same last pages)."""
    try:
        before = wal_frames(store.path)
        await asyncio.gather(*(store.record_event(event(n)) for n in range(10)))
        together = wal_frames(store.path) - before
        for n in range(10):
            await store.record_event(event(n))
        one_by_one = wal_frames(store.path) - before - together
        assert together * 2 < one_by_one, (together, one_by_one)
    finally:
        await store.close()


@pytest.mark.parametrize("poll_s", [2.0, 0.01], ids=["poll-on-the-loop", "then-the-thread"])
async def test_writes_wait_for_a_lock_another_process_holds(
    store: SqliteStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, poll_s: float
) -> None:
    """Writes finding the lock taken poll for it on the loop (one poller for all of
    them), and after ``LOCK_POLL_S`` queue on the writer thread; either way they all
    land once the other process lets go, and the loop stays free meanwhile."""
    monkeypatch.setattr(sqlite_store, "LOCK_POLL_S", poll_s)
    other = sqlite3.connect(tmp_path / "wal.db", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        writes = asyncio.gather(*(store.record_event(event(n)) for n in range(20)))
        ticks = 0
        loop = asyncio.get_running_loop()
        until = loop.time() + 0.3
        while loop.time() < until:  # the loop keeps running while the writes wait
            await asyncio.sleep(0.01)
            ticks += 1
        assert ticks >= 10 and not writes.done()
        other.execute("COMMIT")
        released = loop.time()
        await asyncio.wait_for(writes, timeout=10)
        if poll_s > 1:
            assert loop.time() - released < 0.5
        assert len(await store.list_events(limit=100)) == 20
    finally:
        other.close()
        await store.close()


async def test_a_write_holds_the_lock_only_while_its_batch_runs(
    store: SqliteStore, tmp_path: Path
) -> None:
    """With several workers on one file, a batch that took the write lock when its
    first write came in would hold it through the rest of the loop turn (other
    requests' parsing, JSON, upstream I/O), while the other worker's writes wait.
    The writes of a turn are queued and run together at its end instead."""
    other = sqlite3.connect(tmp_path / "wal.db", isolation_level=None, timeout=0)
    try:
        writing = asyncio.ensure_future(store.record_event(event(0)))
        await asyncio.sleep(0)  # the write is queued; the rest of the turn runs now
        other.execute("BEGIN IMMEDIATE")  # raises "database is locked" if it were held
        other.execute("COMMIT")
        await asyncio.wait_for(writing, timeout=5)
        assert len(await store.list_events(limit=10)) == 1
    finally:
        other.close()
        await store.close()


async def test_writes_arriving_while_the_lock_is_taken_join_the_waiting_batch(
    store: SqliteStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch waiting for another process's lock takes every write that comes in
    meanwhile: one transaction once the lock is free, not one per poll or per turn."""
    sizes: list[int] = []
    run_units = sqlite_store._run_units

    def recording(conn: sqlite3.Connection, units: list[Any]) -> Any:
        sizes.append(len(units))
        return run_units(conn, units)

    monkeypatch.setattr(sqlite_store, "_run_units", recording)
    other = sqlite3.connect(tmp_path / "wal.db", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        first = asyncio.gather(*(store.record_event(event(n)) for n in range(5)))
        await asyncio.sleep(0.05)  # the first five wait for the lock
        later = asyncio.gather(*(store.record_event(event(n)) for n in range(5, 10)))
        await asyncio.sleep(0.05)
        assert not first.done() and not later.done()
        other.execute("COMMIT")
        await asyncio.wait_for(asyncio.gather(first, later), timeout=5)
        assert sizes == [10]
        assert len(await store.list_events(limit=100)) == 10
    finally:
        other.close()
        await store.close()
