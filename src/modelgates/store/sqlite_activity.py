"""SQLite: the usage history, read from the daily rollup and the generation records.

A mixin of :class:`~modelgates.store.sqlite.SqliteStore`. The rollup (``usage_daily``,
migration 0012) is written by a trigger on the insert of each generation record, so
within the settlement's transaction; nothing here writes.
"""

from __future__ import annotations

import sqlite3
from datetime import date, datetime
from typing import Any, Protocol

from modelgates.models import Generation, UsageDay
from modelgates.store import rows
from modelgates.store.base import from_iso, iso

USAGE_DAY_COLUMNS = (
    "day, key_hash, model, provider, upstream_model, requests, cost_nanos, prompt_tokens,"
    " completion_tokens, reasoning_tokens, cached_tokens"
)
"""The rollup's columns in :class:`~modelgates.models.UsageDay`'s order."""


class _Host(Protocol):
    _reader: sqlite3.Connection


def usage_day_from_row(row: Any, day: date) -> UsageDay:
    values = tuple(row)
    return UsageDay(day, *values[1:5], *(int(value) for value in values[5:11]))


class SqliteActivity:
    """The usage-history part of the :class:`~modelgates.store.base.Store` protocol."""

    async def usage_days(
        self: _Host, user_id: str, since: date, until: date, key_hash: str | None = None
    ) -> list[UsageDay]:
        found = self._reader.execute(
            f"SELECT {USAGE_DAY_COLUMNS} FROM usage_daily"
            " WHERE user_id = ? AND day >= ? AND day <= ? AND (? IS NULL OR key_hash = ?)"
            " ORDER BY day, model, provider, upstream_model, key_hash",
            (user_id, since.isoformat(), until.isoformat(), key_hash, key_hash),
        ).fetchall()
        return [usage_day_from_row(row, date.fromisoformat(row[0])) for row in found]

    async def recent_generations(
        self: _Host, user_id: str, since: datetime, limit: int
    ) -> list[Generation]:
        found = self._reader.execute(
            f"SELECT {', '.join(rows.GENERATION_COLUMNS)} FROM generations"
            " WHERE user_id = ? AND created_at >= ? ORDER BY created_at DESC, id LIMIT ?",
            (user_id, iso(since), limit),
        ).fetchall()
        return [rows.generation_from_row(row, from_iso) for row in found]
