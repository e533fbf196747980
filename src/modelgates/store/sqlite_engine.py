"""The SQLite engine: connections, the write path (inline group commit, the lock
poller, the writer thread), checkpoints and migrations.

One file in WAL mode. Reads run inline on the event loop on their own
connection (a point read is tens of microseconds, cheaper than a thread hop).
Writes run in ``BEGIN IMMEDIATE`` transactions, so that the write lock is
taken up front. A short write runs inline on the event loop too, on a
connection that does not wait for the lock (``busy_timeout = 0``): with WAL
and ``synchronous = NORMAL`` a commit does not fsync, so it costs tens of
microseconds, less than the hop to a thread and back.

Inline writes are group-committed: a write is queued, and the first of a loop
turn schedules the batch to run after the turn's other callbacks. The batch then
runs in one transaction, every write in its own savepoint (a failing one undoes
only itself), and each caller returns only after the shared commit. Under load
one commit then carries several requests' writes, and the pages they share (a
table's last leaf, an index's newest entries) reach the WAL once instead of once
per request. The write lock is held only while the batch's statements and its
commit run, never across the rest of a loop turn: with several workers on one
file, a batch begun at a turn's first write held the lock through the other
requests' parsing, JSON and upstream I/O, and the other worker's writes queued
behind it (each process held it about half the time, and batches alternated).

When the lock is taken (by another process sharing the file, or by the writer
thread), the batch waits on the loop: a task polls for the lock at short
intervals, every write that comes in meanwhile joins the waiting batch, and it
runs as soon as the lock is free. Only after ``LOCK_POLL_S`` does the batch go to
the one writer thread, where ``busy_timeout`` makes it wait rather than fail.
(SQLite's busy handler sleeps in steps of up to 100 ms: with two workers on one
file, writes that waited there saw a p99 above a second, against about 40 ms when
polled.) Long writes (migrations, session purges) always run on the thread; so
do checkpoints, the only fsyncs, never on the loop.

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


class _Unit:
    """One caller's write: its work, and the future its caller waits on."""

    __slots__ = ("future", "work")

    def __init__(self, work: Callable[[sqlite3.Connection], Any], future: asyncio.Future[Any]):
        self.work = work
        self.future = future


class _Batch:
    """The writes gathered in one loop turn (and while another connection holds the
    lock): run together in one transaction, one commit (group commit)."""

    __slots__ = ("units",)

    def __init__(self) -> None:
        self.units: list[_Unit] = []


_Outcome = tuple[_Unit, Any, BaseException | None]
"""A unit, and its result or its error."""


def _failure(cause: BaseException, message: str = "the shared commit failed") -> StoreError:
    """One exception per writer (each raises it in its own task), saying why."""
    error = StoreError(f"{message}: {cause!r}")
    error.__cause__ = cause
    return error


def _undo_unit(conn: sqlite3.Connection) -> bool:
    """Roll a failed write back to its savepoint; ``False`` if SQLite already rolled
    the whole transaction back (or cannot roll back to the savepoint)."""
    try:
        if conn.in_transaction:
            conn.execute("ROLLBACK TO unit")
            conn.execute("RELEASE unit")
            return True
    except sqlite3.Error:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    return False


