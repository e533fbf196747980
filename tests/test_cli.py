"""The ``modelgates`` command: administration, one-line errors, no tracebacks."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from modelgates.cli import main, redact_url

PASSWORD = "a long enough password\n"


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


def run(*args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=stdin, catch_exceptions=False)


def assert_one_line_error(result: Result, text: str) -> None:
    assert result.exit_code != 0
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("Error:") and text in lines[-1], result.stderr
    assert "Traceback" not in result.output + result.stderr


def test_user_and_key_lifecycle(db: str) -> None:
    created = run("users", "create", "Ada@Example.com", "--password-stdin", "--database-url", db,
                  stdin=PASSWORD)  # fmt: skip
    assert created.exit_code == 0, created.output
    assert re.fullmatch(r"created user user_\S+ <ada@example\.com>\n", created.stdout)

    made = run("keys", "create", "--user", "ada@example.com", "--name", "ci", "--limit", "2.5",
               "--limit-reset", "monthly", "--expires-at", "2099-01-01T00:00:00Z",
               "--database-url", db)  # fmt: skip
    assert made.exit_code == 0, made.output
    key = made.stdout.strip()
    assert re.fullmatch(r"sk-mg-v1-[0-9a-f]{64}", key)
    key_hash = re.search(r"hash: ([0-9a-f]{64})", made.stderr)
    assert key_hash is not None

    listed = run("keys", "list", "--user", "ada@example.com", "--database-url", db)
    assert key_hash[1] in listed.stdout
    assert "2.50" in listed.stdout and "monthly" in listed.stdout and "2099-01-01" in listed.stdout
    assert key not in listed.stdout  # the key itself is never shown again

    revoked = run("keys", "revoke", key_hash[1], "--database-url", db)
    assert revoked.exit_code == 0
    assert run("keys", "list", "--user", "ada@example.com", "--database-url", db).stdout == (
        "no keys\n"
    )
    assert_one_line_error(run("keys", "revoke", key_hash[1], "--database-url", db), "No active key")


def test_user_mistakes_are_one_line_errors(db: str) -> None:
    assert run("users", "create", "bob@example.com", "--password-stdin", "--database-url", db,
               stdin=PASSWORD).exit_code == 0  # fmt: skip
    cases = [
        (("users", "create", "bob@example.com", "--password-stdin"), PASSWORD, "already exists"),
        (("users", "create", "not-an-email", "--password-stdin"), PASSWORD, "valid e-mail"),
        (("users", "create", "c@example.com", "--password-stdin"), "short\n", "8 to 1024"),
        (("keys", "create", "--user", "nobody@example.com"), None, "no user with email"),
        (("keys", "create", "--user", "bob@example.com", "--limit", "-1"), None, ">= 0"),
        (("keys", "create", "--user", "bob@example.com", "--limit-reset", "daily"), None,
         "limit_reset requires a limit"),
        (("keys", "create", "--user", "bob@example.com", "--expires-at", "2001-01-01T00:00:00Z"),
         None, "in the future"),
        (("keys", "create", "--user", "bob@example.com", "--expires-at", "tomorrow"), None,
         "RFC 3339"),
        (("keys", "create", "--user", "bob@example.com", "--expires-at",
          "9999-12-31T23:59:59-01:00"), None, "between the years 0001 and 9999"),
        (("keys", "list", "--user", "nobody@example.com"), None, "no user with email"),
    ]  # fmt: skip
    for args, stdin, text in cases:
        assert_one_line_error(run(*args, "--database-url", db, stdin=stdin), text)


def test_bad_settings_and_database_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert_one_line_error(run("db", "upgrade", "--database-url", "mysql://x"), "DATABASE_URL")
    monkeypatch.setenv("MODELGATES_CODE_TTL_SECONDS", "soon")
    assert_one_line_error(run("db", "upgrade", "--database-url", f"sqlite:///{tmp_path}/a.db"),
                          "MODELGATES_CODE_TTL_SECONDS")  # fmt: skip
    monkeypatch.delenv("MODELGATES_CODE_TTL_SECONDS")
    unreachable = "postgresql://nobody@127.0.0.1:1/none"
    assert_one_line_error(run("db", "upgrade", "--database-url", unreachable), "database")


def test_db_upgrade_reports_migrations_once(db: str) -> None:
    first = run("db", "upgrade", "--database-url", db)
    assert first.exit_code == 0 and "applied 0001_initial" in first.stdout
    second = run("db", "upgrade", "--database-url", db)
    assert second.exit_code == 0 and "applied" not in second.stdout
    assert "is up to date" in second.stdout


def test_default_database_is_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MODELGATES_DATABASE_URL", raising=False)
    result = run("db", "upgrade")
    assert result.exit_code == 0
    assert (tmp_path / "modelgates.db").exists()
    assert str(tmp_path / "modelgates.db") in result.stdout


def test_redact_url_hides_passwords() -> None:
    assert redact_url("postgresql://u:hunter2@db:5432/x") == "postgresql://u:***@db:5432/x"
    assert redact_url("postgresql://u@db/x") == "postgresql://u@db/x"


def test_names_from_the_database_are_printed_escaped(db: str) -> None:
    """A row written before the display rules (or by hand) cannot drive the terminal."""
    import asyncio

    from modelgates.container import Services
    from modelgates.services import audit
    from modelgates.settings import Settings
    from modelgates.store import open_store

    hostile = "\x1b[2J\x1b]0;pwned\x07\u202eexe.gnp"

    async def plant() -> None:
        store = await open_store(db)
        await store.migrate()
        services = Services.build(Settings(database_url=db), store)
        user = await services.users.create("ada@example.com", "a long enough password")
        new = services.keys.mint(user_id=user.id, name=hostile, label=hostile)
        await store.create_key(new.record)
        await services.audit.record(
            audit.KEY_RENAMED, actor=audit.CLI, key=new.record, detail={"new_name": hostile}
        )
        await store.close()

    asyncio.run(plant())
    for args in (("keys", "list", "--user", "ada@example.com"), ("audit",)):
        result = run(*args, "--database-url", db)
        assert result.exit_code == 0, result.output
        for raw in ("\x1b", "\x07", "\u202e"):
            assert raw not in result.output
        assert "\\x1b[2J" in result.output or "\\u001b[2J" in result.output


def test_apps_list_and_rename_for_the_operator(db: str) -> None:
    import asyncio

    from modelgates.store import open_store

    async def plant() -> None:
        from datetime import UTC, datetime

        store = await open_store(db)
        await store.migrate()
        await store.get_or_create_app(
            "https://squatter.example", "ModelGates Official", datetime.now(UTC)
        )
        await store.close()

    assert run("apps", "list", "--database-url", db).stdout == "no apps\n"
    asyncio.run(plant())
    listed = run("apps", "list", "--database-url", db)
    assert listed.exit_code == 0
    assert "https://squatter.example" in listed.stdout and "ModelGates Official" in listed.stdout
    renamed = run("apps", "rename", "1", "Squatter (unverified)", "--database-url", db)
    assert renamed.exit_code == 0, renamed.output
    assert "Squatter (unverified)" in run("apps", "list", "--database-url", db).stdout
    trail = run("audit", "--database-url", db).stdout
    assert "app.renamed" in trail and "by=cli" in trail and "ModelGates Official" in trail
    assert_one_line_error(run("apps", "rename", "7", "Nobody", "--database-url", db), "No app")
    assert_one_line_error(
        run("apps", "rename", "1", "\u202eevil", "--database-url", db), "bidirectional"
    )


def test_keys_list_shows_each_keys_state(db: str) -> None:
    """An expired key reads "expired" (the one key_state rule), not "active"."""
    run("users", "create", "kim@example.com", "--password-stdin", "--database-url", db,
        stdin=PASSWORD)  # fmt: skip
    soon = (datetime.now(UTC) + timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    made = run("keys", "create", "--user", "kim@example.com", "--name", "brief",
               "--expires-at", soon, "--database-url", db)  # fmt: skip
    assert made.exit_code == 0, made.output
    run("keys", "create", "--user", "kim@example.com", "--name", "lasting", "--database-url", db)
    time.sleep(2.1)
    listed = run("keys", "list", "--user", "kim@example.com", "--database-url", db).stdout
    states = {line.split()[1]: line.split()[-2] for line in listed.splitlines()[1:]}
    assert states == {"brief": "expired", "lasting": "active"}
