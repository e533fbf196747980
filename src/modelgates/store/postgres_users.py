"""PostgreSQL: users as the operator manages them (budgets, disabling, roles, listings)
and the reads of the admin pages (every key, spend per day).

A mixin of :class:`~modelgates.store.postgres.PostgresStore`, kept apart so that the
store's core file stays about metering and codes. A user's row is their budget's lock
(migration 0010): a change here waits for the admission or settlement holding it,
and applies to the next.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

import asyncpg
from msgspec import UNSET, UnsetType

from modelgates.models import ApiKey, DaySpend, UsageAudit, User, UserSummary
from modelgates.store import rows
from modelgates.store.base import like_pattern, user_changes, utc
from modelgates.store.postgres_metering import audit_of
from modelgates.windows import Reset


class _Host(Protocol):
    _pool: asyncpg.Pool

    async def _one(self, sql: str, *args: Any) -> asyncpg.Record | None: ...

    def _keys_changed(self) -> None: ...


class PostgresUsers:
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
        assignments = "".join(f", {column} = ${i}" for i, (column, _) in enumerate(changes, 3))
        row = await self._one(
            f"UPDATE users SET updated_at = $2{assignments} WHERE id = $1 RETURNING *",
            user_id, now, *(value for _, value in changes),
        )  # fmt: skip
        self._keys_changed()
        return None if row is None else rows.user_from_row(row, utc)

    async def list_users(
        self: _Host, *, search: str | None, offset: int, limit: int
    ) -> list[UserSummary]:
        async with self._pool.acquire() as conn:
            found = await conn.fetch(
                f"{rows.USER_SUMMARY_SQL} WHERE $1::text IS NULL OR u.email ILIKE $1 ESCAPE '\\'"
                " ORDER BY u.created_at, u.id LIMIT $2 OFFSET $3",
                like_pattern(search.lower()) if search else None, limit, offset,
            )  # fmt: skip
        return [rows.summary_from_row(row, utc) for row in found]

    async def list_every_key(self: _Host, *, offset: int, limit: int) -> list[ApiKey]:
        async with self._pool.acquire() as conn:
            found = await conn.fetch(
                f"SELECT {rows.KEY_COLUMNS} FROM api_keys WHERE revoked_at IS NULL"
                " ORDER BY created_at DESC, hash LIMIT $1 OFFSET $2",
                limit, offset,
            )  # fmt: skip
        return [rows.key_from_row(row, utc) for row in found]

    async def spend_by_day(self: _Host, since: datetime, until: datetime) -> list[DaySpend]:
        async with self._pool.acquire() as conn:
            found = await conn.fetch(
                "SELECT (created_at AT TIME ZONE 'UTC')::date AS day, sum(cost_nanos) AS cost,"
                " count(*) AS n FROM generations WHERE created_at >= $1 AND created_at < $2"
                " GROUP BY 1 ORDER BY 1",
                since, until,
            )  # fmt: skip
        return [DaySpend(row["day"], int(row["cost"]), int(row["n"])) for row in found]

    async def user_usage_audit(self: _Host, user_id: str, now: datetime) -> UsageAudit:
        return await audit_of(self._pool, "user_id", user_id, now)
