"""``modelgates audit``: the audit trail of keys."""

from __future__ import annotations

import json
from typing import Any

import click

from modelgates.cli._common import database_option, run, user_by_email
from modelgates.container import Services
from modelgates.display import printable
from modelgates.timestamps import isoformat


@click.command("audit")
@click.option("--user", "email", default=None, help="Only this user's key events.")
@click.option("--key", "key_hash", default=None, metavar="HASH", help="Only this key's events.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 10_000))
@database_option
def audit_trail(
    email: str | None, key_hash: str | None, limit: int, database_url: str | None
) -> None:
    """Show the audit trail of key events, newest first."""

    async def events(svc: Services) -> list[Any]:
        user_id = (await user_by_email(svc, email)).id if email else None
        return await svc.audit.events(
            user_id=user_id, key_hash=key_hash.strip().lower() if key_hash else None, limit=limit
        )

    found = run(events, database_url)
    if not found:
        click.echo("no events")
        return
    for event in found:
        detail = "" if not event.detail else " " + json.dumps(event.detail, sort_keys=True)
        click.echo(
            printable(
                f"{isoformat(event.at)}  {event.event:<24}  key={event.key_hash or '-'}"
                f"  by={event.actor}{detail}"
            )
        )
