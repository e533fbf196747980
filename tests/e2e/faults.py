"""Shared steps for the fault tests: no rate limits under load, raw table reads."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import fields
from typing import Any

import asyncpg

from modelgates.settings import ENV_PREFIX, Settings

NO_RATE_LIMITS = {
    ENV_PREFIX + field.name.upper(): "0"
    for field in fields(Settings)
    if field.name.startswith("rate_limit_")
}


async def query(database_url: str, sql: str) -> list[tuple[Any, ...]]:
    """Run one read-only query (no parameters) on either backend."""
    if database_url.startswith("sqlite:///"):
        path = database_url.removeprefix("sqlite:///")
        with closing(sqlite3.connect(path)) as conn:
            return [tuple(row) for row in conn.execute(sql).fetchall()]
    pg = await asyncpg.connect(database_url)
    try:
        return [tuple(record) for record in await pg.fetch(sql)]
    finally:
        await pg.close()
