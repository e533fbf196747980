"""PostgreSQL backend (asyncpg): the production path.

Any number of server processes may share one database. Single use of a code
rests on one conditional ``UPDATE … WHERE used_at IS NULL``: under READ
COMMITTED a concurrent exchange waits for the first to commit, re-checks the
condition and finds the code used. The 409 check for a live challenge is
serialised per (user, challenge) with a transaction-scoped advisory lock.
Metering (admission, settlement, generation records) is in
:mod:`modelgates.store.postgres_metering`, single sign-on in
:mod:`modelgates.store.postgres_sso`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
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
from modelgates.store.base import KeyChange, iso, key_changes, migration_files, utc
from modelgates.store.postgres_activity import PostgresActivity
from modelgates.store.postgres_alerts import PostgresAlerts
from modelgates.store.postgres_allowlists import narrow_minted, parent_allowlist, within_creator
from modelgates.store.postgres_batch import MeterBatcher
from modelgates.store.postgres_health import PostgresHealth
from modelgates.store.postgres_keywatch import KeyWatch
from modelgates.store.postgres_metering import PostgresMetering
from modelgates.store.postgres_responses import PostgresResponses
from modelgates.store.postgres_rotation import PostgresRotation
from modelgates.store.postgres_sso import PostgresSignOn, insert_identity
from modelgates.store.postgres_users import PostgresUsers
from modelgates.windows import Reset, WindowSpend, window_starts

MIGRATION_LOCK_ID = 0x6D67_0001  # "mg" + 1: one migrator at a time across processes


async def _keep_session(conn: asyncpg.Connection) -> None:
    """What a pooled connection needs on its way back: nothing. asyncpg's default reset
    (``RESET ALL``, ``UNLISTEN *``, advisory unlocks…) is a round trip on every release,
    and this store leaves no session state behind: settings are set at connect, advisory
    locks are transaction-scoped, nothing listens on a pooled connection. (An open
    transaction is still rolled back: asyncpg does that before calling this.)"""


def _ts(value: datetime) -> datetime:
    return utc(value)


class PostgresStore(
    PostgresAlerts,
    PostgresMetering,
    PostgresSignOn,
    PostgresUsers,
    PostgresRotation,
    PostgresResponses,
    PostgresActivity,
    PostgresHealth,
):
    """:class:`~modelgates.store.base.Store` on PostgreSQL."""

    dialect = "postgres"

    def __init__(self, pool: asyncpg.Pool, dsn: str | None = None) -> None:
        """``dsn``: where the key cache's listener connects (without one, no key is
        cached: :meth:`get_key_cached` reads every time)."""
        self._pool = pool
        self._meter = MeterBatcher(pool)
        self.key_cache = KeyCache(held_until=0.0)
        self.key_watch = None if dsn is None else KeyWatch(dsn, self.key_cache)

    @classmethod
    async def connect(cls, url: str, *, min_size: int = 1, max_size: int = 10) -> PostgresStore:
        dsn = "postgresql://" + url.split("://", 1)[1]
        pool = await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            server_settings={"timezone": "UTC"},
            reset=_keep_session,
        )
        return cls(pool, dsn)

    async def _one(self, sql: str, *args: Any) -> asyncpg.Record | None:
        async with self._pool.acquire() as conn:
            row: asyncpg.Record | None = await conn.fetchrow(sql, *args)
            return row

    # life cycle -------------------------------------------------------
    async def migrate(self) -> list[str]:
        applied: list[str] = []
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_ID)
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations"
                " (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
            for path in migration_files(self.dialect):
                if path.stem in done:
                    continue
                await conn.execute(path.read_text())
                await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", path.stem)
                applied.append(path.stem)
        return applied

    async def close(self) -> None:
        if self.key_watch is not None:
            await self.key_watch.close()
        await self._meter.close()
        await self._pool.close()

    async def ping(self) -> None:
        await self._one("SELECT 1")

    # users ------------------------------------------------------------
    async def create_user(self, user: User, identity: ProviderIdentity | None = None) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            try:
                await conn.execute(_INSERT_USER, *rows.user_insert_values(user, _ts))
            except asyncpg.UniqueViolationError as exc:
                raise DuplicateEmail(user.email) from exc
            if identity is not None and not await insert_identity(
                conn, identity, user.id, user.created_at
            ):
                raise DuplicateIdentity(identity.subject)

    async def get_user(self, user_id: str) -> User | None:
        row = await self._one("SELECT * FROM users WHERE id = $1", user_id)
        return None if row is None else rows.user_from_row(row, _ts)

    async def get_user_by_email(self, email: str) -> User | None:
        row = await self._one("SELECT * FROM users WHERE email = $1", email)
        return None if row is None else rows.user_from_row(row, _ts)

    # apps -------------------------------------------------------------
    async def get_or_create_app(self, origin: str, name: str, now: datetime) -> App:
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow("SELECT * FROM apps WHERE origin = $1", origin)
            if row is None:
                await conn.execute(
                    "INSERT INTO apps (origin, name, created_at) VALUES ($1, $2, $3)"
                    " ON CONFLICT (origin) DO NOTHING",
                    origin, name, now,
                )  # fmt: skip
                row = await conn.fetchrow("SELECT * FROM apps WHERE origin = $1", origin)
            assert row is not None
            return rows.app_from_row(row, _ts)

    async def get_app(self, app_id: int) -> App | None:
        row = await self._one("SELECT * FROM apps WHERE id = $1", app_id)
        return None if row is None else rows.app_from_row(row, _ts)

    # keys -------------------------------------------------------------
    async def create_key(self, key: ApiKey) -> None:
        async with self._pool.acquire() as conn:
            await _insert_key(conn, key)

    async def get_key(self, key_hash: str) -> ApiKey | None:
        row = await self._one(_KEY_WITH_OWNER, key_hash)
        return None if row is None else rows.key_with_owner_from_row(row, _ts)

    async def get_key_cached(self, key_hash: str) -> ApiKey | None:
        cache = self.key_cache
        key = cache.get(key_hash)
        if key is not None:
            return key
        if self.key_watch is not None:
            self.key_watch.start()  # until it listens, nothing is kept
        epoch = cache.epoch
        key = await self.get_key(key_hash)
        if key is not None:
            cache.put(key, epoch)
        return key

    def _keys_changed(self) -> None:
        """After a committed change of keys or users: this process's cache forgets them
        at once (the other processes' hear it from the triggers of migration 0015)."""
        self.key_cache.clear()

    async def list_keys(
        self, user_id: str, *, include_disabled: bool, offset: int, limit: int
    ) -> list[ApiKey]:
        async with self._pool.acquire() as conn:
            found = await conn.fetch(
                f"SELECT {rows.KEY_COLUMNS} FROM api_keys"
                " WHERE user_id = $1 AND revoked_at IS NULL AND ($2 OR NOT disabled)"
                " ORDER BY created_at DESC, hash LIMIT $3 OFFSET $4",
                user_id, include_disabled, limit, offset,
            )  # fmt: skip
        return [rows.key_from_row(r, _ts) for r in found]

    async def minted_spend(self, parent_hashes: list[str], now: datetime) -> dict[str, WindowSpend]:
        if not parent_hashes:
            return {}
        sql = rows.minted_spend_query(len(parent_hashes), "numeric")
        async with self._pool.acquire() as conn:
            found = await conn.fetch(sql, *window_starts(now), *parent_hashes)
        return rows.minted_spend_from(list(found))

    async def revoke_key(self, key_hash: str, now: datetime) -> list[str] | None:
        async with self._pool.acquire() as conn, conn.transaction():
            status = await conn.execute(
                "UPDATE api_keys SET revoked_at = $1, updated_at = $1"
                " WHERE hash = $2 AND revoked_at IS NULL",
                now, key_hash,
            )  # fmt: skip
            if status != "UPDATE 1":
                return None
            minted = await _cut_off_minted(conn, key_hash, now)
        self._keys_changed()
        return minted

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
        async with self._pool.acquire() as conn, conn.transaction():
            allowed: Allowlist | UnsetType = allowed_models
            if not isinstance(allowed, UnsetType):
                bound = await parent_allowlist(conn, key_hash)
                allowed = allowlist.intersection(allowed, bound)
                changes.append(("allowed_models", allowlist.encode(allowed)))
            assignments = "".join(f", {column} = ${i}" for i, (column, _) in enumerate(changes, 3))
            row = await conn.fetchrow(
                f"UPDATE api_keys SET updated_at = $2{assignments}"
                f" WHERE hash = $1 AND revoked_at IS NULL RETURNING {rows.KEY_COLUMNS}",
                key_hash, now, *(value for _, value in changes),
            )  # fmt: skip
            if row is None:
                return None
            if not isinstance(allowed, UnsetType) and allowed is not None:
                await narrow_minted(conn, key_hash, allowed, now)
            minted = await _cut_off_minted(conn, key_hash, now) if disabled is True else []
        self._keys_changed()
        return KeyChange(rows.key_from_row(row, _ts), tuple(minted))

    # audit ------------------------------------------------------------
    async def record_event(self, event: AuditEvent) -> None:
        async with self._pool.acquire() as conn:
            await _insert_event(conn, event)

    async def list_events(
        self, *, user_id: str | None = None, key_hash: str | None = None, limit: int = 100
    ) -> list[AuditEvent]:
        where, values = rows.event_filter(user_id, key_hash, "numeric")
        async with self._pool.acquire() as conn:
            found = await conn.fetch(
                f"SELECT id, at, event, actor, user_id, key_hash, detail::text AS detail"
                f" FROM audit_events{where} ORDER BY id DESC LIMIT ${len(values) + 1}",
                *values,
                limit,
            )
        return [rows.event_from_row(r, _ts) for r in found]

    # codes ------------------------------------------------------------
    async def create_code(self, code: AuthCode, now: datetime) -> None:
        # One round trip either way: a code without a challenge is a plain insert; one
        # with a challenge goes through modelgates_create_code (migration 0017), which
        # serialises codes of one (user, challenge) and refuses a live duplicate.
        async with self._pool.acquire() as conn:
            if code.code_challenge is None:
                await conn.execute(_INSERT_CODE, *rows.code_insert_values(code, _ts))
                return
            columns = dict(zip(_CODE_COLUMN_NAMES, rows.code_insert_values(code, iso), strict=True))
            created = await conn.fetchval(
                "SELECT modelgates_create_code($1::jsonb, $2)",
                msgspec.json.encode(columns).decode(), now,
            )  # fmt: skip
        if not created:
            raise ChallengeInUse(code.code_challenge)

    async def get_code(self, code_hash: str) -> AuthCode | None:
        row = await self._one(
            f"SELECT {rows.CODE_COLUMNS} FROM auth_codes WHERE code_hash = $1",
            code_hash,
        )
        return None if row is None else rows.code_from_row(row, _ts)

    async def consume_code(
        self, code_hash: str, now: datetime, key: ApiKey, event: AuditEvent | None = None
    ) -> bool:
        if key.parent_key_hash is None:
            # One statement, one round trip: the code is used, the key inserted and the
            # issue recorded together, or nothing is.
            async with self._pool.acquire() as conn:
                return bool(await conn.fetchval(*_consume_in_one(code_hash, now, key, event)))
        async with self._pool.acquire() as conn, conn.transaction():
            # Lock the creating key first: a concurrent revocation (which updates its
            # row) then either commits before (and the check below refuses) or waits
            # for this mint and revokes the key minted here; so does a change of its
            # allowlist, which the minted key's stays within.
            key = await within_creator(conn, key)
            status = await conn.execute(_CONSUME_CODE, now, key.hash, code_hash)
            if status != "UPDATE 1":
                return False
            await _insert_key(conn, key)
            if event is not None:
                await _insert_event(conn, event)
            return True

    async def revoke_key_minted_by(self, code_hash: str, now: datetime) -> str | None:
        async with self._pool.acquire() as conn, conn.transaction():
            key_hash: str | None = await conn.fetchval(
                "SELECT minted_key_hash FROM auth_codes"
                " WHERE code_hash = $1 AND used_at IS NOT NULL",
                code_hash,
            )
            if key_hash is None:
                return None
            await conn.execute(
                "UPDATE api_keys SET revoked_at = $1, updated_at = $1"
                " WHERE hash = $2 AND revoked_at IS NULL",
                now, key_hash,
            )  # fmt: skip
        self._keys_changed()
        return key_hash

    # apps, looked up without creating ---------------------------------
    async def find_app(self, origin: str) -> App | None:
        row = await self._one("SELECT * FROM apps WHERE origin = $1", origin)
        return None if row is None else rows.app_from_row(row, _ts)

    async def list_apps(self) -> list[App]:
        async with self._pool.acquire() as conn:
            found = await conn.fetch("SELECT * FROM apps ORDER BY id")
        return [rows.app_from_row(row, _ts) for row in found]

    async def rename_app(self, app_id: int, name: str) -> App | None:
        row = await self._one("UPDATE apps SET name = $1 WHERE id = $2 RETURNING *", name, app_id)
        return None if row is None else rows.app_from_row(row, _ts)

    # page sessions ----------------------------------------------------
    async def create_session(self, session: WebSession) -> None:
        async with self._pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO web_sessions"
                " (token_hash, user_id, csrf_secret, created_at, expires_at)"
                " VALUES ($1, $2, $3, $4, $5)",
                session.token_hash, session.user_id, session.csrf_secret,
                session.created_at, session.expires_at,
            )  # fmt: skip

    async def get_session(self, token_hash: str) -> WebSession | None:
        row = await self._one("SELECT * FROM web_sessions WHERE token_hash = $1", token_hash)
        return None if row is None else rows.session_from_row(row, _ts)

    async def delete_session(self, token_hash: str) -> bool:
        async with self._pool.acquire() as conn:
            status = await conn.execute(
                "DELETE FROM web_sessions WHERE token_hash = $1", token_hash
            )
        return bool(status == "DELETE 1")

    async def delete_expired_sessions(self, now: datetime) -> int:
        async with self._pool.acquire() as conn:
            status = await conn.execute("DELETE FROM web_sessions WHERE expires_at <= $1", now)
        return int(status.split()[-1])

    # purge (bounded batches; see modelgates.purge) ----------------------
    async def _purge(self, sql: str, *args: Any) -> int:
        async with self._pool.acquire() as conn:
            status: str = await conn.execute(sql, *args)
        return int(status.split()[-1])

    async def purge_codes(self, now: datetime, used_before: datetime, limit: int) -> int:
        return await self._purge(
            "DELETE FROM auth_codes WHERE code_hash IN (SELECT code_hash FROM auth_codes"
            " WHERE expires_at <= $1 AND (used_at IS NULL OR used_at <= $2) LIMIT $3)",
            now, used_before, limit,
        )  # fmt: skip

    async def purge_sessions(self, now: datetime, limit: int) -> int:
        return await self._purge(
            "DELETE FROM web_sessions WHERE token_hash IN (SELECT token_hash"
            " FROM web_sessions WHERE expires_at <= $1 LIMIT $2)",
            now, limit,
        )  # fmt: skip


