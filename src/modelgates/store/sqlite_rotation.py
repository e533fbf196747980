"""SQLite: key rotation, the one write that moves a key's history to another row.

A mixin of :class:`~modelgates.store.sqlite.SqliteStore`. It runs on the writer thread
(a key's records may be many rows, too many to move on the event loop), in one
``BEGIN IMMEDIATE`` transaction: admissions and settlements of every process wait for
it, so none of them sees half a rotation.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import datetime
from typing import Protocol, TypeVar

from modelgates.models import ApiKey
from modelgates.store import rows
from modelgates.store.base import iso
from modelgates.store.sqlite_metering import key_in

T = TypeVar("T")


class _Host(Protocol):
    async def _write(
        self, work: Callable[[sqlite3.Connection], T], *, inline: bool = True
    ) -> T: ...


class SqliteRotation:
    """The rotation part of the :class:`~modelgates.store.base.Store` protocol."""

    async def rotate_key(
        self: _Host, old_hash: str, new_hash: str, now: datetime, grace_until: datetime
    ) -> ApiKey | None:
        def rotate(conn: sqlite3.Connection) -> ApiKey | None:
            old = key_in(conn, old_hash)
            if old is None or old.revoked_at is not None:
                return None
            conn.execute(rows.successor_insert("?", "?") + " WHERE hash = ?",
                         (new_hash, iso(now), old_hash))  # fmt: skip
            for move in rows.ROTATION_MOVES:
                conn.execute(move.format(new="?", old="?"), (new_hash, old_hash))
            conn.execute(
                f"UPDATE api_keys SET {rows.ZEROED_COUNTERS}, revoked_at = ?, updated_at = ?,"
                " rotated_to = ?, grace_until = ? WHERE hash = ?",
                (iso(now), iso(now), new_hash, iso(grace_until), old_hash),
            )
            return key_in(conn, new_hash)

        return await self._write(rotate, inline=False)
