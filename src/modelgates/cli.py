"""The ``modelgates`` command: run the server and administer users and keys."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any, ParamSpec, TypeVar
from urllib.parse import urlsplit, urlunsplit

import click

from modelgates import allowlist
from modelgates.catalog import ConfigError, GatewayConfig, load_config
from modelgates.container import Services
from modelgates.display import printable
from modelgates.errors import ModelGatesError
from modelgates.key_state import key_state
from modelgates.money import to_usd
from modelgates.oidc import OidcClient, OidcConfig, ProviderUnavailable
from modelgates.services import audit, system_clock
from modelgates.services.auth_codes import parse_rfc3339
from modelgates.services.keys import isoformat
from modelgates.settings import ENV_PREFIX, Settings, SettingsError
from modelgates.store import open_store
from modelgates.windows import RESETS, Reset

P = ParamSpec("P")
T = TypeVar("T")


def _settings(database_url: str | None, config_path: str | None = None) -> Settings:
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


def _run(
    work: Callable[[Services], Awaitable[T]], database_url: str | None, *, migrate: bool = True
) -> T:
    """Open (and migrate) the store, run ``work``, close; turn failures into one line."""
    settings = _settings(database_url)

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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="modelgates")
def main() -> None:
    """ModelGates: an LLM gateway that hands out user-controlled API keys (OAuth PKCE)."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option(
    "--config",
    "config_path",
    default=None,
    metavar="PATH",
    help=f"Gateway TOML file: providers and priced models (default: ${ENV_PREFIX}CONFIG).",
)
@click.option(
    "--limit-concurrency",
    default=None,
    type=click.IntRange(1),
    metavar="N",
    help="Per worker: answer 503 once N connections or tasks are open (default: no limit).",
)
@database_option
def serve(
    host: str,
    port: int,
    workers: int,
    config_path: str | None,
    limit_concurrency: int | None,
    database_url: str | None,
) -> None:
    """Run the API server (migrates the database first)."""
    import uvicorn

    from modelgates import logs, serving

    settings = _settings(
        database_url, str(Path(config_path).resolve()) if config_path is not None else None
    )
    gateway = GatewayConfig()
    if settings.config:
        try:
            gateway = load_config(settings.config)
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from exc
        os.environ[ENV_PREFIX + "CONFIG"] = settings.config
    sign_on = _check_sign_on(settings)
    applied = _run(lambda svc: svc.store.migrate(), settings.database_url, migrate=False)
    os.environ[ENV_PREFIX + "DATABASE_URL"] = settings.database_url
    click.echo(f"ModelGates: database {describe_database(settings.database_url)}")
    if applied:
        click.echo(f"ModelGates: applied migrations {', '.join(applied)}")
    if gateway.configured:
        click.echo(
            f"ModelGates: gateway serves {len(gateway.models)} model(s) from {settings.config}"
        )
    else:
        click.echo("ModelGates: no gateway config (--config); model routes answer 503")
    if sign_on is not None:
        click.echo(
            f"ModelGates: single sign-on with {sign_on.issuer}"
            f" (redirect URI {sign_on.redirect_uri})"
        )
    shown_host = f"[{host}]" if ":" in host else host
    click.echo(f"ModelGates: listening on http://{shown_host}:{port} ({workers} worker(s))")
    logs.configure(settings.log_level, settings.log_format)
    trusted = settings.trusted_proxy_networks()
    uvicorn.run(
        "modelgates.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=settings.log_level,
        server_header=False,
        # X-Forwarded-For/-Proto only from MODELGATES_TRUSTED_PROXIES (default: from
        # nobody; uvicorn's own default would trust 127.0.0.1, so any local process
        # could choose its address for the per-address limits).
        proxy_headers=bool(trusted),
        forwarded_allow_ips=trusted or None,
        # Our access log (modelgates.access, with the request id) replaces uvicorn's,
        # and our handler (JSON or text) replaces uvicorn's logging config.
        access_log=False,
        log_config=None,
        limit_concurrency=limit_concurrency,
        timeout_keep_alive=serving.TIMEOUT_KEEP_ALIVE,
        h11_max_incomplete_event_size=serving.H11_MAX_INCOMPLETE_EVENT_SIZE,
        timeout_graceful_shutdown=serving.TIMEOUT_GRACEFUL_SHUTDOWN,
    )


def _check_sign_on(settings: Settings) -> OidcConfig | None:
    """Reach the provider once before serving: a bad issuer is one ``Error:`` line."""
    config = OidcConfig.from_settings(settings)
    if config is not None:
        try:
            asyncio.run(OidcClient(config).check())
        except ProviderUnavailable as exc:
            raise click.ClickException(f"single sign-on: {exc}") from exc
    return config


@main.group()
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
    user = _run(lambda svc: svc.users.create(email, password), database_url)
    click.echo(f"created user {user.id} <{printable(user.email)}>")


@main.group()
def keys() -> None:
    """Manage API keys."""


def _expiry(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_rfc3339(value, field="--expires-at")
    except ModelGatesError as exc:
        raise click.BadParameter(exc.message, param_hint="--expires-at") from exc


async def _user(svc: Services, email: str) -> Any:
    user = await svc.users.get_by_email(email)
    if user is None:
        raise click.ClickException(f"no user with email {email}")
    return user


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
            await _user(svc, email),
            name=name,
            limit_usd=limit,
            limit_reset=limit_reset,
            expires_at=expiry,
            is_management=management,
            actor=audit.CLI,
            allowed_models=allowed,
        )

    new = _run(create, database_url)
    click.echo(new.secret)
    click.echo(f"hash: {new.record.hash} (the key is shown only once)", err=True)


