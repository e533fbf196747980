"""PostgreSQL: the budget alerts' outbox, its deliveries and their attempts.

A mixin of :class:`~modelgates.store.postgres.PostgresStore`. Alerts are recorded by
``modelgates_record_alerts`` (migration 0013) inside the settlement's own statement;
deliveries are claimed with ``FOR UPDATE SKIP LOCKED`` and a lease, so processes
sharing the database never try the same delivery at once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

import asyncpg

from modelgates.models import (
    AlertAttempt,
    AlertChannel,
    AlertDelivery,
    AlertToSend,
    AttemptOutcome,
)
from modelgates.store import rows
from modelgates.store.base import utc


class _Host(Protocol):
    _pool: asyncpg.Pool


_DELIVERIES = (
    f"SELECT {rows.DELIVERY_COLUMNS} FROM alert_deliveries d"
    " JOIN budget_alerts a ON a.id = d.alert_id"
)


class PostgresAlerts:
    """The budget alerts part of the :class:`~modelgates.store.base.Store` protocol."""

    async def get_alert_webhook(self: _Host, user_id: str) -> str | None:
        async with self._pool.acquire() as conn:
            url = await conn.fetchval("SELECT url FROM alert_webhooks WHERE user_id = $1", user_id)
        return None if url is None else str(url)

    async def set_alert_webhook(self: _Host, user_id: str, url: str | None, now: datetime) -> None:
        async with self._pool.acquire() as conn:
            if url is None:
                await conn.execute("DELETE FROM alert_webhooks WHERE user_id = $1", user_id)
                return
            await conn.execute(
                "INSERT INTO alert_webhooks (user_id, url, updated_at) VALUES ($1, $2, $3)"
                " ON CONFLICT (user_id) DO UPDATE SET url = excluded.url,"
                " updated_at = excluded.updated_at",
                user_id, url, now,
            )  # fmt: skip

    async def unsent_alerts(self: _Host, limit: int) -> list[AlertToSend]:
        async with self._pool.acquire() as conn:
            found = await conn.fetch(
                f"SELECT {rows.ALERT_COLUMNS}, u.email, k.label, w.url AS webhook"
                " FROM budget_alerts a JOIN users u ON u.id = a.user_id"
                " LEFT JOIN api_keys k ON k.hash = a.key_hash"
                " LEFT JOIN alert_webhooks w ON w.user_id = a.user_id"
                " WHERE a.fanned_out_at IS NULL ORDER BY a.created_at LIMIT $1",
                limit,
            )
        return [
            AlertToSend(rows.alert_from_row(row, utc), row["email"], row["label"], row["webhook"])
            for row in found
        ]

    async def fan_out(
        self: _Host,
        alert_id: str,
        payload: str,
        destinations: list[tuple[str, AlertChannel, str]],
        now: datetime,
    ) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "UPDATE budget_alerts SET payload = coalesce(payload, $1), fanned_out_at = $2"
                " WHERE id = $3",
                payload, now, alert_id,
            )  # fmt: skip
            await conn.executemany(
                "INSERT INTO alert_deliveries (id, alert_id, channel, destination, status,"
                " next_attempt_at, created_at, updated_at)"
                " VALUES ($1, $2, $3, $4, 'pending', $5, $5, $5) ON CONFLICT DO NOTHING",
                [(delivery_id, alert_id, channel, destination, now)
                 for delivery_id, channel, destination in destinations],
            )  # fmt: skip

    async def claim_deliveries(
        self: _Host, now: datetime, lease_until: datetime, token: str, limit: int
    ) -> list[tuple[AlertDelivery, str]]:
        async with self._pool.acquire() as conn:
            found = await conn.fetch(
                "WITH claimed AS (UPDATE alert_deliveries SET lease_until = $2, lease_token = $3"
                " WHERE id IN (SELECT id FROM alert_deliveries WHERE status = 'pending'"
                " AND next_attempt_at <= $1 AND (lease_until IS NULL OR lease_until <= $1)"
                " ORDER BY next_attempt_at LIMIT $4 FOR UPDATE SKIP LOCKED) RETURNING *)"
                f" {_DELIVERIES.replace('alert_deliveries d', 'claimed d')}",
                now, lease_until, token, limit,
            )  # fmt: skip
        return [(rows.delivery_from_row(row, utc), row["payload"]) for row in found]

    async def finish_attempt(
        self: _Host, delivery_id: str, token: str, outcome: AttemptOutcome, now: datetime
    ) -> bool:
        status = outcome.status
        async with self._pool.acquire() as conn, conn.transaction():
            number = await conn.fetchval(
                "UPDATE alert_deliveries SET attempts = attempts + 1, status = $1,"
                " next_attempt_at = $2, lease_until = NULL, lease_token = NULL,"
                " last_http_status = $3, last_error = $4, updated_at = $5,"
                " delivered_at = CASE WHEN $6::boolean THEN $5::timestamptz END"
                " WHERE id = $7 AND lease_token = $8 RETURNING attempts",
                status, outcome.next_attempt_at, outcome.http_status, outcome.error, now,
                outcome.delivered, delivery_id, token,
            )  # fmt: skip
            if number is None:
                return False
            await conn.execute(
                "INSERT INTO alert_attempts (delivery_id, number, attempted_at, http_status,"
                " error) VALUES ($1, $2, $3, $4, $5)",
                delivery_id, number, now, outcome.http_status, outcome.error,
            )  # fmt: skip
        return True

    async def list_deliveries(
        self: _Host, *, offset: int, limit: int, user_id: str | None = None
    ) -> list[AlertDelivery]:
        async with self._pool.acquire() as conn:
            found = await conn.fetch(
                f"{_DELIVERIES} WHERE ($1::text IS NULL OR a.user_id = $1)"
                " ORDER BY d.created_at DESC, d.id LIMIT $2 OFFSET $3",
                user_id, limit, offset,
            )  # fmt: skip
        return [rows.delivery_from_row(row, utc) for row in found]

    async def list_attempts(self: _Host, delivery_id: str) -> list[AlertAttempt]:
        async with self._pool.acquire() as conn:
            found = await conn.fetch(
                "SELECT * FROM alert_attempts WHERE delivery_id = $1 ORDER BY number",
                delivery_id,
            )
        return [rows.attempt_from_row(row, utc) for row in found]
