"""SQLite backend: the embedded default.

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
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import msgspec
from msgspec import UNSET, UnsetType

from modelgates import allowlist, pkce
from modelgates.admission import Ask, Budget, Scope, decide
from modelgates.allowlist import Allowlist
from modelgates.errors import ChallengeInUse, DuplicateEmail, DuplicateIdentity, StoreError
from modelgates.models import (
    Admission,
    ApiKey,
    App,
    AuditEvent,
    AuthCode,
    Generation,
    ProviderIdentity,
    UsageAudit,
    User,
    WebSession,
)
from modelgates.store import rows
from modelgates.store.base import KeyChange, from_iso, iso, key_changes, migration_files
from modelgates.store.sqlite_allowlists import narrow_minted, parent_allowlist, within_creator
from modelgates.store.sqlite_sso import SqliteSignOn, insert_identity
from modelgates.windows import Reset, WindowSpend, window_starts

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
PURGE_CODES_SQL = (
    "DELETE FROM auth_codes WHERE code_hash IN (SELECT code_hash FROM auth_codes"
    " WHERE expires_at <= ? AND (used_at IS NULL OR used_at <= ?) LIMIT ?)"
)
"""Runs on the event loop in bounded batches: it finds codes through the expiry index."""
LOCK_POLL_FIRST_S = 0.000_2
LOCK_POLL_MAX_S = 0.002
LOCK_POLL_S = 2.0
"""How a write waits on the loop for a write lock another connection holds: polls
0.2 ms apart, doubling up to 2 ms, for up to 2 s before it queues on the thread."""
RESTART_BUSY_TIMEOUT_MS = 200
"""How long the RESTART step waits for another process's write or read to end."""


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