@keys.command("list")
@click.option("--user", "email", required=True, help="Owner's e-mail address.")
@database_option
def keys_list(email: str, database_url: str | None) -> None:
    """List a user's keys (revoked keys are not shown)."""

    async def listing(svc: Services) -> list[Any]:
        return await svc.keys.list_for(await _user(svc, email))

    found = _run(listing, database_url)
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
    _run(lambda svc: svc.keys.revoke(key_hash, actor=audit.CLI), database_url)
    click.echo(f"revoked {key_hash}")


@main.group()
def apps() -> None:
    """See and correct apps (one per callback origin; names are self-declared)."""


@apps.command("list")
@database_option
def apps_list(database_url: str | None) -> None:
    """List every app: its id, origin (its identity) and name."""
    found = _run(lambda svc: svc.apps.all(), database_url)
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
    renamed = _run(lambda svc: svc.apps.rename(app_id, name, actor=audit.CLI), database_url)
    click.echo(f"app {renamed.id} ({printable(renamed.origin)}) is now {printable(renamed.name)!r}")


@main.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
@database_option
def db_upgrade(database_url: str | None) -> None:
    """Apply pending migrations."""
    settings = _settings(database_url)
    applied = _run(lambda svc: svc.store.migrate(), settings.database_url, migrate=False)
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

    settings = _settings(database_url)
    try:
        written = backup_sqlite(settings.database_url, path, force=force)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"backed up {describe_database(settings.database_url)} to {written}")


@main.command("audit")
@click.option("--user", "email", default=None, help="Only this user's key events.")
@click.option("--key", "key_hash", default=None, metavar="HASH", help="Only this key's events.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 10_000))
@database_option
def audit_trail(
    email: str | None, key_hash: str | None, limit: int, database_url: str | None
) -> None:
    """Show the audit trail of key events, newest first."""

    async def events(svc: Services) -> list[Any]:
        user_id = (await _user(svc, email)).id if email else None
        return await svc.audit.events(
            user_id=user_id, key_hash=key_hash.strip().lower() if key_hash else None, limit=limit
        )

    found = _run(events, database_url)
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


# --- logging in from a terminal (modelgates.login) ---------------------------


@main.command()
@click.option("--server", required=True, metavar="URL", help="The ModelGates server's base URL.")
@click.option("--label", default=None, help="Label of the new key (default: names this host).")
@click.option("--no-browser", is_flag=True, help="Print the URL instead of opening a browser.")
@click.option(
    "--timeout",
    default=300.0,
    show_default=True,
    type=click.FloatRange(1, 3600),
    help="Seconds to wait for the browser to come back.",
)
def login(server: str, label: str | None, no_browser: bool, timeout: float) -> None:
    """Get an API key for this terminal through the server's consent page."""
    from modelgates import credentials
    from modelgates import login as flow
    from modelgates.client import ModelGatesClientError

    terminal = flow.Terminal(
        echo=click.echo,
        prompt=lambda text: str(click.prompt(text, hide_input=False)),
        open_browser=None if no_browser else flow.default_browser,
    )
    try:
        new = flow.login(
            server, label=label or flow.default_label(), timeout=timeout, terminal=terminal
        )
        path = credentials.save(new)
    except (flow.LoginError, credentials.CredentialsError) as exc:
        raise click.ClickException(str(exc)) from exc
    except ModelGatesClientError as exc:
        raise click.ClickException(f"login failed: {exc}") from exc
    click.echo(
        f"Logged in to {new.server}: key {printable(new.label)!r} (hash {new.hash}),"
        f" saved in {path}"
    )


@main.command()
@click.option("--server", default=None, metavar="URL", help="Which stored server (if several).")
def whoami(server: str | None) -> None:
    """Show the stored key's label, limit, usage and expiry (from GET /api/v1/key)."""
    from modelgates import credentials
    from modelgates.client import ModelGatesAPIError, ModelGatesClient, ModelGatesClientError

    try:
        stored = credentials.load(server)
        with ModelGatesClient(stored.server, api_key=stored.key, timeout=30) as client:
            info = client.current_key()
    except credentials.CredentialsError as exc:
        raise click.ClickException(str(exc)) from exc
    except ModelGatesAPIError as exc:
        raise click.ClickException(
            f"{stored.server} refused the stored key: {exc.message} ({exc.status})"
        ) from exc
    except ModelGatesClientError as exc:
        raise click.ClickException(str(exc)) from exc

    def usd(value: float | None) -> str:
        return "none" if value is None else f"${value:.2f}"

    rows = [
        ("server", stored.server),
        ("label", info.label),
        ("hash", stored.hash),
        ("limit", usd(info.limit)),
        ("remaining", usd(info.limit_remaining)),
        ("reset", info.limit_reset or "never"),
        ("usage", f"{usd(info.usage)} (today {usd(info.usage_daily)}, "
                  f"this week {usd(info.usage_weekly)}, this month {usd(info.usage_monthly)})"),
        ("expires", info.expires_at.isoformat() if info.expires_at else "never"),
    ]  # fmt: skip
    for name, value in rows:
        click.echo(f"{name + ':':<11}{printable(str(value))}")
