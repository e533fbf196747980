"""SQLite: the cool-down state of upstream endpoints (``upstream_health``).

A mixin of :class:`~modelgates.store.sqlite.SqliteStore`, kept apart from metering:
one row per endpoint that is not healthy, changed in the store's write transactions.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from modelgates.models import EndpointHealth

T = TypeVar("T")

_COLUMNS = "endpoint, failures, trips, open_until, probe_until"


class _Host(Protocol):
    _reader: sqlite3.Connection

    async def _write(
        self, work: Callable[[sqlite3.Connection], T], *, inline: bool = True
    ) -> T: ...


def _health(row: Any) -> EndpointHealth:
    return EndpointHealth(int(row[1]), int(row[2]), float(row[3]), float(row[4]))


class SqliteHealth:
    """The endpoint-health part of the :class:`~modelgates.store.base.Store` protocol."""

    async def endpoint_health(self: _Host, endpoints: Sequence[str]) -> list[EndpointHealth]:
        if not endpoints:
            return []
        marks = ", ".join("?" * len(endpoints))
        rows = self._reader.execute(
            f"SELECT {_COLUMNS} FROM upstream_health WHERE endpoint IN ({marks})",
            tuple(endpoints),
        ).fetchall()
        found = {row[0]: _health(row) for row in rows}
        return [found.get(endpoint, EndpointHealth()) for endpoint in endpoints]

    async def change_endpoint_health(
        self: _Host, endpoint: str, change: Callable[[EndpointHealth], EndpointHealth]
    ) -> EndpointHealth:
        def work(conn: sqlite3.Connection) -> EndpointHealth:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM upstream_health WHERE endpoint = ?", (endpoint,)
            ).fetchone()
            new = change(EndpointHealth() if row is None else _health(row))
            if new.clean:
                conn.execute("DELETE FROM upstream_health WHERE endpoint = ?", (endpoint,))
            else:
                conn.execute(
                    f"INSERT INTO upstream_health ({_COLUMNS}) VALUES (?, ?, ?, ?, ?)"
                    " ON CONFLICT (endpoint) DO UPDATE SET failures = excluded.failures,"
                    " trips = excluded.trips, open_until = excluded.open_until,"
                    " probe_until = excluded.probe_until",
                    (endpoint, new.failures, new.trips, new.open_until, new.probe_until),
                )
            return new

        return await self._write(work)
