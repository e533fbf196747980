"""What the commands share: settings, the database option, running a command's work
on an opened (and migrated) store, and finding a user."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import ParamSpec, TypeVar
from urllib.parse import urlsplit, urlunsplit

import click

from modelgates.container import Services
from modelgates.errors import ModelGatesError
from modelgates.models import User
from modelgates.settings import ENV_PREFIX, Settings, SettingsError
from modelgates.store import open_store

P = ParamSpec("P")
T = TypeVar("T")


def settings_from(database_url: str | None, config_path: str | None = None) -> Settings:
    """The settings, with ``--database-url`` over the environment; a bad one is an ``Error:``."""
    try:
        settings = Settings.from_env(config_path=config_path)
        return settings.with_overrides(database_url=database_url) if database_url else settings
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc


def redact_url(url: str) -> str:
    """The database URL without its password, for printing."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def describe_database(url: str) -> str:
    """Where the data lives, as a person would want to read it."""
    if url.startswith("sqlite:///"):
        return f"SQLite at {Path(url.removeprefix('sqlite:///')).resolve()}"
    return f"PostgreSQL at {redact_url(url)}"


def run(
    work: Callable[[Services], Awaitable[T]], database_url: str | None, *, migrate: bool = True
) -> T:
    """Open (and migrate) the store, run ``work``, close; turn failures into one line."""
    settings = settings_from(database_url)

    async def main() -> T:
        store = await open_store(settings.database_url, pool_size=settings.database_pool_size)
        try:
            if migrate:
                await store.migrate()
            return await work(Services.build(settings, store))
        finally:
            await store.close()

    try:
        return asyncio.run(main())
    except ModelGatesError as exc:
        raise click.ClickException(exc.message) from exc
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"cannot use the database: {exc}") from exc
    except Exception as exc:
        if type(exc).__module__.startswith(("asyncpg", "sqlite3")):
            raise click.ClickException(f"database error: {exc}") from exc
        raise


def database_option(command: Callable[P, T]) -> Callable[P, T]:
    """``--database-url`` (default: ``$MODELGATES_DATABASE_URL``, else ./modelgates.db)."""
    decorated = click.option(
        "--database-url",
        default=None,
        metavar="URL",
        help="sqlite:///path.db or postgresql://user@host/db "
        f"(default: ${ENV_PREFIX}DATABASE_URL, else sqlite:///modelgates.db).",
    )(command)
    return functools.wraps(command)(decorated)


async def user_by_email(svc: Services, email: str) -> User:
    """The user with ``email``, or an ``Error:`` line."""
    user = await svc.users.get_by_email(email)
    if user is None:
        raise click.ClickException(f"no user with email {email}")
    return user
