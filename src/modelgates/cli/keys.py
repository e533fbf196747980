"""``modelgates keys``: API keys, administered on the database directly."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click

from modelgates import allowlist
from modelgates.cli._common import database_option, run, user_by_email
from modelgates.container import Services
from modelgates.display import printable
from modelgates.errors import ModelGatesError
from modelgates.key_state import key_state
from modelgates.money import to_usd
from modelgates.services import audit, system_clock
from modelgates.services.auth_codes import parse_rfc3339
from modelgates.timestamps import isoformat
from modelgates.windows import RESETS, Reset


@click.group()
def keys() -> None:
    """Manage API keys."""


def _expiry(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_rfc3339(value, field="--expires-at")
    except ModelGatesError as exc:
        raise click.BadParameter(exc.message, param_hint="--expires-at") from exc


@keys.command("create")
@click.option("--user", "email", required=True, help="Owner's e-mail address.")
@click.option("--name", default=None, help="A name to recognise the key by.")
@click.option("--limit", type=float, default=None, help="Credit limit in USD.")
@click.option("--limit-reset", type=click.Choice(RESETS), default=None)
@click.option("--expires-at", default=None, help="RFC 3339 time, e.g. 2026-12-31T23:59:59Z.")
@click.option("--management", is_flag=True, help="A management key (for /api/v1/keys).")
@click.option(
    "--allow-model",
    "allow_models",
    multiple=True,
    metavar="MODEL",
    help="Limit the key to this model id or author/* (repeatable; default: every model).",
)
@database_option
def keys_create(
    email: str,
    name: str | None,
    limit: float | None,
    limit_reset: Reset | None,
    expires_at: str | None,
    management: bool,
    allow_models: tuple[str, ...],
    database_url: str | None,
) -> None:
    """Create a key and print it (it is shown only this once)."""
    expiry = _expiry(expires_at)
    try:
        allowed = allowlist.parse(list(allow_models)) if allow_models else None
    except ModelGatesError as exc:
        raise click.BadParameter(exc.message, param_hint="--allow-model") from exc

    async def create(svc: Services) -> Any:
        return await svc.keys.create(
            await user_by_email(svc, email),
            name=name,
            limit_usd=limit,
            limit_reset=limit_reset,
            expires_at=expiry,
            is_management=management,
            actor=audit.CLI,
            allowed_models=allowed,
        )

    new = run(create, database_url)
    click.echo(new.secret)
    click.echo(f"hash: {new.record.hash} (the key is shown only once)", err=True)


@keys.command("list")
@click.option("--user", "email", required=True, help="Owner's e-mail address.")
@database_option
def keys_list(email: str, database_url: str | None) -> None:
    """List a user's keys (revoked keys are not shown)."""

    async def listing(svc: Services) -> list[Any]:
        return await svc.keys.list_for(await user_by_email(svc, email))

    found = run(listing, database_url)
    if not found:
        click.echo("no keys")
        return
    click.echo(f"{'HASH':<64}  {'LABEL':<24}  {'LIMIT':>10}  {'RESET':<7}  {'STATUS':<9}  EXPIRES")
    now = system_clock()
    for key in found:
        limit = "-" if key.limit is None else f"{to_usd(key.limit):.2f}"
        status = key_state(key, now)
        label = printable(key.label)[:24]
        click.echo(
            f"{key.hash:<64}  {label:<24}  {limit:>10}  {key.limit_reset or '-':<7}"
            f"  {status:<9}  {isoformat(key.expires_at) or '-'}"
        )


@keys.command("revoke")
@click.argument("key_hash", metavar="HASH")
@database_option
def keys_revoke(key_hash: str, database_url: str | None) -> None:
    """Revoke a key for good, by its hash."""
    run(lambda svc: svc.keys.revoke(key_hash, actor=audit.CLI), database_url)
    click.echo(f"revoked {key_hash}")