_INSERT_USER = (
    f"INSERT INTO users ({rows.USER_COLUMNS})"
    f" VALUES ({rows.placeholders(rows.USER_COLUMNS.count(',') + 1, 'numeric')})"
)
_KEY_WITH_OWNER = (
    f"SELECT {rows.KEY_WITH_OWNER_COLUMNS} FROM api_keys k JOIN users u ON u.id = k.user_id"
    " WHERE k.hash = $1"
)
_CONSUME_CODE = (
    "UPDATE auth_codes SET used_at = $1, minted_key_hash = $2"
    " WHERE code_hash = $3 AND used_at IS NULL AND expires_at > $1"
    " AND (creator_key_hash IS NULL OR EXISTS (SELECT 1 FROM api_keys WHERE"
    f" hash = creator_key_hash AND {rows.KEY_IS_ACTIVE.replace('$now', '$1')}))"
)


_CODE_COLUMN_NAMES = [column.strip() for column in rows.CODE_COLUMNS.split(",")]
_INSERT_CODE = (
    f"INSERT INTO auth_codes ({rows.CODE_COLUMNS})"
    f" VALUES ({rows.placeholders(rows.CODE_COLUMN_COUNT, 'numeric')})"
)
_KEY_COLUMN_NAMES = [column.strip() for column in rows.KEY_COLUMNS.split(",")]


