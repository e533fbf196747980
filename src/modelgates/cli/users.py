"""``modelgates users``: user accounts, their budgets, roles and status, administered on
the database directly (recorded in the audit trail as done by ``cli``)."""

from __future__ import annotations

import json
import sys
from typing import Any, cast

import click
from msgspec import UNSET, UnsetType

from modelgates.cli._common import database_option, run, user_by_email
from modelgates.cli._tables import fields, moment, table, usd
from modelgates.container import Services
from modelgates.display import printable
from modelgates.key_state import LABELS, key_state
from modelgates.models import ApiKey, UserSummary
from modelgates.services import audit, system_clock
from modelgates.services.admin import Change, user_view
from modelgates.services.budgets import user_remaining, user_spend
from modelgates.timestamps import isoformat
from modelgates.windows import RESETS, Reset

NEVER = "never"


@click.group()
def users() -> None:
    """Manage user accounts: budgets, roles (admin or member), disabling."""


def json_option(command: Any) -> Any:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")(
        command
    )


def _echo_json(data: Any) -> None:
    click.echo(json.dumps({"data": data}, indent=2, sort_keys=True))


def _status(summary: UserSummary) -> str:
    return "disabled" if summary.user.disabled else "active"


@users.command("create")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--admin", is_flag=True, help="An admin: may see and change every user and key.")
@database_option
def users_create(email: str, password_stdin: bool, admin: bool, database_url: str | None) -> None:
    """Create a user who can sign in to the consent page and own keys (new users get
    MODELGATES_DEFAULT_USER_LIMIT as their budget, when it is set)."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    user = run(lambda svc: svc.users.create(email, password, is_admin=admin), database_url)
    role = " (admin)" if user.is_admin else ""
    click.echo(f"created user {user.id} <{printable(user.email)}>{role}")


@users.command("list")
@click.option("--search", default=None, metavar="TEXT", help="Only e-mails containing TEXT.")
@json_option
@database_option
def users_list(search: str | None, as_json: bool, database_url: str | None) -> None:
    """List users, oldest first: role, status, budget, spend in the budget's window
    (lifetime without a reset or a budget), keys and last use."""

    async def listing(svc: Services) -> list[UserSummary]:
        found: list[UserSummary] = []
        while True:
            page = await svc.admin.users(search=search, offset=len(found))
            found.extend(page)
            if len(page) < 100:
                return found

    found = run(listing, database_url)
    now = system_clock()
    if as_json:
        _echo_json([user_view(summary, now) for summary in found])
        return
    if not found:
        click.echo("no users")
        return
    rows = [
        [
            s.user.email, s.user.role, _status(s), usd(s.user.limit),
            s.user.limit_reset or ("-" if s.user.limit is None else NEVER),
            usd(user_spend(s.user, now)), usd(user_remaining(s.user, now)), str(s.keys),
            moment(s.last_used_at), s.user.id,
        ]
        for s in found
    ]  # fmt: skip
    headers = ["EMAIL", "ROLE", "STATUS", "BUDGET", "RESET", "SPENT", "LEFT", "KEYS",
               "LAST USED", "ID"]  # fmt: skip
    click.echo(table(headers, rows, right={3, 5, 6, 7}))


def _key_row(key: ApiKey, now: Any) -> list[str]:
    return [
        key.hash[:16], key.label[:32], LABELS[key_state(key, now)], usd(key.limit),
        usd(key.usage.in_window(now, key.limit_reset)), moment(key.last_used_at),
    ]  # fmt: skip


@users.command("show")
@click.argument("email")
@json_option
@database_option
def users_show(email: str, as_json: bool, database_url: str | None) -> None:
    """Show a user: role, status, budget and spend, and their keys."""

    async def show(svc: Services) -> tuple[UserSummary, list[ApiKey]]:
        user = await user_by_email(svc, email)
        return await svc.admin.summary(user), await svc.admin.keys_of(user)

    summary, keys = run(show, database_url)
    now = system_clock()
    if as_json:
        view = user_view(summary, now)
        view["key_hashes"] = [key.hash for key in keys]
        _echo_json(view)
        return
    user = summary.user
    reset = user.limit_reset or ("-" if user.limit is None else NEVER)
    click.echo(
        fields([
            ("email", user.email), ("id", user.id), ("role", user.role),
            ("status", _status(summary)), ("budget", usd(user.limit, none="none")),
            ("reset", reset), ("spent", usd(user_spend(user, now))),
            ("left", usd(user_remaining(user, now))), ("lifetime", usd(user.usage.total)),
            ("created", moment(user.created_at)), ("last used", moment(summary.last_used_at)),
        ])
    )  # fmt: skip
    click.echo()
    if not keys:
        click.echo("no keys")
        return
    headers = ["HASH", "LABEL", "STATUS", "LIMIT", "SPENT", "LAST USED"]
    click.echo(table(headers, [_key_row(key, now) for key in keys], right={3, 4}))


@users.command("update")
@click.argument("email")
@click.option("--limit", type=float, default=None, metavar="USD", help="Budget across all keys.")
@click.option(
    "--limit-reset", type=click.Choice([*RESETS, NEVER]), default=None,
    help="When the budget resets (UTC windows); never: a lifetime budget.",
)  # fmt: skip
@click.option("--no-limit", is_flag=True, help="Remove the budget.")
@click.option("--admin/--no-admin", "admin", default=None, help="Make an admin, or a member.")
@json_option
@database_option
def users_update(
    email: str,
    limit: float | None,
    limit_reset: str | None,
    no_limit: bool,
    admin: bool | None,
    as_json: bool,
    database_url: str | None,
) -> None:
    """Change a user's budget or role; it applies within 1 s, on every server."""
    if no_limit and (limit is not None or limit_reset is not None):
        raise click.UsageError("--no-limit cannot be combined with --limit or --limit-reset")
    if limit is None and limit_reset is None and not no_limit and admin is None:
        raise click.UsageError(
            "nothing to change: give --limit, --limit-reset, --no-limit or --admin"
        )
    role: bool | UnsetType = UNSET if admin is None else admin
    if no_limit:
        change = Change(limit_usd=None, limit_reset=None, is_admin=role)
    else:
        reset: Reset | UnsetType | None = UNSET
        if limit_reset is not None:
            reset = None if limit_reset == NEVER else cast(Reset, limit_reset)
        change = Change(
            limit_usd=UNSET if limit is None else limit, limit_reset=reset, is_admin=role
        )
    summary = run(lambda svc: _change(svc, email, change), database_url)
    _report(summary, as_json)


