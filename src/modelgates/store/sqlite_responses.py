"""SQLite: the responses kept for the Responses API (``store: true``).

A mixin of :class:`~modelgates.store.sqlite.SqliteStore`, kept apart so that the
store's core file stays about metering and codes; it uses the store's read
connection and its group-committed writes. The conversation and the Response
object are JSON text.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol, TypeVar

import msgspec

from modelgates.models import StoredResponse
from modelgates.store.base import from_iso, iso

T = TypeVar("T")


class _Host(Protocol):
    async def _write(
        self, work: Callable[[sqlite3.Connection], T], *, inline: bool = True
    ) -> T: ...

    def _one(self, sql: str, params: tuple[Any, ...]) -> sqlite3.Row | None: ...


class SqliteResponses:
    """The stored-responses part of the :class:`~modelgates.store.base.Store` protocol."""

    async def save_response(self: _Host, stored: StoredResponse) -> None:
        values = (
            stored.id, stored.user_id, stored.key_hash, iso(stored.created_at),
            msgspec.json.encode(stored.input).decode(),
            msgspec.json.encode(stored.response).decode(),
        )  # fmt: skip
        await self._write(
            lambda conn: conn.execute(
                "INSERT INTO stored_responses"
                " (id, user_id, key_hash, created_at, input_json, response_json)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                values,
            )
        )

    async def get_response(self: _Host, response_id: str, user_id: str) -> StoredResponse | None:
        row = self._one(
            "SELECT * FROM stored_responses WHERE id = ? AND user_id = ?", (response_id, user_id)
        )
        if row is None:
            return None
        return StoredResponse(
            id=row["id"],
            user_id=row["user_id"],
            key_hash=row["key_hash"],
            created_at=from_iso(row["created_at"]),
            input=msgspec.json.decode(row["input_json"], type=list[Any]),
            response=msgspec.json.decode(row["response_json"], type=dict[str, Any]),
        )

    async def delete_response(self: _Host, response_id: str, user_id: str) -> bool:
        def delete(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "DELETE FROM stored_responses WHERE id = ? AND user_id = ?",
                (response_id, user_id),
            )
            return cur.rowcount == 1

        return await self._write(delete)

    async def purge_responses(self: _Host, before: datetime, limit: int) -> int:
        def delete(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "DELETE FROM stored_responses WHERE id IN (SELECT id FROM stored_responses"
                " WHERE created_at < ? LIMIT ?)",
                (iso(before), limit),
            )
            return int(cur.rowcount)

        return await self._write(delete)
