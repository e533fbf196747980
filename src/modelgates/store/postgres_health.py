"""PostgreSQL: the cool-down state of upstream endpoints (``upstream_health``).

A mixin of :class:`~modelgates.store.postgres.PostgresStore`, kept apart from
metering: one row per endpoint that is not healthy, changed under its row lock.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import asyncpg

from modelgates.models import EndpointHealth

_COLUMNS = "endpoint, failures, trips, open_until, probe_until"


class _Host(Protocol):
    _pool: asyncpg.Pool


def _health(row: Any) -> EndpointHealth:
    return EndpointHealth(
        int(row["failures"]), int(row["trips"]), float(row["open_until"]),
        float(row["probe_until"]),
    )  # fmt: skip


class PostgresHealth:
    """The endpoint-health part of the :class:`~modelgates.store.base.Store` protocol."""

    async def endpoint_health(self: _Host, endpoints: Sequence[str]) -> list[EndpointHealth]:
        if not endpoints:
            return []
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                f"SELECT {_COLUMNS} FROM upstream_health WHERE endpoint = ANY($1::text[])",
                list(endpoints),
            )
        found = {row["endpoint"]: _health(row) for row in rows}
        return [found.get(endpoint, EndpointHealth()) for endpoint in endpoints]

    async def change_endpoint_health(
        self: _Host, endpoint: str, change: Callable[[EndpointHealth], EndpointHealth]
    ) -> EndpointHealth:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO upstream_health (endpoint) VALUES ($1) ON CONFLICT DO NOTHING",
                endpoint,
            )
            row = await conn.fetchrow(
                f"SELECT {_COLUMNS} FROM upstream_health WHERE endpoint = $1 FOR UPDATE", endpoint
            )
            new = change(_health(row))
            if new.clean:
                await conn.execute("DELETE FROM upstream_health WHERE endpoint = $1", endpoint)
            else:
                await conn.execute(
                    "UPDATE upstream_health SET failures = $2, trips = $3, open_until = $4,"
                    " probe_until = $5 WHERE endpoint = $1",
                    endpoint, new.failures, new.trips, new.open_until, new.probe_until,
                )  # fmt: skip
            return new
