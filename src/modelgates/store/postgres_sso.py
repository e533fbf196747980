"""PostgreSQL: the rows of single sign-on (provider identities, sign-ins in flight).

A mixin of :class:`~modelgates.store.postgres.PostgresStore`, kept apart so that
the store's core file stays about metering and codes. A sign-in is taken with one
``DELETE … RETURNING``: of concurrent callbacks with the same state, one gets it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

import asyncpg

from modelgates.models import PendingSignIn, ProviderIdentity, User
from modelgates.store import rows
from modelgates.store.base import utc


class _Host(Protocol):
    _pool: asyncpg.Pool

    async def _one(self, sql: str, *args: Any) -> asyncpg.Record | None: ...


async def insert_identity(
    conn: Any, identity: ProviderIdentity, user_id: str, now: datetime
) -> bool:
    """Link ``identity`` to ``user_id``; ``False`` if it is linked already."""
    status = await conn.execute(
        "INSERT INTO oidc_identities (issuer, subject, user_id, created_at)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT (issuer, subject) DO NOTHING",
        identity.issuer, identity.subject, user_id, now,
    )  # fmt: skip
    return bool(status == "INSERT 0 1")


class PostgresSignOn:
    """The single sign-on part of the :class:`~modelgates.store.base.Store` protocol."""

    async def get_user_by_identity(self: _Host, identity: ProviderIdentity) -> User | None:
        row = await self._one(
            "SELECT users.* FROM oidc_identities JOIN users ON users.id = oidc_identities.user_id"
            " WHERE oidc_identities.issuer = $1 AND oidc_identities.subject = $2",
            identity.issuer, identity.subject,
        )  # fmt: skip
        return None if row is None else rows.user_from_row(row, utc)

    async def link_identity(
        self: _Host, identity: ProviderIdentity, user_id: str, now: datetime
    ) -> bool:
        async with self._pool.acquire() as conn:
            return await insert_identity(conn, identity, user_id, now)

    async def set_user_admin(self: _Host, user_id: str, is_admin: bool) -> None:
        async with self._pool.acquire() as conn:
            await conn.execute("UPDATE users SET is_admin = $1 WHERE id = $2", is_admin, user_id)

    async def create_sign_in(self: _Host, sign_in: PendingSignIn) -> None:
        async with self._pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO oidc_sign_ins"
                " (state_hash, browser_hash, next_path, created_at, expires_at)"
                " VALUES ($1, $2, $3, $4, $5)",
                sign_in.state_hash, sign_in.browser_hash, sign_in.next_path,
                sign_in.created_at, sign_in.expires_at,
            )  # fmt: skip

    async def take_sign_in(self: _Host, state_hash: str, now: datetime) -> PendingSignIn | None:
        row = await self._one(
            "DELETE FROM oidc_sign_ins WHERE state_hash = $1 RETURNING *", state_hash
        )
        if row is None:
            return None
        sign_in = rows.sign_in_from_row(row, utc)
        return sign_in if now < sign_in.expires_at else None

    async def purge_sign_ins(self: _Host, now: datetime, limit: int) -> int:
        async with self._pool.acquire() as conn:
            status: str = await conn.execute(
                "DELETE FROM oidc_sign_ins WHERE state_hash IN (SELECT state_hash"
                " FROM oidc_sign_ins WHERE expires_at <= $1 LIMIT $2)",
                now, limit,
            )  # fmt: skip
        return int(status.split()[-1])
