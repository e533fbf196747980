"""SQLite: the rows of single sign-on (provider identities, sign-ins in flight).

A mixin of :class:`~modelgates.store.sqlite.SqliteStore`, kept apart so that the
store's core file stays about metering and codes; it uses the store's read
connection and its group-committed writes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol, TypeVar

from modelgates.models import PendingSignIn, ProviderIdentity, User
from modelgates.store import rows
from modelgates.store.base import from_iso, iso

T = TypeVar("T")


class _Host(Protocol):
    async def _write(
        self, work: Callable[[sqlite3.Connection], T], *, inline: bool = True
    ) -> T: ...

    def _one(self, sql: str, params: tuple[Any, ...]) -> sqlite3.Row | None: ...


def insert_identity(
    conn: sqlite3.Connection, identity: ProviderIdentity, user_id: str, now: datetime
) -> bool:
    """Link ``identity`` to ``user_id``; ``False`` if it is linked already."""
    cur = conn.execute(
        "INSERT INTO oidc_identities (issuer, subject, user_id, created_at)"
        " VALUES (?, ?, ?, ?) ON CONFLICT (issuer, subject) DO NOTHING",
        (identity.issuer, identity.subject, user_id, iso(now)),
    )
    return cur.rowcount == 1


class SqliteSignOn:
    """The single sign-on part of the :class:`~modelgates.store.base.Store` protocol."""

    async def get_user_by_identity(self: _Host, identity: ProviderIdentity) -> User | None:
        row = self._one(
            "SELECT users.* FROM oidc_identities JOIN users ON users.id = oidc_identities.user_id"
            " WHERE oidc_identities.issuer = ? AND oidc_identities.subject = ?",
            (identity.issuer, identity.subject),
        )
        return None if row is None else rows.user_from_row(row, from_iso)

    async def link_identity(
        self: _Host, identity: ProviderIdentity, user_id: str, now: datetime
    ) -> bool:
        return await self._write(lambda conn: insert_identity(conn, identity, user_id, now))

    async def set_user_admin(self: _Host, user_id: str, is_admin: bool) -> None:
        await self._write(
            lambda conn: conn.execute(
                "UPDATE users SET is_admin = ? WHERE id = ?", (int(is_admin), user_id)
            )
        )

    async def create_sign_in(self: _Host, sign_in: PendingSignIn) -> None:
        values = (sign_in.state_hash, sign_in.browser_hash, sign_in.next_path,
                  iso(sign_in.created_at), iso(sign_in.expires_at))  # fmt: skip
        await self._write(
            lambda conn: conn.execute(
                "INSERT INTO oidc_sign_ins"
                " (state_hash, browser_hash, next_path, created_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?)",
                values,
            )
        )

    async def take_sign_in(self: _Host, state_hash: str, now: datetime) -> PendingSignIn | None:
        def take(conn: sqlite3.Connection) -> sqlite3.Row | None:
            row: sqlite3.Row | None = conn.execute(
                "DELETE FROM oidc_sign_ins WHERE state_hash = ? RETURNING *", (state_hash,)
            ).fetchone()
            return row

        row = await self._write(take)
        if row is None:
            return None
        sign_in = rows.sign_in_from_row(row, from_iso)
        return sign_in if now < sign_in.expires_at else None

    async def purge_sign_ins(self: _Host, now: datetime, limit: int) -> int:
        def delete(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "DELETE FROM oidc_sign_ins WHERE state_hash IN (SELECT state_hash"
                " FROM oidc_sign_ins WHERE expires_at <= ? LIMIT ?)",
                (iso(now), limit),
            )
            return int(cur.rowcount)

        return await self._write(delete)
