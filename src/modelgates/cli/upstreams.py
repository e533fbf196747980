"""``modelgates upstreams``: every model's endpoints, in the order they are tried, and
their health (the cool-down state the servers share through Redis or the database)."""

from __future__ import annotations

import asyncio
import time

import click

from modelgates.catalog import ConfigError, GatewayConfig, load_config
from modelgates.cli._common import database_option, run, settings_from
from modelgates.cli._tables import table
from modelgates.container import Services, health_policy
from modelgates.gateway.health import RedisHealth, State
from modelgates.settings import ENV_PREFIX


@click.command("upstreams")
@click.option(
    "--config",
    "config_path",
    default=None,
    type=click.Path(dir_okay=False),
    help=f"The gateway configuration (default: {ENV_PREFIX}CONFIG).",
)
@database_option
def upstreams(config_path: str | None, database_url: str | None) -> None:
    """Show each model's endpoints and their health."""
    settings = settings_from(database_url, config_path)
    if not settings.config:
        raise click.ClickException(f"no gateway configuration: pass --config or {ENV_PREFIX}CONFIG")
    try:
        gateway = load_config(settings.config)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    keys = [e.endpoint_key for model in gateway.models.values() for e in model.candidates]
    if settings.redis_url:
        board = RedisHealth(settings.redis_url, health_policy(settings))
        states = asyncio.run(_from_redis(board, keys))
    else:

        async def from_store(svc: Services) -> list[State]:
            return await svc.store.endpoint_health(keys)

        states = run(from_store, database_url)
    click.echo(_render(gateway, states, time.time()))


async def _from_redis(board: RedisHealth, keys: list[str]) -> list[State]:
    try:
        return await board.states(keys)
    finally:
        await board.close()


def _render(gateway: GatewayConfig, states: list[State], now: float) -> str:
    rows: list[list[str]] = []
    index = 0
    for model in gateway.models.values():
        for position, endpoint in enumerate(model.candidates, start=1):
            state = states[index]
            index += 1
            rows.append(
                [
                    model.id if position == 1 else "",
                    str(position),
                    endpoint.provider.name,
                    endpoint.upstream_model,
                    "-" if endpoint.weight is None else str(endpoint.weight),
                    state.status(now),
                    str(state.failures),
                    f"{state.open_until - now:.0f}s" if state.open_until > now else "-",
                ]
            )
    headers = ["MODEL", "#", "PROVIDER", "UPSTREAM MODEL", "WEIGHT", "HEALTH", "FAILURES",
               "COOLING FOR"]  # fmt: skip
    return table(headers, rows, right={1, 4, 6, 7})