class SqliteStore(SqliteSignOn):
    """:class:`~modelgates.store.base.Store` on a SQLite file."""

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
    def from_url(cls, url: str) -> SqliteStore:
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

    # users ------------------------------------------------------------
    async def create_user(self, user: User, identity: ProviderIdentity | None = None) -> None:
        def insert(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(
                    "INSERT INTO users"
                    " (id, email, password_hash, workspace_id, created_at, is_admin)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (user.id, user.email, user.password_hash, user.workspace_id,
                     iso(user.created_at), int(user.is_admin)),
                )  # fmt: skip
            except sqlite3.IntegrityError as exc:
                raise DuplicateEmail(user.email) from exc
            if identity is not None and not insert_identity(
                conn, identity, user.id, user.created_at
            ):
                raise DuplicateIdentity(identity.subject)

        await self._write(insert)

    async def get_user(self, user_id: str) -> User | None:
        row = self._one("SELECT * FROM users WHERE id = ?", (user_id,))
        return None if row is None else rows.user_from_row(row, from_iso)

    async def get_user_by_email(self, email: str) -> User | None:
        row = self._one("SELECT * FROM users WHERE email = ?", (email,))
        return None if row is None else rows.user_from_row(row, from_iso)

    # apps -------------------------------------------------------------
    async def get_or_create_app(self, origin: str, name: str, now: datetime) -> App:
        row = self._one("SELECT * FROM apps WHERE origin = ?", (origin,))
        if row is not None:
            return rows.app_from_row(row, from_iso)

        def upsert(conn: sqlite3.Connection) -> sqlite3.Row:
            conn.execute(
                "INSERT INTO apps (origin, name, created_at) VALUES (?, ?, ?)"
                " ON CONFLICT (origin) DO NOTHING",
                (origin, name, iso(now)),
            )
            found: sqlite3.Row = conn.execute(
                "SELECT * FROM apps WHERE origin = ?", (origin,)
            ).fetchone()
            return found

        return rows.app_from_row(await self._write(upsert), from_iso)

    async def get_app(self, app_id: int) -> App | None:
        row = self._one("SELECT * FROM apps WHERE id = ?", (app_id,))
        return None if row is None else rows.app_from_row(row, from_iso)

    # keys -------------------------------------------------------------
    async def create_key(self, key: ApiKey) -> None:
        await self._write(lambda conn: _insert_key(conn, key))

    async def get_key(self, key_hash: str) -> ApiKey | None:
        row = self._one(f"SELECT {rows.KEY_COLUMNS} FROM api_keys WHERE hash = ?", (key_hash,))
        return None if row is None else rows.key_from_row(row, from_iso)

    async def list_keys(
        self, user_id: str, *, include_disabled: bool, offset: int, limit: int
    ) -> list[ApiKey]:
        disabled_filter = "" if include_disabled else " AND disabled = 0"
        found = self._reader.execute(
            f"SELECT {rows.KEY_COLUMNS} FROM api_keys"
            f" WHERE user_id = ? AND revoked_at IS NULL{disabled_filter}"
            " ORDER BY created_at DESC, hash LIMIT ? OFFSET ?",
            (user_id, limit, offset),
        ).fetchall()
        return [rows.key_from_row(r, from_iso) for r in found]

    async def minted_spend(self, parent_hashes: list[str], now: datetime) -> dict[str, WindowSpend]:
        if not parent_hashes:
            return {}
        sql = rows.minted_spend_query(len(parent_hashes), "qmark")
        starts = tuple(iso(start) for start in window_starts(now))
        return rows.minted_spend_from(
            self._reader.execute(sql, (*starts, *parent_hashes)).fetchall()
        )

    async def revoke_key(self, key_hash: str, now: datetime) -> list[str] | None:
        def revoke(conn: sqlite3.Connection) -> list[str] | None:
            cur = conn.execute(
                "UPDATE api_keys SET revoked_at = ?, updated_at = ?"
                " WHERE hash = ? AND revoked_at IS NULL",
                (iso(now), iso(now), key_hash),
            )
            if cur.rowcount != 1:
                return None
            return _cut_off_minted(conn, key_hash, now)

        return await self._write(revoke)

    async def update_key(
        self,
        key_hash: str,
        now: datetime,
        *,
        name: str | UnsetType = UNSET,
        disabled: bool | UnsetType = UNSET,
        limit: int | UnsetType | None = UNSET,
        limit_reset: Reset | UnsetType | None = UNSET,
        allowed_models: Allowlist | UnsetType = UNSET,
    ) -> KeyChange | None:
        changes = key_changes(name=name, disabled=disabled, limit=limit, limit_reset=limit_reset)

        def update(conn: sqlite3.Connection) -> tuple[sqlite3.Row, list[str]] | None:
            given = list(changes)
            allowed: Allowlist | UnsetType = allowed_models
            if not isinstance(allowed, UnsetType):
                allowed = allowlist.intersection(allowed, parent_allowlist(conn, key_hash))
                given.append(("allowed_models", allowlist.encode(allowed)))
            assignments = "".join(f", {column} = ?" for column, _ in given)
            cur = conn.execute(
                f"UPDATE api_keys SET updated_at = ?{assignments}"
                " WHERE hash = ? AND revoked_at IS NULL",
                (iso(now), *(value for _, value in given), key_hash),
            )
            if cur.rowcount != 1:
                return None
            if not isinstance(allowed, UnsetType) and allowed is not None:
                narrow_minted(conn, key_hash, allowed, iso(now))
            row: sqlite3.Row = conn.execute(
                f"SELECT {rows.KEY_COLUMNS} FROM api_keys WHERE hash = ?", (key_hash,)
            ).fetchone()
            minted = _cut_off_minted(conn, key_hash, now) if disabled is True else []
            return row, minted

        result = await self._write(update)
        if result is None:
            return None
        return KeyChange(rows.key_from_row(result[0], from_iso), tuple(result[1]))

    # audit ------------------------------------------------------------
    async def record_event(self, event: AuditEvent) -> None:
        await self._write(lambda conn: _insert_event(conn, event))

    async def list_events(
        self, *, user_id: str | None = None, key_hash: str | None = None, limit: int = 100
    ) -> list[AuditEvent]:
        where, values = rows.event_filter(user_id, key_hash, "qmark")
        found = self._reader.execute(
            f"SELECT * FROM audit_events{where} ORDER BY id DESC LIMIT ?", (*values, limit)
        ).fetchall()
        return [rows.event_from_row(r, from_iso) for r in found]

    # codes ------------------------------------------------------------
    async def create_code(self, code: AuthCode, now: datetime) -> None:
        values = rows.code_insert_values(code, iso)

        def insert(conn: sqlite3.Connection) -> None:
            if code.code_challenge is None:
                conn.execute(_INSERT_CODE, values)
                return
            # The 409 check and the insert in one statement (the write lock is held).
            cur = conn.execute(
                _INSERT_CODE_UNLESS_CHALLENGE_LIVE,
                (*values, code.user_id, code.code_challenge, iso(now)),
            )
            if cur.rowcount != 1:
                raise ChallengeInUse(code.code_challenge)

        await self._write(insert)

    async def get_code(self, code_hash: str) -> AuthCode | None:
        row = self._one(
            f"SELECT {rows.CODE_COLUMNS} FROM auth_codes WHERE code_hash = ?", (code_hash,)
        )
        return None if row is None else rows.code_from_row(row, from_iso)

    async def consume_code(
        self, code_hash: str, now: datetime, key: ApiKey, event: AuditEvent | None = None
    ) -> bool:
        def consume(conn: sqlite3.Connection) -> bool:
            # The write lock is held: a revocation of the creating key is either
            # committed (and the code refused here) or waits for this mint.
            cur = conn.execute(_CONSUME_CODE, (iso(now), key.hash, code_hash, iso(now), iso(now)))
            if cur.rowcount != 1:
                return False
            _insert_key(conn, within_creator(conn, key))
            if event is not None:
                _insert_event(conn, event)
            return True

        return await self._write(consume)

    async def revoke_key_minted_by(self, code_hash: str, now: datetime) -> str | None:
        def revoke(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(
                "SELECT minted_key_hash FROM auth_codes"
                " WHERE code_hash = ? AND used_at IS NOT NULL",
                (code_hash,),
            ).fetchone()
            if row is None or row["minted_key_hash"] is None:
                return None
            key_hash: str = row["minted_key_hash"]
            conn.execute(
                "UPDATE api_keys SET revoked_at = ?, updated_at = ?"
                " WHERE hash = ? AND revoked_at IS NULL",
                (iso(now), iso(now), key_hash),
            )
            return key_hash

        return await self._write(revoke)

    # apps, looked up without creating ---------------------------------
    async def find_app(self, origin: str) -> App | None:
        row = self._one("SELECT * FROM apps WHERE origin = ?", (origin,))
        return None if row is None else rows.app_from_row(row, from_iso)

    async def list_apps(self) -> list[App]:
        found = self._reader.execute("SELECT * FROM apps ORDER BY id").fetchall()
        return [rows.app_from_row(row, from_iso) for row in found]

    async def rename_app(self, app_id: int, name: str) -> App | None:
        def rename(conn: sqlite3.Connection) -> sqlite3.Row | None:
            if conn.execute("UPDATE apps SET name = ? WHERE id = ?", (name, app_id)).rowcount != 1:
                return None
            row: sqlite3.Row = conn.execute("SELECT * FROM apps WHERE id = ?", (app_id,)).fetchone()
            return row

        row = await self._write(rename)
        return None if row is None else rows.app_from_row(row, from_iso)

    # page sessions ----------------------------------------------------
    async def create_session(self, session: WebSession) -> None:
        def insert(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO web_sessions"
                " (token_hash, user_id, csrf_secret, created_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (session.token_hash, session.user_id, session.csrf_secret,
                 iso(session.created_at), iso(session.expires_at)),
            )  # fmt: skip

        await self._write(insert)

    async def get_session(self, token_hash: str) -> WebSession | None:
        row = self._one("SELECT * FROM web_sessions WHERE token_hash = ?", (token_hash,))
        return None if row is None else rows.session_from_row(row, from_iso)

    async def delete_session(self, token_hash: str) -> bool:
        def delete(conn: sqlite3.Connection) -> bool:
            cur = conn.execute("DELETE FROM web_sessions WHERE token_hash = ?", (token_hash,))
            return cur.rowcount == 1

        return await self._write(delete)

    async def delete_expired_sessions(self, now: datetime) -> int:
        def delete(conn: sqlite3.Connection) -> int:
            cur = conn.execute("DELETE FROM web_sessions WHERE expires_at <= ?", (iso(now),))
            return int(cur.rowcount)

        return await self._write(delete, inline=False)  # unbounded: off the loop

    # metering ---------------------------------------------------------
    async def reserve(
        self, key_hash: str, reservation_id: str, ask: Ask, now: datetime, expires_at: datetime
    ) -> Admission:
        starts = dict(zip(("day", "week", "month"), map(iso, window_starts(now)), strict=True))

        def remaining(conn: sqlite3.Connection, key: ApiKey) -> int:
            assert key.limit is not None
            # Only live reservations count; expired ones (a crashed process's) are
            # left to the background purge rather than deleted on every admission.
            minted, held = conn.execute(
                f"SELECT (SELECT coalesce(sum({rows.spend_in_window(key.limit_reset)}), 0)"
                " FROM api_keys WHERE parent_key_hash = :hash),"
                " (SELECT coalesce(sum(amount_nanos), 0) FROM reservations"
                " WHERE (key_hash = :hash OR parent_key_hash = :hash) AND expires_at > :now)",
                {**starts, "hash": key.hash, "now": iso(now)},
            ).fetchone()
            spent = key.usage.in_window(now, key.limit_reset)
            return int(key.limit - spent - minted - held)

        def admit(conn: sqlite3.Connection) -> Admission:
            # BEGIN IMMEDIATE holds the database's write lock: nobody else admits
            # or settles until this transaction ends, across processes too.
            key = _key(conn, key_hash)
            if key is None:
                return Admission(key=None)
            parent = None if key.parent_key_hash is None else _key(conn, key.parent_key_hash)
            holders: tuple[tuple[Scope, ApiKey | None], ...] = (
                ("key_limit", key),
                ("parent_key", parent),
            )
            budgets = [
                Budget(scope, holder.limit_reset or "total", remaining(conn, holder))
                for scope, holder in holders
                if holder is not None and holder.limit is not None
            ]
            decision = decide(budgets, ask)
            if decision.refusal is None:
                conn.execute(
                    "INSERT INTO reservations (id, key_hash, parent_key_hash, amount_nanos,"
                    " created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (reservation_id, key_hash, key.parent_key_hash, decision.amount, iso(now),
                     iso(expires_at)),
                )  # fmt: skip
            return Admission(key, decision.amount, decision.granted_tokens, decision.refusal)

        return await self._write(admit)

    async def settle(self, reservation_id: str, record: Generation) -> None:
        day, week, month = window_starts(record.created_at)
        values = rows.generation_values(record, iso)

        def apply(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM reservations WHERE id = ?", (reservation_id,))
            conn.execute(_INSERT_GENERATION, values)
            conn.execute(
                _ADD_CHARGE_TO_KEY,
                {"c": record.cost, "day": iso(day), "week": iso(week), "month": iso(month),
                 "now": iso(record.created_at), "hash": record.key_hash},
            )  # fmt: skip

        await self._write(apply)

    async def release(self, reservation_id: str) -> None:
        await self._write(
            lambda conn: conn.execute("DELETE FROM reservations WHERE id = ?", (reservation_id,))
        )

    async def get_generation(self, generation_id: str) -> Generation | None:
        row = self._one(
            f"SELECT {_GENERATION_COLUMNS} FROM generations WHERE id = ?", (generation_id,)
        )
        return None if row is None else rows.generation_from_row(row, from_iso)

    async def usage_audit(self, key_hash: str, now: datetime) -> UsageAudit:
        charged = self._reader.execute(
            "SELECT coalesce(sum(cost_nanos), 0), count(*) FROM generations WHERE key_hash = ?",
            (key_hash,),
        ).fetchone()
        reserved = self._reader.execute(
            "SELECT coalesce(sum(amount_nanos), 0), count(*) FROM reservations"
            " WHERE key_hash = ? AND expires_at > ?",
            (key_hash, iso(now)),
        ).fetchone()
        return UsageAudit(
            charged=int(charged[0]),
            charges=int(charged[1]),
            reserved=int(reserved[0]),
            reservations=int(reserved[1]),
        )

    # purge (bounded batches; see modelgates.purge) ----------------------
    async def purge_codes(self, now: datetime, used_before: datetime, limit: int) -> int:
        def delete(conn: sqlite3.Connection) -> int:
            cur = conn.execute(PURGE_CODES_SQL, (iso(now), iso(used_before), limit))
            return int(cur.rowcount)

        return await self._write(delete)

    async def purge_sessions(self, now: datetime, limit: int) -> int:
        def delete(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "DELETE FROM web_sessions WHERE token_hash IN (SELECT token_hash"
                " FROM web_sessions WHERE expires_at <= ? LIMIT ?)",
                (iso(now), limit),
            )
            return int(cur.rowcount)

        return await self._write(delete)

    async def purge_reservations(self, now: datetime, limit: int) -> int:
        def delete(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "DELETE FROM reservations WHERE id IN (SELECT id FROM reservations"
                " WHERE expires_at <= ? LIMIT ?)",
                (iso(now), limit),
            )
            return int(cur.rowcount)

        return await self._write(delete)

    async def purge_generations(self, before: datetime, limit: int) -> int:
        def delete(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "DELETE FROM generations WHERE id IN (SELECT id FROM generations"
                " WHERE created_at < ? LIMIT ?)",
                (iso(before), limit),
            )
            return int(cur.rowcount)

        return await self._write(delete)


_INSERT_KEY = (
    f"INSERT INTO api_keys ({rows.KEY_COLUMNS})"
    f" VALUES ({rows.placeholders(rows.KEY_COLUMN_COUNT, 'qmark')})"
)
_INSERT_CODE = (
    f"INSERT INTO auth_codes ({rows.CODE_COLUMNS})"
    f" VALUES ({rows.placeholders(rows.CODE_COLUMN_COUNT, 'qmark')})"
)
_INSERT_CODE_UNLESS_CHALLENGE_LIVE = (
    f"INSERT INTO auth_codes ({rows.CODE_COLUMNS})"
    f" SELECT {rows.placeholders(rows.CODE_COLUMN_COUNT, 'qmark')}"
    " WHERE NOT EXISTS (SELECT 1 FROM auth_codes WHERE user_id = ?"
    " AND code_challenge = ? AND used_at IS NULL AND expires_at > ?)"
)
_CONSUME_CODE = (
    "UPDATE auth_codes SET used_at = ?, minted_key_hash = ?"
    " WHERE code_hash = ? AND used_at IS NULL AND expires_at > ?"
    " AND (creator_key_hash IS NULL OR EXISTS (SELECT 1 FROM api_keys WHERE"
    f" hash = creator_key_hash AND {rows.KEY_IS_ACTIVE.replace('$now', '?')}))"
)
_GENERATION_COLUMNS = ", ".join(rows.GENERATION_COLUMNS)
_INSERT_GENERATION = (
    f"INSERT INTO generations ({_GENERATION_COLUMNS})"
    f" VALUES ({rows.placeholders(len(rows.GENERATION_COLUMNS), 'qmark')})"
)
_ADD_CHARGE_TO_KEY = (
    f"UPDATE api_keys SET {rows.window_increments(':c', ':day', ':week', ':month')},"
    " last_used_at = :now WHERE hash = :hash"
)


def _key(conn: sqlite3.Connection, key_hash: str) -> ApiKey | None:
    row = conn.execute(f"SELECT {rows.KEY_COLUMNS} FROM api_keys WHERE hash = ?", (key_hash,))
    found = row.fetchone()
    return None if found is None else rows.key_from_row(found, from_iso)


def _cut_off_minted(conn: sqlite3.Connection, key_hash: str, now: datetime) -> list[str]:
    """Revoke the keys minted from ``key_hash`` and expire its pending codes (in the
    caller's transaction); return the hashes revoked."""
    minted = [
        row[0]
        for row in conn.execute(
            "SELECT hash FROM api_keys WHERE parent_key_hash = ? AND revoked_at IS NULL",
            (key_hash,),
        )
    ]
    conn.execute(
        "UPDATE api_keys SET revoked_at = ?, updated_at = ?"
        " WHERE parent_key_hash = ? AND revoked_at IS NULL",
        (iso(now), iso(now), key_hash),
    )
    conn.execute(
        "UPDATE auth_codes SET expires_at = ? WHERE creator_key_hash = ?"
        " AND used_at IS NULL AND expires_at > ?",
        (iso(now), key_hash, iso(now)),
    )
    return minted


def _insert_key(conn: sqlite3.Connection, key: ApiKey) -> None:
    conn.execute(_INSERT_KEY, rows.key_insert_values(key, iso))


def _insert_event(conn: sqlite3.Connection, event: AuditEvent) -> None:
    detail = None if event.detail is None else msgspec.json.encode(event.detail).decode()
    conn.execute(
        "INSERT INTO audit_events (at, event, actor, user_id, key_hash, detail)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (iso(event.at), event.event, event.actor, event.user_id, event.key_hash, detail),
    )


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