def _consume_in_one(
    code_hash: str, now: datetime, key: ApiKey, event: AuditEvent | None
) -> tuple[Any, ...]:
    """``Store.consume_code`` for a key without a creator, as one statement and its
    arguments: data-modifying CTEs that insert only when the code was used (each
    reads ``used``), and the count of codes used (0 or 1)."""
    columns = dict(zip(_KEY_COLUMN_NAMES, rows.key_insert_values(key, iso), strict=True))
    args: list[Any] = [now, key.hash, code_hash, msgspec.json.encode(columns).decode()]
    logged = ""
    if event is not None:
        detail = None if event.detail is None else msgspec.json.encode(event.detail).decode()
        args += [event.at, event.event, event.actor, event.user_id, event.key_hash, detail]
        logged = (
            ", logged AS (INSERT INTO audit_events (at, event, actor, user_id, key_hash, detail)"
            " SELECT $5::timestamptz, $6::text, $7::text, $8::text, $9::text, $10::jsonb"
            " WHERE EXISTS (SELECT 1 FROM used))"
        )
    sql = (
        f"WITH used AS ({_CONSUME_CODE} RETURNING 1),"
        f" minted AS (INSERT INTO api_keys ({rows.KEY_COLUMNS}) SELECT {rows.KEY_COLUMNS}"
        " FROM jsonb_populate_record(NULL::api_keys, $4::jsonb)"
        f" WHERE EXISTS (SELECT 1 FROM used)){logged}"
        " SELECT count(*) FROM used"
    )
    return (sql, *args)


