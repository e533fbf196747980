"""SQLite: admission, settlement and the generation records.

A mixin of :class:`~modelgates.store.sqlite.SqliteStore`. Admission runs in one
``BEGIN IMMEDIATE`` transaction: the database's write lock is what makes "read the
remaining budgets (the key's, its minting key's, its user's), then reserve" atomic,
across processes too; a settlement charges the key and its user in one transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, Literal, Protocol, TypeVar

from modelgates.admission import Ask, Budget, Scope, decide
from modelgates.models import Admission, ApiKey, Generation, UsageAudit, User
from modelgates.store import rows
from modelgates.store.base import from_iso, iso
from modelgates.store.sqlite_alerts import record_alerts
from modelgates.windows import window_starts

T = TypeVar("T")


class _Host(Protocol):
    _reader: sqlite3.Connection

    async def _write(
        self: _Host, work: Callable[[sqlite3.Connection], T], *, inline: bool = True
    ) -> T: ...

    def _one(self, sql: str, params: tuple[Any, ...]) -> sqlite3.Row | None: ...


_GENERATION_COLUMNS = ", ".join(rows.GENERATION_COLUMNS)
_INSERT_GENERATION = (
    f"INSERT INTO generations ({_GENERATION_COLUMNS})"
    f" VALUES ({rows.placeholders(len(rows.GENERATION_COLUMNS), 'qmark')})"
)
_ADD_CHARGE_TO_KEY = (
    f"UPDATE api_keys SET {rows.window_increments(':c', ':day', ':week', ':month')},"
    " last_used_at = :now WHERE hash = :hash"
)
_ADD_CHARGE_TO_USER = (
    f"UPDATE users SET {rows.window_increments(':c', ':day', ':week', ':month')} WHERE id = :id"
)


def key_in(conn: sqlite3.Connection, key_hash: str) -> ApiKey | None:
    row = conn.execute(f"SELECT {rows.KEY_COLUMNS} FROM api_keys WHERE hash = ?", (key_hash,))
    found = row.fetchone()
    return None if found is None else rows.key_from_row(found, from_iso)


def user_in(conn: sqlite3.Connection, user_id: str) -> User:
    found: sqlite3.Row = conn.execute("SELECT * FROM users WHERE id = ?", (user_id,)).fetchone()
    return rows.user_from_row(found, from_iso)


class SqliteMetering:
    """The metering part of the :class:`~modelgates.store.base.Store` protocol."""

    async def reserve(
        self: _Host,
        key_hash: str,
        reservation_id: str,
        ask: Ask,
        now: datetime,
        expires_at: datetime,
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

        def user_remaining(conn: sqlite3.Connection, user: User) -> int:
            assert user.limit is not None
            (held,) = conn.execute(
                "SELECT coalesce(sum(amount_nanos), 0) FROM reservations"
                " WHERE user_id = ? AND expires_at > ?",
                (user.id, iso(now)),
            ).fetchone()
            return int(user.limit - user.usage.in_window(now, user.limit_reset) - held)

        def admit(conn: sqlite3.Connection) -> Admission:
            # BEGIN IMMEDIATE holds the database's write lock: nobody else admits
            # or settles until this transaction ends, across processes too.
            key = key_in(conn, key_hash)
            if key is not None and key.rotated_to is not None:
                key = key_in(conn, key.rotated_to)  # a rotated key's requests are its successor's
            if key is None:
                return Admission(key=None)
            user = user_in(conn, key.user_id)
            if user.disabled:
                return Admission(key, user_disabled=True)
            parent = None if key.parent_key_hash is None else key_in(conn, key.parent_key_hash)
            holders: tuple[tuple[Scope, ApiKey | None], ...] = (
                ("key_limit", key),
                ("parent_key", parent),
            )
            budgets = [
                Budget(scope, holder.limit_reset or "total", remaining(conn, holder))
                for scope, holder in holders
                if holder is not None and holder.limit is not None
            ]
            if user.limit is not None:
                budgets.append(
                    Budget("user_budget", user.limit_reset or "total", user_remaining(conn, user))
                )
            decision = decide(budgets, ask)
            if decision.refusal is None:
                conn.execute(
                    "INSERT INTO reservations (id, key_hash, parent_key_hash, user_id,"
                    " amount_nanos, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (reservation_id, key.hash, key.parent_key_hash, key.user_id,
                     decision.amount, iso(now), iso(expires_at)),
                )  # fmt: skip
            return Admission(key, decision.amount, decision.granted_tokens, decision.refusal)

        return await self._write(admit)

    async def settle(
        self: _Host, reservation_id: str, record: Generation, thresholds: Sequence[int] = ()
    ) -> int:
        day, week, month = window_starts(record.created_at)
        values = rows.generation_values(record, iso)
        charge = {"c": record.cost, "day": iso(day), "week": iso(week), "month": iso(month),
                  "now": iso(record.created_at)}  # fmt: skip

        def apply(conn: sqlite3.Connection) -> int:
            conn.execute("DELETE FROM reservations WHERE id = ?", (reservation_id,))
            # The key that was charged, or its successor if it was rotated meanwhile.
            (target,) = conn.execute(
                "SELECT coalesce(rotated_to, hash) FROM api_keys WHERE hash = ?",
                (record.key_hash,),
            ).fetchone()
            conn.execute(
                _INSERT_GENERATION,
                values
                if target == record.key_hash
                else rows.generation_values(replace(record, key_hash=target), iso),
            )
            conn.execute(_ADD_CHARGE_TO_KEY, {**charge, "hash": target})
            conn.execute(_ADD_CHARGE_TO_USER, {**charge, "id": record.user_id})
            if not thresholds:
                return 0
            return record_alerts(
                conn, record, key_in(conn, target), user_in(conn, record.user_id), thresholds
            )

        return await self._write(apply)

    async def release(self: _Host, reservation_id: str) -> None:
        await self._write(
            lambda conn: conn.execute("DELETE FROM reservations WHERE id = ?", (reservation_id,))
        )

    async def get_generation(self: _Host, generation_id: str) -> Generation | None:
        row = self._one(
            f"SELECT {_GENERATION_COLUMNS} FROM generations WHERE id = ?", (generation_id,)
        )
        return None if row is None else rows.generation_from_row(row, from_iso)

    async def usage_audit(self: _Host, key_hash: str, now: datetime) -> UsageAudit:
        return audit_of(self._reader, "key_hash", key_hash, now)

    async def purge_reservations(self: _Host, now: datetime, limit: int) -> int:
        def delete(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "DELETE FROM reservations WHERE id IN (SELECT id FROM reservations"
                " WHERE expires_at <= ? LIMIT ?)",
                (iso(now), limit),
            )
            return int(cur.rowcount)

        return await self._write(delete)

    async def purge_generations(self: _Host, before: datetime, limit: int) -> int:
        def delete(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "DELETE FROM generations WHERE id IN (SELECT id FROM generations"
                " WHERE created_at < ? LIMIT ?)",
                (iso(before), limit),
            )
            return int(cur.rowcount)

        return await self._write(delete)


def audit_of(
    reader: sqlite3.Connection, column: Literal["key_hash", "user_id"], value: str, now: datetime
) -> UsageAudit:
    """What was charged to, and is reserved for, the key or the user ``column`` names."""
    charged = reader.execute(
        f"SELECT coalesce(sum(cost_nanos), 0), count(*) FROM generations WHERE {column} = ?",
        (value,),
    ).fetchone()
    reserved = reader.execute(
        "SELECT coalesce(sum(amount_nanos), 0), count(*) FROM reservations"
        f" WHERE {column} = ? AND expires_at > ?",
        (value, iso(now)),
    ).fetchone()
    return UsageAudit(
        charged=int(charged[0]),
        charges=int(charged[1]),
        reserved=int(reserved[0]),
        reservations=int(reserved[1]),
    )
