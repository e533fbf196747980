"""``modelgates users``: budgets, roles and disabling from the command line, in tables a
person can read and JSON for scripts; every change lands in the audit trail."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from modelgates.cli import main

PASSWORD = "a long enough password\n"


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


def run(db: str, *args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(
        main, [*args, "--database-url", db], input=stdin, catch_exceptions=False
    )


def ok(db: str, *args: str, stdin: str | None = None) -> str:
    result = run(db, *args, stdin=stdin)
    assert result.exit_code == 0, result.output
    return result.stdout


def data(db: str, *args: str) -> Any:
    return json.loads(ok(db, *args, "--json"))["data"]


def one_line_error(result: Result, text: str) -> None:
    assert result.exit_code != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error:") and text in last, result.stderr
    assert "Traceback" not in result.output


@pytest.fixture
def people(db: str) -> str:
    assert "(admin)" in ok(db, "users", "create", "ada@example.com", "--password-stdin",
                           "--admin", stdin=PASSWORD)  # fmt: skip
    created = ok(db, "users", "create", "bob@example.com", "--password-stdin", stdin=PASSWORD)
    assert re.fullmatch(r"created user user_\S+ <bob@example\.com>\n", created)
    ok(db, "keys", "create", "--user", "bob@example.com", "--name", "laptop", "--limit", "5")
    return db


def test_list_reads_as_a_table_and_as_json(people: str) -> None:
    lines = ok(people, "users", "list").splitlines()
    assert lines[0].split() == ["EMAIL", "ROLE", "STATUS", "BUDGET", "RESET", "SPENT", "LEFT",
                                "KEYS", "LAST", "USED", "ID"]  # fmt: skip
    assert lines[1].split()[:4] == ["ada@example.com", "admin", "active", "-"]
    assert lines[2].split()[:3] == ["bob@example.com", "member", "active"]
    # Columns line up: every row is as wide as the header up to the ID column.
    assert len({line.index("user_") for line in lines[1:]}) == 1

    listed = data(people, "users", "list")
    assert [(u["email"], u["role"], u["keys"]) for u in listed] == [
        ("ada@example.com", "admin", 0), ("bob@example.com", "member", 1),
    ]  # fmt: skip
    assert [u["email"] for u in data(people, "users", "list", "--search", "BOB")] == [
        "bob@example.com"
    ]
    assert ok(people, "users", "list", "--search", "nobody") == "no users\n"


def test_update_sets_and_removes_a_budget(people: str) -> None:
    shown = ok(people, "users", "update", "bob@example.com", "--limit", "50", "--limit-reset",
               "monthly")  # fmt: skip
    assert "budget $50.00 monthly ($0.00 spent, $50.00 left)" in shown
    bob = data(people, "users", "show", "bob@example.com")
    assert (bob["limit"], bob["limit_reset"], bob["limit_remaining"]) == (50.0, "monthly", 50.0)
    assert len(bob["key_hashes"]) == 1

    lifetime = data(people, "users", "update", "bob@example.com", "--limit-reset", "never")
    assert (lifetime["limit"], lifetime["limit_reset"]) == (50.0, None)
    cleared = data(people, "users", "update", "bob@example.com", "--no-limit")
    assert (cleared["limit"], cleared["limit_reset"], cleared["limit_remaining"]) == (
        None, None, None,
    )  # fmt: skip
    table = ok(people, "users", "show", "bob@example.com")
    assert re.search(r"^budget:\s+none$", table, re.M)
    assert re.search(r"^HASH\s+LABEL\s+STATUS\s+LIMIT\s+SPENT\s+LAST USED$", table, re.M)
    assert "laptop" in table and "$5.00" in table


def test_roles_and_disabling(people: str) -> None:
    assert data(people, "users", "update", "bob@example.com", "--admin")["role"] == "admin"
    assert data(people, "users", "update", "bob@example.com", "--no-admin")["role"] == "member"
    assert "disabled" in ok(people, "users", "disable", "bob@example.com")
    assert data(people, "users", "show", "bob@example.com")["disabled"] is True
    assert "active" in ok(people, "users", "enable", "bob@example.com")

    trail = ok(people, "audit", "--user", "bob@example.com")
    events = [line.split()[1] for line in trail.splitlines()]
    assert events[:5] == ["user.enabled", "user.disabled", "user.role_changed",
                          "user.role_changed", "key.created"]  # fmt: skip
    assert all("by=cli" in line for line in trail.splitlines())


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (("update", "nobody@example.com", "--limit", "5"), "no user with email"),
        (("update", "bob@example.com", "--limit", "-1"), ">= 0"),
        (("update", "bob@example.com", "--limit", "nan"), "finite"),
        (("update", "bob@example.com", "--limit-reset", "daily"), "limit_reset requires a limit"),
        (("update", "bob@example.com", "--no-limit", "--limit", "3"), "cannot be combined"),
        (("update", "bob@example.com"), "nothing to change"),
        (("show", "nobody@example.com"), "no user with email"),
        (("disable", "nobody@example.com"), "no user with email"),
    ],
)  # fmt: skip
def test_mistakes_are_one_line_errors(people: str, args: tuple[str, ...], text: str) -> None:
    one_line_error(run(people, "users", *args), text)
