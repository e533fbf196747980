"""SQLite: the budget alerts' outbox, its deliveries and their attempts.

A mixin of :class:`~modelgates.store.sqlite.SqliteStore`, and :func:`record_alerts`,
which the settlement calls inside its own transaction (so an alert exists exactly when
the charge that fired it does). Claims run in a ``BEGIN IMMEDIATE`` transaction: the
write lock makes "pick the due deliveries, lease them" atomic across processes.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Protocol, TypeVar

from modelgates.models import (
    AlertAttempt,
    AlertChannel,
    AlertDelivery,
    AlertScope,
    AlertToSend,
    AttemptOutcome,
    Generation,
)
from modelgates.store import rows
from modelgates.store.base import from_iso, iso
from modelgates.windows import Reset, window_start

T = TypeVar("T")

LIFETIME_START = iso(datetime(1970, 1, 1, tzinfo=UTC))
"""``window_start`` of an alert on a limit without reset (period ``total``)."""

_INSERT_ALERT = (
    "INSERT INTO budget_alerts (id, scope, subject, user_id, key_hash, threshold, period,"
    " window_start, limit_nanos, usage_nanos, generation_id, created_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)


class _Host(Protocol):
    _reader: sqlite3.Connection

    async def _write(
        self, work: Callable[[sqlite3.Connection], T], *, inline: bool = True
    ) -> T: ...


def new_alert_id() -> str:
    """``msg_`` and 32 hex digits, as PostgreSQL's ``modelgates_record_alerts`` makes."""
    return "msg_" + uuid.uuid4().hex


AlertBudget = tuple[AlertScope, str, int | None, Reset | None, int]
"""A budget a charge drew on, as the settlement's statements return it: its scope, its
subject (the key's hash, the user's id), limit and reset, and the spend in the limit's
window at the charge, the charge included."""


def record_alerts(
    conn: sqlite3.Connection,
    record: Generation,
    key_hash: str,
    budgets: Sequence[AlertBudget],
    thresholds: Sequence[int],
) -> int:
    """Inside a settlement's transaction, after the charge: record the alerts it fired
    for the ``budgets`` of ``key_hash`` (the key charged) and of its user (Store.settle);
    how many. A threshold once reached stays so for the window, and the unique
    constraint keeps its alert to one; below the lowest threshold nothing is written."""
    at = record.created_at
    fired = 0
    ordered = sorted(thresholds)
    if not ordered:
        return 0
    for scope, subject, limit, reset, spend in budgets:
        if limit is None or limit <= 0 or spend * 100 < ordered[0] * limit:
            continue
        start = LIFETIME_START if reset is None else iso(window_start(at, reset))
        for threshold in ordered:
            if spend * 100 < threshold * limit:
                break
            cur = conn.execute(
                _INSERT_ALERT,
                (new_alert_id(), scope, subject, record.user_id, key_hash, threshold,
                 reset or "total", start, limit, spend, record.id, iso(at)),
            )  # fmt: skip
            fired += cur.rowcount
    return fired


_DELIVERIES = (
    f"SELECT {rows.DELIVERY_COLUMNS} FROM alert_deliveries d"
    " JOIN budget_alerts a ON a.id = d.alert_id"
)


