"""``modelgates upstreams``: every model's endpoints, in the order they are tried, and
their health (the cool-down state the servers share through Redis)."""

from __future__ import annotations

import asyncio
import time

import click

from modelgates.catalog import ConfigError, GatewayConfig, load_config
from modelgates.cli._common import settings_from
from modelgates.cli._tables import table
from modelgates.container import health_policy
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
def upstreams(config_path: str | None) -> None:
    """Show each model's endpoints and their health."""
    settings = settings_from(None, config_path)
    if not settings.config:
        raise click.ClickException(f"no gateway configuration: pass --config or {ENV_PREFIX}CONFIG")
    try:
        gateway = load_config(settings.config)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    endpoints = [e for model in gateway.models.values() for e in model.candidates]
    states: list[State] | None = None
    if settings.redis_url:
        keys = [e.endpoint_key for e in endpoints]
        states = asyncio.run(
            _states(RedisHealth(settings.redis_url, health_policy(settings)), keys)
        )
    click.echo(_render(gateway, states, time.time()))
    if states is None:
        click.echo(
            f"\nhealth: each server process keeps its own (set {ENV_PREFIX}REDIS_URL to share"
            " it and see it here)"
        )


async def _states(board: RedisHealth, keys: list[str]) -> list[State]:
    try:
        return await board.states(keys)
    finally:
        await board.close()


def _render(gateway: GatewayConfig, states: list[State] | None, now: float) -> str:
    rows: list[list[str]] = []
    index = 0
    for model in gateway.models.values():
        for position, endpoint in enumerate(model.candidates, start=1):
            state = states[index] if states is not None else None
            index += 1
            rows.append(
                [
                    model.id if position == 1 else "",
                    str(position),
                    endpoint.provider.name,
                    endpoint.upstream_model,
                    "-" if endpoint.weight is None else str(endpoint.weight),
                    "-" if state is None else state.status(now),
                    "-" if state is None else str(state.failures),
                    _until(state, now),
                ]
            )
    headers = ["MODEL", "#", "PROVIDER", "UPSTREAM MODEL", "WEIGHT", "HEALTH", "FAILURES",
               "COOLING FOR"]  # fmt: skip
    return table(headers, rows, right={1, 4, 6, 7})


def _until(state: State | None, now: float) -> str:
    if state is None or state.open_until <= now:
        return "-"
    return f"{state.open_until - now:.0f}s"
