"""The SQLite engine: connections, the write path (inline group commit, the lock
poller, the writer thread), checkpoints and migrations.

One file in WAL mode. Reads run inline on the event loop on their own
connection (a point read is tens of microseconds, cheaper than a thread hop).
Writes run in ``BEGIN IMMEDIATE`` transactions, so that the write lock is
taken up front. A short write runs inline on the event loop too, on a
connection that does not wait for the lock (``busy_timeout = 0``): with WAL
and ``synchronous = NORMAL`` a commit does not fsync, so it costs tens of
microseconds, less than the hop to a thread and back.

Inline writes are group-committed: the first write of a loop turn begins the
transaction and schedules its commit after the turn's other callbacks; every
write of that turn runs in its own savepoint inside it (a failing one undoes
only itself), and each caller returns only after the shared commit. Under load
one commit then carries several requests' writes, and the pages they share
(a table's last leaf, an index's newest entries) reach the WAL once instead of
once per request.

When the lock is taken (by another process sharing the file, or by the writer
thread), writes wait on the loop: one task per process polls for the lock at
short intervals and every waiting write then joins the batch it opens. Only
after ``LOCK_POLL_S`` does a write queue on the one writer thread, where
``busy_timeout`` makes it wait rather than fail. (SQLite's busy handler sleeps
in steps of up to 100 ms: with two workers on one file, writes that waited
there saw a p99 above a second, against about 40 ms when polled.) Long writes
(migrations, session purges) always run on the thread; so do checkpoints, the
only fsyncs, never on the loop.

Every ``CHECKPOINT_EVERY`` inline commits, a checkpoint copies the WAL back into
the database in two steps. A PASSIVE one copies what is committed while writes
go on. Inline commits keep appending meanwhile, so the WAL would never be wholly
copied, and SQLite starts it over only then: the file would grow without bound
under steady writes. So a RESTART follows, which copies the few frames left
while this process's writes wait for it (on an event, not on the thread: writes
sent to the thread while it is busy would keep colliding with the lock and pile
up there). It gives up after ``RESTART_BUSY_TIMEOUT_MS`` if another process
holds the lock, and is tried again at the next checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Self, TypeVar

from modelgates import pkce
from modelgates.errors import StoreError
from modelgates.store.base import migration_files

T = TypeVar("T")

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 10_000
CHECKPOINT_EVERY = 4_000
"""Inline writes between two checkpoints handed to the writer thread (the WAL's
own automatic checkpoint is off on the inline connection: it would fsync on the loop).
With group commit a write adds about 8 KiB to the WAL, so it peaks near 30-40 MB.
Checkpointing every 1,000 writes instead cost 10 % more CPU per code creation: a
page rewritten often is copied once per checkpoint, so fewer checkpoints copy it
fewer times."""
LOCK_POLL_FIRST_S = 0.000_2
LOCK_POLL_MAX_S = 0.002
LOCK_POLL_S = 2.0
"""How a write waits on the loop for a write lock another connection holds: polls
0.2 ms apart, doubling up to 2 ms, for up to 2 s before it queues on the thread."""
RESTART_BUSY_TIMEOUT_MS = 200


def path_from_url(url: str) -> str:
    """``sqlite:///relative.db`` → ``relative.db``; ``sqlite:////abs.db`` → ``/abs.db``."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or len(url) == len(prefix):
        raise ValueError("SQLite URLs look like sqlite:///path/to/file.db")
    return url[len(prefix) :]


