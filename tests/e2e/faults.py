"""Shared steps for the fault tests: no rate limits under load, raw table reads."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from typing import Any

import asyncpg

NO_RATE_LIMITS = {
    f"MODELGATES_RATE_LIMIT_{name}": "0"
    for name in (
        "EXCHANGE_PER_ADDRESS",
        "EXCHANGE_FAILURES_PER_CODE",
        "CODES_PER_KEY",
        "LOGIN_PER_ACCOUNT",
        "LOGIN_PER_ADDRESS",
        "GATEWAY_PER_KEY",
    )
}


async def query(database_url: str, sql: str) -> list[tuple[Any, ...]]:
    """Run one read-only query (no parameters) on either backend."""
    if database_url.startswith("sqlite:///"):
        path = database_url.removeprefix("sqlite:///")
        with closing(sqlite3.connect(path)) as conn:
            return [tuple(row) for row in conn.execute(sql).fetchall()]
    conn = await asyncpg.connect(database_url)
    try:
        return [tuple(record) for record in await conn.fetch(sql)]
    finally:
        await conn.close()
