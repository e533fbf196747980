"""``modelgates db``: migrations and backups."""

from __future__ import annotations

from pathlib import Path

import click

from modelgates.cli._common import database_option, describe_database, run, settings_from


@click.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
@database_option
def db_upgrade(database_url: str | None) -> None:
    """Apply pending migrations."""
    settings = settings_from(database_url)
    applied = run(lambda svc: svc.store.migrate(), settings.database_url, migrate=False)
    click.echo(f"database {describe_database(settings.database_url)} is up to date")
    if applied:
        click.echo(f"applied {', '.join(applied)}")


@db.command("backup")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite PATH if it exists.")
@database_option
def db_backup(path: Path, force: bool, database_url: str | None) -> None:
    """Copy a SQLite database to PATH while the server keeps running."""
    from modelgates.backup import BackupError, backup_sqlite

    settings = settings_from(database_url)
    try:
        written = backup_sqlite(settings.database_url, path, force=force)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"backed up {describe_database(settings.database_url)} to {written}")
