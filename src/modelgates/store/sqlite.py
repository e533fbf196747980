"""SQLite backend: the embedded default.

One file in WAL mode (:mod:`modelgates.store.sqlite_engine` runs the connections and
the write path); the queries are here, those of metering in
:mod:`modelgates.store.sqlite_metering` and of single sign-on in
:mod:`modelgates.store.sqlite_sso`.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime

import msgspec
from msgspec import UNSET, UnsetType

from modelgates import allowlist
from modelgates.allowlist import Allowlist
from modelgates.errors import ChallengeInUse, DuplicateEmail, DuplicateIdentity
from modelgates.keycache import KeyCache
from modelgates.models import (
    ApiKey,
    App,
    AuditEvent,
    AuthCode,
    ProviderIdentity,
    User,
    WebSession,
)
from modelgates.store import rows
from modelgates.store.base import KeyChange, from_iso, iso, key_changes
from modelgates.store.sqlite_activity import SqliteActivity
from modelgates.store.sqlite_alerts import SqliteAlerts
from modelgates.store.sqlite_allowlists import narrow_minted, parent_allowlist, within_creator
from modelgates.store.sqlite_engine import SqliteEngine, path_from_url
from modelgates.store.sqlite_health import SqliteHealth
from modelgates.store.sqlite_metering import SqliteMetering
from modelgates.store.sqlite_responses import SqliteResponses
from modelgates.store.sqlite_rotation import SqliteRotation
from modelgates.store.sqlite_sso import SqliteSignOn, insert_identity
from modelgates.store.sqlite_users import SqliteUsers
from modelgates.windows import Reset, WindowSpend, window_starts

__all__ = ["SqliteStore", "path_from_url"]

PURGE_CODES_SQL = (
    "DELETE FROM auth_codes WHERE code_hash IN (SELECT code_hash FROM auth_codes"
    " WHERE expires_at <= ? AND (used_at IS NULL OR used_at <= ?) LIMIT ?)"
)
"""Runs on the event loop in bounded batches: it finds codes through the expiry index."""


class SqliteStore(
    SqliteAlerts,
    SqliteMetering,
    SqliteSignOn,
    SqliteUsers,
    SqliteRotation,
    SqliteResponses,
    SqliteActivity,
    SqliteHealth,
    SqliteEngine,
):
    """:class:`~modelgates.store.base.Store` on a SQLite file."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.key_cache = KeyCache()
        self._key_revision: int | None = None

    # users ------------------------------------------------------------
    async def create_user(self, user: User, identity: ProviderIdentity | None = None) -> None:
        def insert(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(_INSERT_USER, rows.user_insert_values(user, iso))
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
        row = self._one(_KEY_WITH_OWNER, (key_hash,))
        return None if row is None else rows.key_with_owner_from_row(row, from_iso)

    async def get_key_cached(self, key_hash: str) -> ApiKey | None:
        # The revision of the keys first (migration 0015: any process's change bumps
        # it), a point read several times cheaper than the key's JOIN; a new one
        # empties the cache, so every change applies from the next request.
        (revision,) = self._reader.execute(_KEY_REVISION).fetchone()
        cache = self.key_cache
        if revision != self._key_revision:
            cache.clear()
            self._key_revision = revision
        key = cache.get(key_hash)
        if key is None:
            epoch = cache.epoch
            key = await self.get_key(key_hash)
            if key is not None:
                cache.put(key, epoch)
        return key

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


_INSERT_USER = (
    f"INSERT INTO users ({rows.USER_COLUMNS})"
    f" VALUES ({rows.placeholders(rows.USER_COLUMNS.count(',') + 1, 'qmark')})"
)
_KEY_REVISION = "SELECT n FROM key_revision WHERE id = 1"
_KEY_WITH_OWNER = (
    f"SELECT {rows.KEY_WITH_OWNER_COLUMNS} FROM api_keys k JOIN users u ON u.id = k.user_id"
    " WHERE k.hash = ?"
)
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
