"""The SQLite backend's write-ahead log stays bounded under steady writes.

Inline commits on the event loop never pause by themselves, so a checkpoint that
only copies (PASSIVE) never finds the WAL wholly copied, and SQLite would never
start it over: the file would grow with every write for as long as the load
lasts. The store's checkpoint ends with a RESTART while its own writes wait.
"""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from modelgates import tokens
from modelgates.models import AuditEvent, User
from modelgates.store import sqlite as sqlite_store
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
