"""``modelgates db backup``: a consistent online copy of a SQLite database."""

from __future__ import annotations

import sqlite3
import threading
from contextlib import closing
from pathlib import Path

from click.testing import CliRunner, Result

from modelgates.cli import main


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def make_db(path: Path) -> str:
    url = f"sqlite:///{path}"
    done = run("db", "upgrade", "--database-url", url)
    assert done.exit_code == 0, done.output
    return url


def test_backup_while_a_writer_writes(tmp_path: Path) -> None:
    source = tmp_path / "live.db"
    url = make_db(source)
    with closing(sqlite3.connect(source)) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("CREATE TABLE filler (id INTEGER PRIMARY KEY, blob TEXT NOT NULL)")
        conn.executemany(
            "INSERT INTO filler (blob) VALUES (?)", [("x" * 2000,) for _ in range(3000)]
        )
        conn.commit()
    stop = threading.Event()
    written = [0]

    def writer() -> None:
        with closing(sqlite3.connect(source, timeout=10)) as conn:
            while not stop.is_set():
                conn.execute("INSERT INTO filler (blob) VALUES (?)", ("y" * 2000,))
                conn.commit()
                written[0] += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        target = tmp_path / "copy.db"
        done = run("db", "backup", str(target), "--database-url", url)
    finally:
        stop.set()
        thread.join()
    assert done.exit_code == 0, done.output
    assert "backed up" in done.output
    assert written[0] > 0  # the writer really ran during the backup
    with closing(sqlite3.connect(target)) as copy:
        assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        count = copy.execute("SELECT count(*) FROM filler").fetchone()[0]
        assert 3000 <= count <= 3000 + written[0]
        names = {r[0] for r in copy.execute("SELECT name FROM schema_migrations")}
        assert "0001_initial" in names
        assert copy.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert not list(tmp_path.glob(".copy.db.partial-*"))


def test_backup_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    url = make_db(tmp_path / "live.db")
    target = tmp_path / "exists.db"
    target.write_text("keep me")
    refused = run("db", "backup", str(target), "--database-url", url)
    assert refused.exit_code == 1
    assert "exists; pass --force" in refused.stderr
    assert target.read_text() == "keep me"
    forced = run("db", "backup", str(target), "--force", "--database-url", url)
    assert forced.exit_code == 0, forced.output
    with closing(sqlite3.connect(target)) as copy:
        assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_backup_of_postgres_points_to_pg_dump(tmp_path: Path) -> None:
    done = run("db", "backup", str(tmp_path / "x"), "--database-url", "postgresql://u:pw@h/db")
    assert done.exit_code == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "pg_dump" in lines[0]
    assert "Traceback" not in done.output


def test_backup_of_a_missing_database_is_one_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'none.db'}"
    done = run("db", "backup", str(tmp_path / "copy.db"), "--database-url", url)
    assert done.exit_code == 1
    assert "no SQLite database" in done.stderr
