"""PostgreSQL: keeping sub-keys' allowlists within their parents' (in the caller's
transaction, under the parent's row lock), as :meth:`Store.update_key` and
:meth:`Store.consume_code` promise."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from modelgates import allowlist
from modelgates.allowlist import Allowlist
from modelgates.models import ApiKey


async def parent_allowlist(conn: Any, key_hash: str) -> Allowlist:
    """The allowlist of the key that minted ``key_hash``, its row locked until the
    transaction ends (``None``: no such key, or no bound)."""
    row = await conn.fetchrow(
        "SELECT allowed_models FROM api_keys WHERE hash ="
        " (SELECT parent_key_hash FROM api_keys WHERE hash = $1) FOR SHARE",
        key_hash,
    )
    return None if row is None else allowlist.decode(row["allowed_models"])


async def within_creator(conn: Any, key: ApiKey) -> ApiKey:
    """``key`` with its allowlist within its creator's as it is now; locks the creator's
    row (``FOR SHARE``) until the transaction ends."""
    row = await conn.fetchrow(
        "SELECT allowed_models FROM api_keys WHERE hash = $1 FOR SHARE", key.parent_key_hash
    )
    bound = None if row is None else allowlist.decode(row["allowed_models"])
    return replace(key, allowed_models=allowlist.intersection(key.allowed_models, bound))


async def narrow_minted(conn: Any, key_hash: str, bound: Allowlist, now: datetime) -> None:
    """Keep the allowlists of the keys minted from ``key_hash`` within ``bound``."""
    minted = await conn.fetch(
        "SELECT hash, allowed_models FROM api_keys"
        " WHERE parent_key_hash = $1 AND revoked_at IS NULL FOR UPDATE",
        key_hash,
    )
    for child in minted:
        stored = child["allowed_models"]
        narrowed = allowlist.encode(allowlist.intersection(allowlist.decode(stored), bound))
        if narrowed != stored:
            await conn.execute(
                "UPDATE api_keys SET allowed_models = $1, updated_at = $2 WHERE hash = $3",
                narrowed, now, child["hash"],
            )  # fmt: skip
