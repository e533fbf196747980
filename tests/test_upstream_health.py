"""Endpoint cool-downs (in memory and shared through Redis), ``modelgates upstreams``, and
the ``[[models.endpoints]]`` form of the catalogue."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import pytest
from click.testing import CliRunner

from modelgates.catalog import ConfigError, parse_config
from modelgates.cli import main
from modelgates.gateway.health import (
    HealthBoard,
    MemoryHealth,
    Policy,
    RedisHealth,
    State,
    StoreHealth,
    failed,
)
from modelgates.store import Store, open_store
from tests.support.redis_server import require_redis

POLICY = Policy(failures=2, cooldown=10.0, max_cooldown=25.0)
PROVIDERS = """
[providers.a]
base_url = "http://127.0.0.1:1/v1"
[providers.b]
base_url = "http://127.0.0.1:2/v1"
[providers.claude]
base_url = "http://127.0.0.1:3/v1"
api = "anthropic"
"""


def test_cooldowns_grow_exponentially_up_to_the_maximum() -> None:
    state = State()
    state = failed(state, 0, POLICY)
    assert state.status(0) == "healthy" and state.failures == 1
    state = failed(state, 1, POLICY)
    assert (state.status(1), state.open_until) == ("cooling", 11)
    assert state.status(11) == "half-open"
    state = failed(state, 11, POLICY)  # the probe failed
    assert state.open_until == 31  # 20 s
    state = failed(state, 31, POLICY)
    assert state.open_until == 56  # capped at 25 s
    assert failed(State(), 0, Policy(failures=0)).status(0) == "healthy"  # 0: never


async def check_board(board: HealthBoard, other: HealthBoard, key: str) -> None:
    """``other`` sees what ``board`` records (the same board, or another process's)."""
    await board.failure(key, 100)
    (state,) = await other.states([key])
    assert state.failures == 1
    await board.failure(key, 100)
    (state,) = await other.states([key])
    assert state.status(105) == "cooling"
    assert state.status(111) == "half-open"
    assert await board.claim_probe(key, 111)
    assert not await other.claim_probe(key, 112)  # one probe at a time
    (state,) = await other.states([key])
    assert state.status(112) == "probing"
    await other.success(key)
    assert (await board.states([key]))[0].clean


async def test_memory_health() -> None:
    board = MemoryHealth(POLICY)
    await check_board(board, board, "a:m")


async def test_store_health_is_shared_between_processes(store: Store) -> None:
    await check_board(StoreHealth(store, POLICY), StoreHealth(store, POLICY), "a:m")
    assert await store.endpoint_health([]) == []


async def test_redis_health_is_shared_between_processes() -> None:
    url = require_redis()
    first, second = RedisHealth(url, POLICY), RedisHealth(url, POLICY)
    try:
        await check_board(first, second, f"test-{secrets.token_hex(6)}:m")
    finally:
        await first.close()
        await second.close()


async def test_redis_down_counts_every_endpoint_healthy() -> None:
    board = RedisHealth("redis://127.0.0.1:9/0", POLICY)
    try:
        assert await board.states(["a:m"]) == [State()]
        assert await board.failure("a:m", 1) == State()
        assert await board.claim_probe("a:m", 1)
    finally:
        await board.close()


def test_upstreams_command_shows_endpoints_and_their_shared_health(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = f"p{secrets.token_hex(4)}"
    config = tmp_path / "gateway.toml"
    config.write_text(
        f"""
[providers.{provider}]
base_url = "http://127.0.0.1:1/v1"
[providers.spare]
base_url = "http://127.0.0.1:2/v1"
[[models]]
id = "x/model"
prompt_price = 1.0
completion_price = 1.0
[[models.endpoints]]
provider = "{provider}"
upstream_model = "m"
[[models.endpoints]]
provider = "spare"
weight = 2
"""
    )
    monkeypatch.delenv("MODELGATES_REDIS_URL", raising=False)
    database = f"sqlite:///{tmp_path / 'mg.db'}"
    command = ["upstreams", "--config", str(config), "--database-url", database]
    fresh = CliRunner().invoke(main, command)
    assert fresh.exit_code == 0, fresh.output
    assert "x/model" in fresh.output and "spare" in fresh.output
    assert "cooling" not in fresh.output

    async def trip_in_store() -> None:
        opened = await open_store(database, pool_size=1)
        try:
            board = StoreHealth(opened, POLICY)
            for _ in range(2):
                await board.failure(f"{provider}:m", 1e12)
        finally:
            await opened.close()

    asyncio.run(trip_in_store())
    stored = CliRunner().invoke(main, command)
    assert "cooling" in next(line for line in stored.output.splitlines() if provider in line)

    url = require_redis()

    async def trip() -> None:
        board = RedisHealth(url, POLICY)
        try:
            for _ in range(2):
                await board.failure(f"{provider}:m", 1e12)  # far in the future: still cooling
        finally:
            await board.close()

    asyncio.run(trip())
    monkeypatch.setenv("MODELGATES_REDIS_URL", url)
    provider_only = ["upstreams", "--config", str(config), "--database-url", database]
    shared = CliRunner().invoke(main, provider_only)
    assert shared.exit_code == 0, shared.output
    row = next(line for line in shared.output.splitlines() if provider in line)
    assert "cooling" in row
    spare = next(line for line in shared.output.splitlines() if " spare " in line)
    assert "healthy" in spare
    missing = CliRunner().invoke(main, ["upstreams"], env={"MODELGATES_CONFIG": ""})
    assert missing.exit_code != 0


def test_endpoints_form_of_the_catalogue() -> None:
    config = parse_config(
        PROVIDERS
        + """
[[models]]
id = "x/m"
prompt_price = 1.0
completion_price = 2.0
upstream_model = "base"
[[models.endpoints]]
provider = "a"
[[models.endpoints]]
provider = "b"
upstream_model = "other"
completion_price = 5.0
weight = 3
"""
    )
    model = config.models["x/m"]
    assert (model.provider.name, model.upstream_model) == ("a", "base")
    listed = [(e.provider.name, e.upstream_model, e.completion_price_usd, e.weight)
              for e in model.candidates]  # fmt: skip
    assert listed == [("a", "base", 2.0, None), ("b", "other", 5.0, 3)]
    single = parse_config(PROVIDERS + '[[models]]\nid = "x/s"\nprovider = "a"\n'
                          "prompt_price = 1.0\ncompletion_price = 1.0\n")  # fmt: skip
    assert single.models["x/s"].endpoints == ()  # one endpoint: the route itself


@pytest.mark.parametrize(
    ("model", "problem"),
    [
        ('provider = "a"\n[[models.endpoints]]\nprovider = "b"\n', "either provider or"),
        ("", "either provider or"),
        ('[[models.endpoints]]\nprovider = "zz"\n', "endpoints[0].provider 'zz' is not"),
        ('[[models.endpoints]]\nprovider = "a"\n[[models.endpoints]]\nprovider = "claude"\n',
         "must speak the first's"),
        ('[[models.endpoints]]\nprovider = "a"\nweight = 0\n', "weight must be"),
        ('[[models.endpoints]]\nprovider = "a"\ncompletion_price = -1.0\n', "completion_price"),
        ('[[models.endpoints]]\nprovider = "a"\n[[models.endpoints]]\nprovider = "a"\n',
         "repeats an endpoint"),
        ('[[models.endpoints]]\nprovider = "a"\nspeed = 1\n', "speed"),
    ],
)  # fmt: skip
def test_bad_endpoints_are_one_line_errors(model: str, problem: str) -> None:
    text = (
        PROVIDERS + f'[[models]]\nid = "x/m"\nprompt_price = 1.0\ncompletion_price = 1.0\n{model}'
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    assert problem in str(caught.value)
    assert "\n" not in str(caught.value)
