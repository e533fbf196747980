"""Which database exceptions a client's values caused, told apart by type alone.

A database refuses some values our validation let through (PostgreSQL: a NUL in
text, a number out of a column's range: SQLSTATE class 22, ``asyncpg.DataError``,
which asyncpg also raises for an argument it cannot encode; SQLite:
``sqlite3.DataError``). Those are the request's fault: a 400, not the 503 an
outage gets, which clients are told to retry. The decision is made by exception
type, never by reading the message.
"""

from __future__ import annotations

import sqlite3


def client_data_errors() -> tuple[type[Exception], ...]:
    """Database exceptions that mean "this value cannot be stored", not "we are down"."""
    import asyncpg

    return (asyncpg.DataError, sqlite3.DataError)


INVALID_VALUE = "Invalid request: a value in it cannot be stored"
