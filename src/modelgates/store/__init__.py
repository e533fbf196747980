"""Storage backends behind one interface, chosen by the database URL."""

from __future__ import annotations

from modelgates.store.base import Store
from modelgates.store.sqlite import SqliteStore

__all__ = ["SqliteStore", "Store", "open_store"]


async def open_store(database_url: str, *, pool_size: int = 10) -> Store:
    """Open (but do not migrate) the store a ``sqlite:///`` or ``postgresql://`` URL names.

    ``pool_size`` bounds the PostgreSQL connections this process holds.
    """
    if database_url.startswith("sqlite:"):
        return SqliteStore.from_url(database_url)
    from modelgates.store.postgres import PostgresStore

    return await PostgresStore.connect(database_url, max_size=pool_size)
