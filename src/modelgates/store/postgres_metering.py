"""PostgreSQL: admission, settlement and the generation records.

A mixin of :class:`~modelgates.store.postgres.PostgresStore`. Admission and
settlement run through the PL/pgSQL functions of migration 0010:
``modelgates_reserve`` takes the budgets' row locks (the user's, then the keys'),
which serialise the admissions and settlements of a user's keys across processes,
and decides while holding them. The admissions and settlements waiting in this
process at once share one round trip and one commit
(:mod:`~modelgates.store.postgres_batch`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal, Protocol, cast

import asyncpg
import msgspec

from modelgates.admission import Ask, LimitKind, Scope
from modelgates.models import Admission, Generation, Refusal, UsageAudit
from modelgates.store import rows
from modelgates.store.base import iso, utc
from modelgates.store.postgres_batch import MeterBatcher


class _Host(Protocol):
    _pool: asyncpg.Pool
    _meter: MeterBatcher

    async def _one(self: _Host, sql: str, *args: Any) -> asyncpg.Record | None: ...

    async def _purge(self: _Host, sql: str, *args: Any) -> int: ...


_GENERATION_COLUMNS = ", ".join(rows.GENERATION_COLUMNS)


class PostgresMetering:
    """The metering part of the :class:`~modelgates.store.base.Store` protocol."""

    async def reserve(
        self: _Host,
        key_hash: str,
        reservation_id: str,
        ask: Ask,
        now: datetime,
        expires_at: datetime,
    ) -> Admission:
        row = await self._meter.reserve(key_hash, reservation_id, ask, now, expires_at)
        if row is None:
            return Admission(key=None)
        if row["refused_scope"] == "user_disabled":
            return Admission(key=rows.key_from_row(row, utc), user_disabled=True)
        refusal = None
        if row["refused"] is not None:
            refusal = Refusal(
                cast("Scope", row["refused_scope"]),
                cast("LimitKind", row["refused"]),
                int(row["affordable"]),
            )
        granted = row["granted"]
        return Admission(
            key=rows.key_from_row(row, utc),
            amount=int(row["amount"]),
            granted_tokens=None if granted is None else int(granted),
            refused=refusal,
        )

    async def settle(
        self: _Host, reservation_id: str, record: Generation, thresholds: Sequence[int] = ()
    ) -> int:
        # modelgates_settle updates the user's row and the key's before it deletes the
        # reservation and inserts the record (the lock order of 0010);
        # modelgates_settle_alerting (0013) then records the alerts the charge fired.
        values = rows.generation_values(record, iso)
        columns = dict(zip(rows.GENERATION_COLUMNS, values, strict=True))
        encoded = msgspec.json.encode(columns).decode()
        return await self._meter.settle(reservation_id, encoded, record.created_at, thresholds)

    async def release(self: _Host, reservation_id: str) -> None:
        async with self._pool.acquire() as conn:
            await conn.execute("DELETE FROM reservations WHERE id = $1", reservation_id)

    async def get_generation(self: _Host, generation_id: str) -> Generation | None:
        row = await self._one(
            f"SELECT {_GENERATION_COLUMNS} FROM generations WHERE id = $1", generation_id
        )
        return None if row is None else rows.generation_from_row(row, utc)

    async def usage_audit(self: _Host, key_hash: str, now: datetime) -> UsageAudit:
        return await audit_of(self._pool, "key_hash", key_hash, now)

    async def purge_reservations(self: _Host, now: datetime, limit: int) -> int:
        return await self._purge(
            "DELETE FROM reservations WHERE id IN (SELECT id FROM reservations"
            " WHERE expires_at <= $1 LIMIT $2)",
            now, limit,
        )  # fmt: skip

    async def purge_generations(self: _Host, before: datetime, limit: int) -> int:
        return await self._purge(
            "DELETE FROM generations WHERE id IN (SELECT id FROM generations"
            " WHERE created_at < $1 LIMIT $2)",
            before, limit,
        )  # fmt: skip


async def audit_of(
    pool: asyncpg.Pool, column: Literal["key_hash", "user_id"], value: str, now: datetime
) -> UsageAudit:
    """What was charged to, and is reserved for, the key or the user ``column`` names."""
    async with pool.acquire() as conn:
        charged = await conn.fetchrow(
            "SELECT coalesce(sum(cost_nanos), 0) AS s, count(*) AS n FROM generations"
            f" WHERE {column} = $1",
            value,
        )
        reserved = await conn.fetchrow(
            "SELECT coalesce(sum(amount_nanos), 0) AS s, count(*) AS n FROM reservations"
            f" WHERE {column} = $1 AND expires_at > $2",
            value, now,
        )  # fmt: skip
    assert charged is not None
    assert reserved is not None
    return UsageAudit(
        charged=int(charged["s"]),
        charges=int(charged["n"]),
        reserved=int(reserved["s"]),
        reservations=int(reserved["n"]),
    )