async def _change(svc: Services, email: str, change: Change) -> UserSummary:
    user = await svc.admin.update(await user_by_email(svc, email), change, actor=audit.CLI)
    return await svc.admin.summary(user)


def _report(summary: UserSummary, as_json: bool) -> None:
    now = system_clock()
    if as_json:
        _echo_json(user_view(summary, now))
        return
    user = summary.user
    budget = "no budget"
    if user.limit is not None:
        budget = f"budget {usd(user.limit)} {user.limit_reset or 'lifetime'}"
        budget += f" ({usd(user_spend(user, now))} spent, {usd(user_remaining(user, now))} left)"
    click.echo(
        f"{printable(user.email)}: {user.role}, {_status(summary)}, {budget};"
        f" updated {isoformat(user.updated_at)}"
    )


@users.command("disable")
@click.argument("email")
@database_option
def users_disable(email: str, database_url: str | None) -> None:
    """Disable a user: every key of theirs stops on every route and server (within 1 s), and
    they cannot sign in (their keys are kept; ``enable`` undoes it)."""
    summary = run(lambda svc: _change(svc, email, Change(disabled=True)), database_url)
    _report(summary, as_json=False)


@users.command("enable")
@click.argument("email")
@database_option
def users_enable(email: str, database_url: str | None) -> None:
    """Enable a disabled user again."""
    summary = run(lambda svc: _change(svc, email, Change(disabled=False)), database_url)
    _report(summary, as_json=False)