def _run_units(conn: sqlite3.Connection, units: list[_Unit]) -> tuple[list[_Outcome], list[_Unit]]:
    """Run each unit in its own savepoint of the transaction ``conn`` has begun (so
    that a failing one undoes only itself), then commit. Returns every unit's
    outcome but those left unrun because a failure took the transaction with it:
    the writes before it are lost, so they are told so, and the rest are returned
    to go in the next transaction."""
    done: list[_Outcome] = []

    def all_failed(cause: BaseException, rest: list[_Unit]) -> list[_Outcome]:
        """``done`` with every success turned into ``cause``'s failure, and ``rest``
        failed alike."""
        told: list[_Outcome] = [
            (u, None, e if e is not None else _failure(cause)) for u, _, e in done
        ]
        return told + [(u, None, _failure(cause)) for u in rest]

    try:
        for index, unit in enumerate(units):
            conn.execute("SAVEPOINT unit")
            try:
                result = unit.work(conn)
                conn.execute("RELEASE unit")
            except Exception as exc:
                if _undo_unit(conn):
                    done.append((unit, None, exc))
                    continue
                lost = StoreError("a write failed and took its transaction with it")
                return [*all_failed(lost, []), (unit, None, exc)], units[index + 1 :]
            done.append((unit, result, None))
        conn.execute("COMMIT")
    except sqlite3.Error as exc:  # at COMMIT (a deferred constraint), or the I/O failed
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        return all_failed(exc, units[len(done) :]), []
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return done, []


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
        self._pending: _Batch | None = None
        """The batch new writes join: not yet run, its run scheduled or polling."""
        self._lock_polls: set[asyncio.Task[None]] = set()
        self._closing = False
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
        committed. Inline (unless ``inline`` is false): queued with this loop turn's
        other writes, which run together on the loop at the turn's end, in one
        transaction (group commit); while another connection holds the lock the
        batch waits on the loop, and on the writer thread once that wait passes
        ``LOCK_POLL_S``. Not inline: alone, on the writer thread."""
        if self._writes_resume is not None:
            await self._writes_resume.wait()
        loop = asyncio.get_running_loop()
        if not inline or self.path == ":memory:":
            return await loop.run_in_executor(self._executor, self._transaction, work)
        batch = self._pending
        if batch is None:
            batch = self._pending = _Batch()
            loop.call_soon(self._flush, batch)
        future: asyncio.Future[T] = loop.create_future()
        batch.units.append(_Unit(work, future))
        return await future

    def _flush(self, batch: _Batch) -> None:
        """At the end of the loop turn its first write came in: run the batch, or, if
        another connection holds the lock, poll for it."""
        if self._pending is not batch:
            return  # already run (close() handed it to the thread)
        if not self._run_inline(batch):
            poll = asyncio.get_running_loop().create_task(self._wait_for_lock(batch))
            self._lock_polls.add(poll)
            poll.add_done_callback(self._lock_polls.discard)

    def _run_inline(self, batch: _Batch) -> bool:
        """Run the batch in one transaction on the inline connection and wake its
        writers; ``False`` (nothing run) if another connection holds the write lock.
        The lock is held only while the batch's statements and its commit run."""
        conn = self._inline_writer()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:
            return False  # the lock is taken (another process, or the writer thread)
        if self._pending is batch:
            self._pending = None
        outcomes, rest = _run_units(conn, batch.units)
        committed = self._settle(outcomes, rest)
        self._inline_commits += committed
        if self._inline_commits >= CHECKPOINT_EVERY:
            self._inline_commits = 0
            self._checkpoint_soon()
        return True

    async def _wait_for_lock(self, batch: _Batch) -> None:
        """Poll for the write lock another connection holds, at short intervals, and
        run the batch (with every write that joined it meanwhile) as soon as it is
        free. SQLite's own busy handler (on the thread) sleeps in steps of up to
        100 ms, so writes queued behind another process's commits would wait far
        longer than those take. After ``LOCK_POLL_S`` the batch waits on the thread."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LOCK_POLL_S
        delay = LOCK_POLL_FIRST_S
        while loop.time() < deadline and not self._closing:
            await asyncio.sleep(delay)
            if self._writes_resume is not None:
                await self._writes_resume.wait()
            if self._run_inline(batch):
                return
            delay = min(2 * delay, LOCK_POLL_MAX_S)
        if self._pending is batch:
            self._pending = None
        await self._run_on_thread(batch)

    async def _run_on_thread(self, batch: _Batch) -> None:
        """The batch in one transaction on the writer thread, where ``busy_timeout``
        makes ``BEGIN IMMEDIATE`` wait for the lock rather than fail."""
        try:
            outcomes, rest = await asyncio.get_running_loop().run_in_executor(
                self._executor, self._transaction_units, batch.units
            )
        except Exception as exc:  # the lock stayed taken past busy_timeout, or I/O failed
            outcomes = [
                (u, None, _failure(exc, "the write lock was not free")) for u in batch.units
            ]
            rest = []
        self._settle(outcomes, rest)

    def _transaction_units(self, units: list[_Unit]) -> tuple[list[_Outcome], list[_Unit]]:
        conn = self._writer()
        conn.execute("BEGIN IMMEDIATE")
        return _run_units(conn, units)

    def _settle(self, outcomes: list[_Outcome], rest: list[_Unit]) -> int:
        """Wake each writer with its result or error (a writer whose request was
        cancelled is skipped: its write stands); queue ``rest`` first in the next
        batch. Returns how many writes were committed."""
        committed = 0
        for unit, result, error in outcomes:
            committed += error is None
            if unit.future.done():
                continue
            if error is None:
                unit.future.set_result(result)
            else:
                unit.future.set_exception(error)
        if rest:
            batch = self._pending
            if batch is None:
                batch = self._pending = _Batch()
                asyncio.get_running_loop().call_soon(self._flush, batch)
            batch.units[:0] = rest
        return committed

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
        self._closing = True  # writes waiting for the lock stop polling, wait on the thread
        for poll in list(self._lock_polls):
            await poll
        if self._pending is not None:  # writes still waiting for the lock: land them
            batch, self._pending = self._pending, None
            await self._run_on_thread(batch)

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
