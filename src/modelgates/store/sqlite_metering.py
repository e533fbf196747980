"""SQLite: admission, settlement and the generation records.

A mixin of :class:`~modelgates.store.sqlite.SqliteStore`. Admission runs in one
``BEGIN IMMEDIATE`` transaction: the database's write lock is what makes "read the
remaining budgets (the key's, its minting key's, its user's), then reserve" atomic,
across processes too; a settlement charges the key and its user in one transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Literal, Protocol, TypeVar

from modelgates.admission import Ask, Budget, decide
from modelgates.errors import StoreError
from modelgates.models import Admission, ApiKey, Generation, UsageAudit
from modelgates.store import rows
from modelgates.store.base import from_iso, iso, window_start_texts
from modelgates.store.sqlite_alerts import AlertBudget, record_alerts

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
_KEY_HASH = rows.GENERATION_FIELDS.index("key_hash")
_FLAGS = tuple(rows.GENERATION_FIELDS.index(name) for name in rows.GENERATION_FLAGS)
"""Where the record's booleans are among its values: bound as integers, since sqlite3
binds ``bool`` only after a search of its adapters (~1 µs each), and that is how
SQLite stores them anyway."""
_CHARGED_KEY = "(SELECT coalesce(rotated_to, hash) FROM api_keys WHERE hash = :hash)"
"""The key that was charged, or its successor if it was rotated meanwhile."""
_ADD_CHARGE_TO_KEY = (
    f"UPDATE api_keys SET {rows.window_increments(':c', ':day', ':week', ':month')},"
    f" last_used_at = :now WHERE hash = {_CHARGED_KEY}"
)
_ADD_CHARGE_TO_USER = (
    f"UPDATE users SET {rows.window_increments(':c', ':day', ':week', ':month')} WHERE id = :id"
)
_CHARGED = f"SELECT {_CHARGED_KEY}"
_CHARGED_BUDGETS = (
    f"SELECT k.hash, k.limit_nanos, k.limit_reset, {rows.spend_of_own_limit('k.')},"
    f" u.limit_nanos, u.limit_reset, {rows.spend_of_own_limit('u.')}"
    f" FROM api_keys k, users u WHERE k.hash = {_CHARGED_KEY} AND u.id = :id"
)
"""After the charge, what the alerts need: the key charged and the user, each with its
limit and the spend in the limit's window, the charge included. (One read of both: half
the cost of ``UPDATE … RETURNING`` on the two updates, which materialises its rows.)"""

_MINTED = (
    f"(SELECT coalesce(sum({rows.spend_in_window_of('k.limit_reset', 'c.')}), 0)"
    " FROM api_keys c WHERE c.parent_key_hash = k.hash)"
)
_HELD_FOR_KEY = (
    "(SELECT coalesce(sum(amount_nanos), 0) FROM reservations"
    " WHERE (key_hash = k.hash OR parent_key_hash = k.hash) AND expires_at > :now)"
)
_HELD_FOR_USER = (
    "(SELECT coalesce(sum(amount_nanos), 0) FROM reservations"
    " WHERE user_id = u.id AND expires_at > :now)"
)
_BUDGETS = (
    f"SELECT {rows.OWNED_KEY_COLUMNS},"
    " u.disabled, u.limit_nanos, u.limit_reset,"
    f" CASE WHEN u.limit_nanos IS NULL THEN 0 ELSE {rows.spend_of_own_limit('u.')} END,"
    f" CASE WHEN u.limit_nanos IS NULL THEN 0 ELSE {_HELD_FOR_USER} END,"
    f" CASE WHEN k.limit_nanos IS NULL THEN 0 ELSE {rows.spend_of_own_limit('k.')}"
    f" + {_MINTED} + {_HELD_FOR_KEY} END"
    " FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.hash = :hash"
)
"""A key and what admission weighs against its budgets, in one statement: the key, its
user's state and budget (spend in its window, live reservations of the user's keys), and
what draws on the key's limit (its own and its sub-keys' spend in the limit's window, the
live reservations of the key and of its sub-keys). Only live reservations count; expired ones
(a crashed process's) are left to the background purge rather than deleted on every
admission. The subqueries run only for a limit or a budget that is set."""
_BUDGET_COLUMNS = rows.KEY_COLUMN_COUNT


def key_in(conn: sqlite3.Connection, key_hash: str) -> ApiKey | None:
    row = conn.execute(f"SELECT {rows.KEY_COLUMNS} FROM api_keys WHERE hash = ?", (key_hash,))
    found = row.fetchone()
    return None if found is None else rows.key_from_row(found, from_iso)


class _Budgets:
    """A row of :data:`_BUDGETS`, decoded (``key_drawn``: what draws on the key's limit)."""

    __slots__ = ("key", "key_drawn", "user_disabled", "user_held", "user_limit", "user_reset",
                 "user_spent")  # fmt: skip

    def __init__(self, values: tuple[Any, ...]) -> None:
        self.key = rows.key_from_values(values, from_iso)
        (disabled, self.user_limit, self.user_reset, self.user_spent, self.user_held,
         self.key_drawn) = values[_BUDGET_COLUMNS:]  # fmt: skip
        self.user_disabled = bool(disabled)


def _budgets_of(conn: sqlite3.Connection, key_hash: str, params: dict[str, Any]) -> _Budgets | None:
    found = conn.execute(_BUDGETS, {**params, "hash": key_hash}).fetchone()
    return None if found is None else _Budgets(tuple(found))


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
        day, week, month = window_start_texts(now)
        at = iso(now)
        params = {"day": day, "week": week, "month": month, "now": at}

        def key_remaining(found: _Budgets) -> int:
            assert found.key.limit is not None
            return int(found.key.limit - found.key_drawn)

        def admit(conn: sqlite3.Connection) -> Admission:
            # BEGIN IMMEDIATE holds the database's write lock: nobody else admits
            # or settles until this transaction ends, across processes too.
            found = _budgets_of(conn, key_hash, params)
            if found is not None and found.key.rotated_to is not None:
                # a rotated key's requests are its successor's
                found = _budgets_of(conn, found.key.rotated_to, params)
            if found is None:
                return Admission(key=None)
            key = found.key
            if found.user_disabled:
                return Admission(key, user_disabled=True)
            budgets = []
            if key.limit is not None:
                budgets.append(
                    Budget("key_limit", key.limit_reset or "total", key_remaining(found))
                )
            if key.parent_key_hash is not None:
                parent = _budgets_of(conn, key.parent_key_hash, params)
                if parent is not None and parent.key.limit is not None:
                    budgets.append(
                        Budget("parent_key", parent.key.limit_reset or "total",
                               key_remaining(parent))
                    )  # fmt: skip
            if found.user_limit is not None:
                remaining = found.user_limit - found.user_spent - found.user_held
                budgets.append(Budget("user_budget", found.user_reset or "total", int(remaining)))
            decision = decide(budgets, ask)
            if decision.refusal is None:
                conn.execute(
                    "INSERT INTO reservations (id, key_hash, parent_key_hash, user_id,"
                    " amount_nanos, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (reservation_id, key.hash, key.parent_key_hash, key.user_id,
                     decision.amount, at, iso(expires_at)),
                )  # fmt: skip
            return Admission(key, decision.amount, decision.granted_tokens, decision.refusal)

        return await self._write(admit)

    async def settle(
        self: _Host, reservation_id: str, record: Generation, thresholds: Sequence[int] = ()
    ) -> int:
        day, week, month = window_start_texts(record.created_at)
        at = iso(record.created_at)
        values = list(rows.generation_values(record, lambda _: at))
        for index in _FLAGS:
            values[index] = int(values[index])
        charge = {"c": record.cost, "day": day, "week": week, "month": month, "now": at}

        def apply(conn: sqlite3.Connection) -> int:
            conn.execute("DELETE FROM reservations WHERE id = ?", (reservation_id,))
            conn.execute(_ADD_CHARGE_TO_KEY, {**charge, "hash": record.key_hash})
            conn.execute(_ADD_CHARGE_TO_USER, {**charge, "id": record.user_id})
            if thresholds:
                params = {**charge, "hash": record.key_hash, "id": record.user_id}
                found = conn.execute(_CHARGED_BUDGETS, params).fetchone()
            else:
                found = conn.execute(_CHARGED, {"hash": record.key_hash}).fetchone()
            if found is None:
                raise StoreError(f"no key {record.key_hash!r} of user {record.user_id!r} to charge")
            target = found[0]
            values[_KEY_HASH] = target
            conn.execute(_INSERT_GENERATION, values)
            if not thresholds:
                return 0
            _, key_limit, key_reset, key_spend, user_limit, user_reset, user_spend = found
            budgets: list[AlertBudget] = [
                ("key_limit", target, key_limit, key_reset, key_spend),
                ("user_budget", record.user_id, user_limit, user_reset, user_spend),
            ]
            return record_alerts(conn, record, target, budgets, thresholds)

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
