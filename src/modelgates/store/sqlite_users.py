"""SQLite: users as the operator manages them (budgets, disabling, roles, listings) and
the reads of the admin pages (every key, spend per day).

A mixin of :class:`~modelgates.store.sqlite.SqliteStore`, kept apart so that the
store's core file stays about metering and codes; it uses the store's read
connection and its group-committed writes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import date, datetime
from typing import Any, Protocol, TypeVar

from msgspec import UNSET, UnsetType

from modelgates.models import ApiKey, DaySpend, UsageAudit, User, UserSummary
from modelgates.store import rows
from modelgates.store.base import from_iso, iso, like_pattern, user_changes
from modelgates.store.sqlite_metering import audit_of
from modelgates.windows import Reset

T = TypeVar("T")


class _Host(Protocol):
    _reader: sqlite3.Connection

    async def _write(
        self, work: Callable[[sqlite3.Connection], T], *, inline: bool = True
    ) -> T: ...

    def _one(self, sql: str, params: tuple[Any, ...]) -> sqlite3.Row | None: ...


class SqliteUsers:
    """The operator's part of the :class:`~modelgates.store.base.Store` protocol."""

    async def update_user(
        self: _Host,
        user_id: str,
        now: datetime,
        *,
        limit: int | UnsetType | None = UNSET,
        limit_reset: Reset | UnsetType | None = UNSET,
        disabled: bool | UnsetType = UNSET,
        is_admin: bool | UnsetType = UNSET,
    ) -> User | None:
        changes = user_changes(
            limit=limit, limit_reset=limit_reset, disabled=disabled, is_admin=is_admin
        )
        assignments = "".join(f", {column} = ?" for column, _ in changes)
        values = tuple(value for _, value in changes)

        def update(conn: sqlite3.Connection) -> sqlite3.Row | None:
            row: sqlite3.Row | None = conn.execute(
                f"UPDATE users SET updated_at = ?{assignments} WHERE id = ? RETURNING *",
                (iso(now), *values, user_id),
            ).fetchone()
            return row

        row = await self._write(update)
        return None if row is None else rows.user_from_row(row, from_iso)

    async def list_users(
        self: _Host, *, search: str | None, offset: int, limit: int
    ) -> list[UserSummary]:
        where = ""
        params: tuple[str, ...] = ()
        if search:
            where, params = " WHERE u.email LIKE ? ESCAPE '\\'", (like_pattern(search.lower()),)
        found = self._reader.execute(
            f"{rows.USER_SUMMARY_SQL}{where} ORDER BY u.created_at, u.id LIMIT ? OFFSET ?",
            (*params, limit, offset),
        ).fetchall()
        return [rows.summary_from_row(row, from_iso) for row in found]

    async def list_every_key(self: _Host, *, offset: int, limit: int) -> list[ApiKey]:
        found = self._reader.execute(
            f"SELECT {rows.KEY_COLUMNS} FROM api_keys WHERE revoked_at IS NULL"
            " ORDER BY created_at DESC, hash LIMIT ? OFFSET ?",
            (limit, offset),
        ).fetchall()
        return [rows.key_from_row(row, from_iso) for row in found]

    async def spend_by_day(self: _Host, since: datetime, until: datetime) -> list[DaySpend]:
        found = self._reader.execute(
            "SELECT substr(created_at, 1, 10) AS day, sum(cost_nanos), count(*)"
            " FROM generations WHERE created_at >= ? AND created_at < ?"
            " GROUP BY day ORDER BY day",
            (iso(since), iso(until)),
        ).fetchall()
        return [DaySpend(date.fromisoformat(day), int(cost), int(n)) for day, cost, n in found]

    async def user_usage_audit(self: _Host, user_id: str, now: datetime) -> UsageAudit:
        return audit_of(self._reader, "user_id", user_id, now)
