"""``modelgates apps``: the apps that asked for codes (by origin)."""

from __future__ import annotations

import click

from modelgates.cli._common import database_option, run
from modelgates.display import printable
from modelgates.services import audit
from modelgates.timestamps import isoformat


@click.group()
def apps() -> None:
    """See and correct apps (one per callback origin; names are self-declared)."""


@apps.command("list")
@database_option
def apps_list(database_url: str | None) -> None:
    """List every app: its id, origin (its identity) and name."""
    found = run(lambda svc: svc.apps.all(), database_url)
    if not found:
        click.echo("no apps")
        return
    click.echo(f"{'ID':>6}  {'ORIGIN':<40}  {'CREATED':<20}  NAME")
    for app in found:
        created = (isoformat(app.created_at) or "")[:19]
        click.echo(
            f"{app.id:>6}  {printable(app.origin):<40}  {created:<20}  {printable(app.name)}"
        )


@apps.command("rename")
@click.argument("app_id", metavar="APP_ID", type=click.IntRange(1))
@click.argument("name")
@database_option
def apps_rename(app_id: int, name: str, database_url: str | None) -> None:
    """Rename app APP_ID to NAME (recorded in the audit trail as app.renamed)."""
    renamed = run(lambda svc: svc.apps.rename(app_id, name, actor=audit.CLI), database_url)
    click.echo(f"app {renamed.id} ({printable(renamed.origin)}) is now {printable(renamed.name)!r}")
