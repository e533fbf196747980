"""PostgreSQL: key rotation, the one write that moves a key's history to another row.

A mixin of :class:`~modelgates.store.postgres.PostgresStore`. One transaction, which
takes the user's row lock first, as admission and settlement do (migration 0010): they
wait for it, and read which key a hash stands for only once it has committed. A
deadlock with the background purge (both touch a key's generation records) is retried.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

import asyncpg

from modelgates.models import ApiKey
from modelgates.store import rows
from modelgates.store.base import utc

ATTEMPTS = 3


class _Host(Protocol):
    _pool: asyncpg.Pool

    def _keys_changed(self) -> None: ...


class PostgresRotation:
    """The rotation part of the :class:`~modelgates.store.base.Store` protocol."""

    async def rotate_key(
        self: _Host, old_hash: str, new_hash: str, now: datetime, grace_until: datetime
    ) -> ApiKey | None:
        for attempt in range(ATTEMPTS):
            try:
                successor = await _rotate(self._pool, old_hash, new_hash, now, grace_until)
                self._keys_changed()
                return successor
            except asyncpg.DeadlockDetectedError:
                if attempt == ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")


async def _rotate(
    pool: asyncpg.Pool, old_hash: str, new_hash: str, now: datetime, grace_until: datetime
) -> ApiKey | None:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "SELECT 1 FROM users WHERE id = (SELECT user_id FROM api_keys WHERE hash = $1)"
            " FOR UPDATE",
            old_hash,
        )
        live = await conn.fetchval(
            "SELECT 1 FROM api_keys WHERE hash = $1 AND revoked_at IS NULL FOR UPDATE", old_hash
        )
        if live is None:
            return None
        await conn.execute(
            rows.successor_insert("$1::text", "$2::timestamptz") + " WHERE hash = $3",
            new_hash, now, old_hash,
        )  # fmt: skip
        for move in rows.ROTATION_MOVES:
            await conn.execute(move.format(new="$1", old="$2"), new_hash, old_hash)
        await conn.execute(
            f"UPDATE api_keys SET {rows.ZEROED_COUNTERS}, revoked_at = $2, updated_at = $2,"
            " rotated_to = $3, grace_until = $4 WHERE hash = $1",
            old_hash, now, new_hash, grace_until,
        )  # fmt: skip
        row = await conn.fetchrow(
            f"SELECT {rows.KEY_COLUMNS} FROM api_keys WHERE hash = $1", new_hash
        )
    assert row is not None
    return rows.key_from_row(row, utc)