async def _cut_off_minted(conn: Any, key_hash: str, now: datetime) -> list[str]:
    """Revoke the keys minted from ``key_hash`` and expire its pending codes (in the
    caller's transaction); return the hashes revoked."""
    minted = await conn.fetch(
        "UPDATE api_keys SET revoked_at = $1, updated_at = $1"
        " WHERE parent_key_hash = $2 AND revoked_at IS NULL RETURNING hash",
        now, key_hash,
    )  # fmt: skip
    await conn.execute(
        "UPDATE auth_codes SET expires_at = $1 WHERE creator_key_hash = $2"
        " AND used_at IS NULL AND expires_at > $1",
        now, key_hash,
    )  # fmt: skip
    return [row["hash"] for row in minted]


async def _insert_event(conn: Any, event: AuditEvent) -> None:
    detail = None if event.detail is None else msgspec.json.encode(event.detail).decode()
    await conn.execute(
        "INSERT INTO audit_events (at, event, actor, user_id, key_hash, detail)"
        " VALUES ($1, $2, $3, $4, $5, $6::jsonb)",
        event.at, event.event, event.actor, event.user_id, event.key_hash, detail,
    )  # fmt: skip


async def _insert_key(conn: Any, key: ApiKey) -> None:
    await conn.execute(
        f"INSERT INTO api_keys ({rows.KEY_COLUMNS})"
        f" VALUES ({rows.placeholders(rows.KEY_COLUMN_COUNT, 'numeric')})",
        *rows.key_insert_values(key, _ts),
    )
