"""``modelgates serve``: run the server (uvicorn), after checking its settings, its
gateway configuration and its single sign-on provider."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import click

from modelgates.catalog import ConfigError, GatewayConfig, load_config
from modelgates.cli._common import database_option, describe_database, run, settings_from
from modelgates.oidc import OidcClient, OidcConfig, ProviderUnavailable
from modelgates.settings import ENV_PREFIX, Settings


@click.command()
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

    settings = settings_from(
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
    applied = run(lambda svc: svc.store.migrate(), settings.database_url, migrate=False)
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