class SqliteAlerts:
    """The budget alerts part of the :class:`~modelgates.store.base.Store` protocol."""

    async def get_alert_webhook(self: _Host, user_id: str) -> str | None:
        row = self._reader.execute(
            "SELECT url FROM alert_webhooks WHERE user_id = ?", (user_id,)
        ).fetchone()
        return None if row is None else str(row[0])

    async def set_alert_webhook(self: _Host, user_id: str, url: str | None, now: datetime) -> None:
        def change(conn: sqlite3.Connection) -> None:
            if url is None:
                conn.execute("DELETE FROM alert_webhooks WHERE user_id = ?", (user_id,))
                return
            conn.execute(
                "INSERT INTO alert_webhooks (user_id, url, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (user_id) DO UPDATE SET url = excluded.url,"
                " updated_at = excluded.updated_at",
                (user_id, url, iso(now)),
            )

        await self._write(change)

    async def unsent_alerts(self: _Host, limit: int) -> list[AlertToSend]:
        found = self._reader.execute(
            f"SELECT {rows.ALERT_COLUMNS}, u.email, k.label, w.url AS webhook"
            " FROM budget_alerts a JOIN users u ON u.id = a.user_id"
            " LEFT JOIN api_keys k ON k.hash = a.key_hash"
            " LEFT JOIN alert_webhooks w ON w.user_id = a.user_id"
            " WHERE a.fanned_out_at IS NULL ORDER BY a.created_at LIMIT ?",
            (limit,),
        ).fetchall()
        return [
            AlertToSend(rows.alert_from_row(row, from_iso), row["email"], row["label"],
                        row["webhook"])
            for row in found
        ]  # fmt: skip

    async def fan_out(
        self: _Host,
        alert_id: str,
        payload: str,
        destinations: list[tuple[str, AlertChannel, str]],
        now: datetime,
    ) -> None:
        def apply(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE budget_alerts SET payload = coalesce(payload, ?), fanned_out_at = ?"
                " WHERE id = ?",
                (payload, iso(now), alert_id),
            )
            conn.executemany(
                "INSERT INTO alert_deliveries (id, alert_id, channel, destination, status,"
                " next_attempt_at, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, 'pending', ?, ?, ?) ON CONFLICT DO NOTHING",
                [(delivery_id, alert_id, channel, destination, iso(now), iso(now), iso(now))
                 for delivery_id, channel, destination in destinations],
            )  # fmt: skip

        await self._write(apply)

    async def claim_deliveries(
        self: _Host, now: datetime, lease_until: datetime, token: str, limit: int
    ) -> list[tuple[AlertDelivery, str]]:
        def claim(conn: sqlite3.Connection) -> list[tuple[AlertDelivery, str]]:
            # BEGIN IMMEDIATE holds the write lock: no other process picks the same rows.
            conn.execute(
                "UPDATE alert_deliveries SET lease_until = ?, lease_token = ?"
                " WHERE id IN (SELECT id FROM alert_deliveries WHERE status = 'pending'"
                " AND next_attempt_at <= ? AND (lease_until IS NULL OR lease_until <= ?)"
                " ORDER BY next_attempt_at LIMIT ?)",
                (iso(lease_until), token, iso(now), iso(now), limit),
            )
            found = conn.execute(
                f"{_DELIVERIES} WHERE d.lease_token = ? AND d.status = 'pending'"
                " AND d.lease_until = ?",
                (token, iso(lease_until)),
            ).fetchall()
            return [(rows.delivery_from_row(row, from_iso), row["payload"]) for row in found]

        return await self._write(claim)

    async def finish_attempt(
        self: _Host, delivery_id: str, token: str, outcome: AttemptOutcome, now: datetime
    ) -> bool:
        status = outcome.status
        next_at = None if outcome.next_attempt_at is None else iso(outcome.next_attempt_at)

        def record(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE alert_deliveries SET attempts = attempts + 1, status = ?,"
                " next_attempt_at = ?, lease_until = NULL, lease_token = NULL,"
                " last_http_status = ?, last_error = ?, updated_at = ?,"
                " delivered_at = CASE WHEN ? THEN ? END"
                " WHERE id = ? AND lease_token = ? RETURNING attempts",
                (status, next_at, outcome.http_status, outcome.error, iso(now),
                 outcome.delivered, iso(now), delivery_id, token),
            )  # fmt: skip
            found = cur.fetchone()
            if found is None:
                return False
            conn.execute(
                "INSERT INTO alert_attempts (delivery_id, number, attempted_at, http_status,"
                " error) VALUES (?, ?, ?, ?, ?)",
                (delivery_id, found[0], iso(now), outcome.http_status, outcome.error),
            )
            return True

        return await self._write(record)

    async def list_deliveries(
        self: _Host, *, offset: int, limit: int, user_id: str | None = None
    ) -> list[AlertDelivery]:
        where, params = ("", ()) if user_id is None else (" WHERE a.user_id = ?", (user_id,))
        found = self._reader.execute(
            f"{_DELIVERIES}{where} ORDER BY d.created_at DESC, d.id LIMIT ? OFFSET ?",
            (*params, limit, offset),
        ).fetchall()
        return [rows.delivery_from_row(row, from_iso) for row in found]

    async def list_attempts(self: _Host, delivery_id: str) -> list[AlertAttempt]:
        found = self._reader.execute(
            "SELECT * FROM alert_attempts WHERE delivery_id = ? ORDER BY number",
            (delivery_id,),
        ).fetchall()
        return [rows.attempt_from_row(row, from_iso) for row in found]