def _connect(path: str, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


class _Batch:
    """The writes of one loop turn: one transaction, one commit (group commit)."""

    __slots__ = ("failure", "waiters")

    def __init__(self) -> None:
        self.waiters: list[asyncio.Future[None]] = []
        self.failure: BaseException | None = None


class SqliteEngine:
    """The plumbing every SQLite query runs on: the read connection (``_one``,
    ``_reader``) and the write path (``_write``). :class:`~modelgates.store.sqlite.
    SqliteStore` adds the queries."""

    dialect = "sqlite"

    def __init__(self, path: str) -> None:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._writer_conn: sqlite3.Connection | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        self._reader = _connect(path)
        self._inline: sqlite3.Connection | None = None
        self._inline_commits = 0
        self._batch: _Batch | None = None
        self._lock_poll: asyncio.Task[bool] | None = None
        self._checkpoint_task: asyncio.Task[None] | None = None
        self._writes_resume: asyncio.Event | None = None
        """Set while a RESTART checkpoint runs: inline writes wait for it."""

    @classmethod
    def from_url(cls, url: str) -> Self:
        return cls(path_from_url(url))

    # plumbing ---------------------------------------------------------
    def _writer(self) -> sqlite3.Connection:
        if self._writer_conn is None:
            self._writer_conn = _connect(self.path)
        return self._writer_conn

    def _inline_writer(self) -> sqlite3.Connection:
        if self._inline is None:
            conn = _connect(self.path, busy_timeout_ms=0)
            conn.execute("PRAGMA wal_autocheckpoint = 0")
            self._inline = conn
        return self._inline

    async def _write(self, work: Callable[[sqlite3.Connection], T], *, inline: bool = True) -> T:
        """Run ``work`` in a ``BEGIN IMMEDIATE`` transaction and return once it is
        committed. Inline (unless ``inline`` is false): on the loop, sharing the
        transaction of this loop turn's other writes (group commit), waiting on the
        loop if another connection holds the lock; alone on the writer thread when
        that wait runs past ``LOCK_POLL_S``, or when not inline."""
        if self._writes_resume is not None:
            await self._writes_resume.wait()
        if inline and self.path != ":memory:":
            while True:
                batch = self._batch or self._open_batch()
                if batch is not None:
                    return await self._write_in_batch(batch, work)
                if not await self._lock_freed():
                    break  # held for long: wait on the thread, with busy_timeout
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, self._transaction, work
        )

    async def _lock_freed(self) -> bool:
        """Wait until the write lock another connection holds is free (``True``), or
        ``LOCK_POLL_S`` has passed (``False``). One task per process polls, with short
        sleeps; every waiting write shares it. SQLite's own busy handler (on the
        thread) sleeps in steps of up to 100 ms, so writes queued behind another
        process's group commits would wait far longer than its commits take."""
        poll = self._lock_poll
        if poll is None or poll.done():
            poll = self._lock_poll = asyncio.get_running_loop().create_task(self._poll_lock())
        return await asyncio.shield(poll)

    async def _poll_lock(self) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LOCK_POLL_S
        delay = LOCK_POLL_FIRST_S
        while loop.time() < deadline:
            await asyncio.sleep(delay)
            if self._batch is not None or self._open_batch() is not None:
                return True
            delay = min(2 * delay, LOCK_POLL_MAX_S)
        return False

    def _open_batch(self) -> _Batch | None:
        """Begin the inline transaction this loop turn's writes share, and schedule its
        commit after them; ``None`` if another connection holds the write lock."""
        conn = self._inline_writer()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:
            return None  # the lock is taken (another process, or the writer thread)
        batch = self._batch = _Batch()
        asyncio.get_running_loop().call_soon(self._commit_batch, batch)
        return batch

    async def _write_in_batch(self, batch: _Batch, work: Callable[[sqlite3.Connection], T]) -> T:
        """``work`` inside its own savepoint of the shared transaction, so that its
        failure undoes only its own changes; then wait for the shared commit."""
        conn = self._inline_writer()
        conn.execute("SAVEPOINT unit")
        try:
            result = work(conn)
            conn.execute("RELEASE unit")
        except BaseException:
            self._undo_unit(conn, batch)
            raise
        committed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        batch.waiters.append(committed)
        await committed
        return result

    def _undo_unit(self, conn: sqlite3.Connection, batch: _Batch) -> None:
        """Roll a failed write back to its savepoint. If SQLite already rolled the whole
        transaction back (or cannot roll back to the savepoint), the writes before it
        in this batch are lost: the batch is marked failed so they are not told
        otherwise, and later writes start a new batch."""
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK TO unit")
                conn.execute("RELEASE unit")
                return
        except sqlite3.Error:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        batch.failure = StoreError("a write failed and took its transaction with it")
        if self._batch is batch:
            self._batch = None

    def _commit_batch(self, batch: _Batch) -> None:
        """Commit a loop turn's writes and wake their writers (with the error if any)."""
        if self._batch is batch:
            self._batch = None
        conn = self._inline_writer()
        failure = batch.failure
        if failure is None:
            try:
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                failure = exc
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
        for waiter in batch.waiters:
            if waiter.done():  # its request was cancelled; its write stands
                continue
            if failure is None:
                waiter.set_result(None)
            else:  # one exception per writer: each raises it in its own task
                error = StoreError(f"the shared commit failed: {failure!r}")
                error.__cause__ = failure
                waiter.set_exception(error)
        if failure is None:
            self._inline_commits += len(batch.waiters)
            if self._inline_commits >= CHECKPOINT_EVERY:
                self._inline_commits = 0
                self._checkpoint_soon()

    def _transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._writer()
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = work(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    def _checkpoint_soon(self) -> None:
        """Start a checkpoint in the background unless one is running."""
        if self._checkpoint_task is None or self._checkpoint_task.done():
            self._checkpoint_task = asyncio.get_running_loop().create_task(self._checkpoint())

    async def _checkpoint(self) -> None:
        """Copy the WAL into the database and start it over (see the module docstring)."""
        loop = asyncio.get_running_loop()

        def passive() -> None:
            self._writer().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

        def restart() -> None:
            conn = self._writer()
            conn.execute(f"PRAGMA busy_timeout = {RESTART_BUSY_TIMEOUT_MS}")
            try:
                conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()
            finally:
                conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")

        try:
            await loop.run_in_executor(self._executor, passive)
            resume = self._writes_resume = asyncio.Event()
            try:
                await loop.run_in_executor(self._executor, restart)
            finally:
                self._writes_resume = None
                resume.set()
        except sqlite3.Error as exc:  # the next checkpoint tries again
            log.warning("SQLite checkpoint failed: %r", exc)

    def _one(self, sql: str, params: tuple[Any, ...]) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self._reader.execute(sql, params).fetchone()
        return row

    # life cycle -------------------------------------------------------
    async def migrate(self) -> list[str]:
        def apply(conn: sqlite3.Connection) -> list[str]:
            register_migration_functions(conn)
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations"
                " (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
            )
            done = {r["name"] for r in conn.execute("SELECT name FROM schema_migrations")}
            applied = []
            for path in migration_files(self.dialect):
                if path.stem in done:
                    continue
                for statement in _statements(path.read_text()):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations (name, applied_at)"
                    " VALUES (?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
                    (path.stem,),
                )
                applied.append(path.stem)
            return applied

        return await self._write(apply, inline=False)

    async def close(self) -> None:
        if self._checkpoint_task is not None:
            await self._checkpoint_task
        if self._lock_poll is not None and not self._lock_poll.done():
            self._lock_poll.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._lock_poll

        def close_writer() -> None:
            if self._writer_conn is not None:
                self._writer_conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                self._writer_conn.close()
                self._writer_conn = None

        await asyncio.get_running_loop().run_in_executor(self._executor, close_writer)
        self._executor.shutdown(wait=True)
        if self._inline is not None:
            self._inline.close()
            self._inline = None
        self._reader.close()

    async def ping(self) -> None:
        self._reader.execute("SELECT 1").fetchone()


def register_migration_functions(conn: sqlite3.Connection) -> None:
    """The functions the migrations call that SQLite lacks (0007: SHA-256, as
    :func:`modelgates.pkce.s256`); needed by anything that applies them."""
    conn.create_function("modelgates_pkce_s256", 1, pkce.s256, deterministic=True)


def _statements(script: str) -> list[str]:
    """Split a migration into complete statements (``executescript`` would commit)."""
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        if line.lstrip().startswith("--") and not buffer.strip():
            continue
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        raise ValueError("migration ends with an incomplete statement")
    return statements
