"""SQLite: keeping sub-keys' allowlists within their parents' (in the caller's
transaction, under the write lock), as :meth:`Store.update_key` and
:meth:`Store.consume_code` promise."""

from __future__ import annotations

import sqlite3
from dataclasses import replace

from modelgates import allowlist
from modelgates.allowlist import Allowlist
from modelgates.models import ApiKey


def _allowlist_of(conn: sqlite3.Connection, key_hash: str | None) -> Allowlist:
    if key_hash is None:
        return None
    row = conn.execute("SELECT allowed_models FROM api_keys WHERE hash = ?", (key_hash,))
    found = row.fetchone()
    return None if found is None else allowlist.decode(found[0])


def parent_allowlist(conn: sqlite3.Connection, key_hash: str) -> Allowlist:
    """The allowlist of the key that minted ``key_hash`` (``None``: none, or no bound)."""
    row = conn.execute("SELECT parent_key_hash FROM api_keys WHERE hash = ?", (key_hash,))
    found = row.fetchone()
    return None if found is None else _allowlist_of(conn, found[0])


def within_creator(conn: sqlite3.Connection, key: ApiKey) -> ApiKey:
    """``key`` with its allowlist within its creator's as it is now (in the transaction)."""
    if key.parent_key_hash is None:
        return key
    bound = _allowlist_of(conn, key.parent_key_hash)
    return replace(key, allowed_models=allowlist.intersection(key.allowed_models, bound))


def narrow_minted(conn: sqlite3.Connection, key_hash: str, bound: Allowlist, now: str) -> None:
    """Keep the allowlists of the keys minted from ``key_hash`` within ``bound``."""
    minted = conn.execute(
        "SELECT hash, allowed_models FROM api_keys"
        " WHERE parent_key_hash = ? AND revoked_at IS NULL",
        (key_hash,),
    ).fetchall()
    for child_hash, stored in minted:
        narrowed = allowlist.encode(allowlist.intersection(allowlist.decode(stored), bound))
        if narrowed != stored:
            conn.execute(
                "UPDATE api_keys SET allowed_models = ?, updated_at = ? WHERE hash = ?",
                (narrowed, now, child_hash),
            )
