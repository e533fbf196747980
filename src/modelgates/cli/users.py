"""``modelgates users``: user accounts."""

from __future__ import annotations

import sys

import click

from modelgates.cli._common import database_option, run
from modelgates.display import printable


@click.group()
def users() -> None:
    """Manage user accounts."""


@users.command("create")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@database_option
def users_create(email: str, password_stdin: bool, database_url: str | None) -> None:
    """Create a user who can sign in to the consent page and own keys."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    user = run(lambda svc: svc.users.create(email, password), database_url)
    click.echo(f"created user {user.id} <{printable(user.email)}>")
