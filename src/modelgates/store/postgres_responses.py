"""PostgreSQL: the responses kept for the Responses API (``store: true``).

A mixin of :class:`~modelgates.store.postgres.PostgresStore`, kept apart so that
the store's core file stays about metering and codes. The conversation and the
Response object are JSON text (``text``, not ``jsonb``: kept byte for byte, and
``jsonb`` refuses the ``\\u0000`` escapes a client may send).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

import asyncpg
import msgspec

from modelgates.models import StoredResponse
from modelgates.store.base import utc


class _Host(Protocol):
    _pool: asyncpg.Pool

    async def _one(self, sql: str, *args: Any) -> asyncpg.Record | None: ...

    async def _purge(self, sql: str, *args: Any) -> int: ...


class PostgresResponses:
    """The stored-responses part of the :class:`~modelgates.store.base.Store` protocol."""

    async def save_response(self: _Host, stored: StoredResponse) -> None:
        async with self._pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO stored_responses"
                " (id, user_id, key_hash, created_at, input_json, response_json)"
                " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
                stored.id, stored.user_id, stored.key_hash, utc(stored.created_at),
                msgspec.json.encode(stored.input).decode(),
                msgspec.json.encode(stored.response).decode(),
            )  # fmt: skip

    async def get_response(self: _Host, response_id: str, user_id: str) -> StoredResponse | None:
        row = await self._one(
            "SELECT * FROM stored_responses WHERE id = $1 AND user_id = $2", response_id, user_id
        )
        if row is None:
            return None
        return StoredResponse(
            id=row["id"],
            user_id=row["user_id"],
            key_hash=row["key_hash"],
            created_at=utc(row["created_at"]),
            input=msgspec.json.decode(row["input_json"], type=list[Any]),
            response=msgspec.json.decode(row["response_json"], type=dict[str, Any]),
        )

    async def delete_response(self: _Host, response_id: str, user_id: str) -> bool:
        async with self._pool.acquire() as conn:
            status: str = await conn.execute(
                "DELETE FROM stored_responses WHERE id = $1 AND user_id = $2",
                response_id, user_id,
            )  # fmt: skip
        return status == "DELETE 1"

    async def purge_responses(self: _Host, before: datetime, limit: int) -> int:
        return await self._purge(
            "DELETE FROM stored_responses WHERE id IN (SELECT id FROM stored_responses"
            " WHERE created_at < $1 LIMIT $2)",
            utc(before), limit,
        )  # fmt: skip
