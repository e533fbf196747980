"""PostgreSQL: the usage history, read from the daily rollup and the generation records.

A mixin of :class:`~modelgates.store.postgres.PostgresStore`. The rollup
(``usage_daily``, migration 0012) is written by a trigger on the insert of each
generation record, so within ``modelgates_settle``'s transaction and round trip;
nothing here writes.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Protocol

import asyncpg

from modelgates.models import Generation, UsageDay
from modelgates.store import rows
from modelgates.store.base import utc
from modelgates.store.sqlite_activity import USAGE_DAY_COLUMNS, usage_day_from_row


class _Host(Protocol):
    _pool: asyncpg.Pool


class PostgresActivity:
    """The usage-history part of the :class:`~modelgates.store.base.Store` protocol."""

    async def usage_days(
        self: _Host, user_id: str, since: date, until: date, key_hash: str | None = None
    ) -> list[UsageDay]:
        async with self._pool.acquire() as conn:
            found = await conn.fetch(
                f"SELECT {USAGE_DAY_COLUMNS} FROM usage_daily"
                " WHERE user_id = $1 AND day >= $2 AND day <= $3"
                " AND ($4::text IS NULL OR key_hash = $4)"
                " ORDER BY day, model, provider, upstream_model, key_hash",
                user_id, since, until, key_hash,
            )  # fmt: skip
        return [usage_day_from_row(row, row["day"]) for row in found]

    async def recent_generations(
        self: _Host, user_id: str, since: datetime, limit: int
    ) -> list[Generation]:
        async with self._pool.acquire() as conn:
            found = await conn.fetch(
                f"SELECT {', '.join(rows.GENERATION_COLUMNS)} FROM generations"
                " WHERE user_id = $1 AND created_at >= $2 ORDER BY created_at DESC, id LIMIT $3",
                user_id, since, limit,
            )  # fmt: skip
        return [rows.generation_from_row(row, utc) for row in found]
