"""``modelgates db backup PATH``: a consistent online copy of a SQLite database.

SQLite's online backup API (:meth:`sqlite3.Connection.backup`) copies the
database page by page while other connections keep reading and writing; the
copy is a consistent snapshot. It is written to a temporary file next to the
target and renamed into place only when complete, so a failed backup never
leaves a half-written file under the target's name. PostgreSQL has its own
tools (``pg_dump``); this command refuses its URLs with a pointer to them.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from pathlib import Path

from modelgates.store.sqlite_engine import BUSY_TIMEOUT_MS, path_from_url

# All pages in one step, inside one read transaction: in WAL mode that snapshot
# does not block writers, and it cannot be restarted by their writes (a stepwise
# backup restarts whenever another connection writes, and may never finish
# under a steady write load).
PAGES_PER_STEP = -1


class BackupError(Exception):
    """The backup cannot be made; the message is one line for the terminal."""


def backup_sqlite(database_url: str, target: Path, *, force: bool = False) -> Path:
    """Copy the SQLite database of ``database_url`` to ``target``; return the target."""
    if not database_url.startswith("sqlite:///"):
        raise BackupError(
            "db backup copies SQLite databases only; for PostgreSQL use pg_dump "
            "(e.g. pg_dump --format=custom --file=modelgates.dump DATABASE_URL)"
        )
    source = Path(path_from_url(database_url))
    if not source.is_file():
        raise BackupError(f"no SQLite database at {source.resolve()}")
    target = target.resolve()
    if target == source.resolve():
        raise BackupError("the backup target is the database itself")
    if target.exists() and not force:
        raise BackupError(f"{target} exists; pass --force to overwrite it")
    if not target.parent.is_dir():
        raise BackupError(f"directory {target.parent} does not exist")
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    partial.unlink(missing_ok=True)
    try:
        # The backup API only reads the source; other connections keep writing.
        with (
            closing(sqlite3.connect(source)) as src,
            closing(sqlite3.connect(partial)) as dst,
        ):
            src.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            src.backup(dst, pages=PAGES_PER_STEP)
            # A standalone file: no WAL beside it is needed to read the copy.
            dst.execute("PRAGMA journal_mode = DELETE")
            status = dst.execute("PRAGMA integrity_check").fetchone()[0]
            if status != "ok":
                raise BackupError(f"the copy failed its integrity check: {status}")
        os.replace(partial, target)
    except sqlite3.Error as exc:
        raise BackupError(f"backup failed: {exc}") from exc
    finally:
        partial.unlink(missing_ok=True)
    return target
