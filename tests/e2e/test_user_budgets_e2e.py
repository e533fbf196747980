"""User budgets behind real ``modelgates serve`` processes sharing one database: the
budget invariant under 200-way concurrency across three keys and two servers, a disabled
user stopped at once on every metered route of every server, and ``/credits`` through
the official ``openrouter`` SDK's validators.

Prices (tests/support/upstream.py): 1000 nano-dollars a prompt token, 2000 a
completion token.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from openrouter import errors

from modelgates.money import NANOS_PER_USD
from modelgates.store import open_store
from tests.conftest import UPSTREAM_KEY, UPSTREAM_KEY_ENV
from tests.e2e.helpers import cli, create_account, error_message, sha256_hex
from tests.e2e.test_gateway_e2e import (
    DISCONNECTS,
    MESSAGES,
    RACERS,
    WORKLOAD,
    charged_cost,
    hang_up_mid_stream,
)
from tests.e2e.test_openrouter_sdk import sdk
from tests.support.server import RunningServer, serve
from tests.support.upstream import Upstream, gateway_toml

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.filterwarnings(r"ignore:.*\*\* DEPRECATED \*\*:DeprecationWarning"),
]

BUDGET = 10_000_000
"""$0.01: a few dozen of the workload's requests."""


@pytest.fixture
def config_file(tmp_path: Path, fake_upstream: Upstream, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(UPSTREAM_KEY_ENV, UPSTREAM_KEY)  # inherited by the server processes
    path = tmp_path / "gateway.toml"
    path.write_text(gateway_toml(fake_upstream, api_key_env=UPSTREAM_KEY_ENV))
    return path


async def user_ledger(
    database_url: str, user_id: str, keys: list[str]
) -> tuple[int, int, int, int]:
    """(user usage, sum of the keys' usage, sum of the user's records, live reservations),
    read straight from the shared database (records first: see test_gateway_e2e.ledger)."""
    store = await open_store(database_url, pool_size=1)
    try:
        audit = await store.user_usage_audit(user_id, datetime.now(UTC))
        user = await store.get_user(user_id)
        assert user is not None
        usage = 0
        for key in keys:
            record = await store.get_key(sha256_hex(key))
            assert record is not None
            usage += record.usage.total
        return user.usage.total, usage, audit.charged, audit.reservations
    finally:
        await store.close()


async def settled_ledger(
    database_url: str, user_id: str, keys: list[str]
) -> tuple[int, int, int, int]:
    """The ledger once the streams cut short have settled (their reservations gone)."""
    deadline = time.monotonic() + 10
    while True:
        found = await user_ledger(database_url, user_id, keys)
        if found[3] == 0 or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.1)


async def test_user_budget_invariant_across_three_keys_and_two_processes(
    database_url: str, tmp_path: Path, config_file: Path
) -> None:
    """200 concurrent requests of every shape (many choices, prompt batches, streams with
    cumulative usage, an over-reporting upstream, no max_tokens, clients hanging up
    mid-stream) on three keys of one user, split over two servers sharing one database,
    against a $0.01 user budget: spend never exceeds it, and the user's usage equals the
    sum of the keys' usage and of the generation records, to the nano-dollar."""
    account = create_account(database_url, "team@example.com", tmp_path)
    limited = cli(
        "keys", "create", "--user", account.email, "--name", "limited", "--limit", "5",
        database_url=database_url, cwd=tmp_path,
    ).strip()  # fmt: skip
    third = cli(
        "keys", "create", "--user", account.email, "--name", "third",
        database_url=database_url, cwd=tmp_path,
    ).strip()  # fmt: skip
    keys = [account.key, limited, third]
    cli(
        "users", "update", account.email, "--limit", repr(BUDGET / NANOS_PER_USD),
        database_url=database_url, cwd=tmp_path,
    )  # fmt: skip
    limits = httpx.Limits(max_connections=RACERS, max_keepalive_connections=RACERS)
    with ExitStack() as stack:
        servers: list[RunningServer] = [
            stack.enter_context(serve(database_url, tmp_path, config=config_file)) for _ in range(2)
        ]
        clients = [httpx.AsyncClient(base_url=s.api, timeout=60, limits=limits) for s in servers]
        responses, _ = await asyncio.gather(
            asyncio.gather(
                *(
                    clients[i % 2].post(
                        "/" + WORKLOAD[i % len(WORKLOAD)][0],
                        headers={"Authorization": f"Bearer {keys[i % 3]}"},
                        json=WORKLOAD[i % len(WORKLOAD)][1],
                    )
                    for i in range(RACERS)
                )
            ),
            asyncio.gather(
                *(hang_up_mid_stream(clients[i % 2], keys[i % 3]) for i in range(DISCONNECTS))
            ),
        )
        for client in clients:
            await client.aclose()
        usage, key_usage, records, held = await settled_ledger(database_url, account.user_id, keys)

    admitted = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code != 200]
    assert {r.status_code for r in refused} == {402}, [r.text for r in refused][:3]
    assert all(error_message(r).startswith("User budget exceeded (total limit)") for r in refused)
    spent = sum(charged_cost(r) for r in admitted)
    print(
        f"\n[user budget {database_url.split(':')[0]}] {len(admitted)} admitted,"
        f" {len(refused)} refused; spent {spent} of {BUDGET}; user usage {usage}"
    )
    assert len(admitted) >= 20
    assert {r.request.headers["authorization"] for r in admitted} == {f"Bearer {k}" for k in keys}
    assert spent <= usage == key_usage == records <= BUDGET
    assert held == 0


METERED = [
    ("chat/completions", {"model": "test/echo", "messages": MESSAGES, "max_tokens": 2}),
    ("completions", {"model": "test/echo", "prompt": "a b", "max_tokens": 2}),
    ("embeddings", {"model": "test/echo", "input": "a b"}),
]


async def test_a_disabled_user_is_refused_at_once_on_every_metered_route_of_every_server(
    database_url: str, tmp_path: Path, config_file: Path
) -> None:
    account = create_account(database_url, "leaver@example.com", tmp_path)
    colleague = create_account(database_url, "stays@example.com", tmp_path)
    with (
        serve(database_url, tmp_path, config=config_file) as one,
        serve(database_url, tmp_path, config=config_file) as two,
    ):
        async with httpx.AsyncClient(timeout=30) as http:

            async def answers(key: str) -> list[httpx.Response]:
                return [
                    await http.post(f"{server.api}/{path}", json=body,
                                    headers={"Authorization": f"Bearer {key}"})
                    for server in (one, two) for path, body in METERED
                ]  # fmt: skip

            assert {r.status_code for r in await answers(account.key)} == {200}
            cli("users", "disable", account.email, database_url=database_url, cwd=tmp_path)
            refused = await answers(account.key)
            assert {r.status_code for r in refused} == {401}
            assert {error_message(r) for r in refused} == {"User disabled"}
            assert {r.status_code for r in await answers(colleague.key)} == {200}
            cli("users", "enable", account.email, database_url=database_url, cwd=tmp_path)
            assert {r.status_code for r in await answers(account.key)} == {200}


def test_credits_through_the_openrouter_sdk(database_url: str, tmp_path: Path) -> None:
    account = create_account(database_url, "credits@example.com", tmp_path)
    management = cli(
        "keys", "create", "--user", account.email, "--name", "admin", "--management",
        database_url=database_url, cwd=tmp_path,
    ).strip()  # fmt: skip
    with serve(database_url, tmp_path) as server:
        with sdk(server.base_url, management) as admin:
            unlimited = admin.credits.get_credits().data
            assert (unlimited.total_credits, unlimited.total_usage) == (1_000_000_000.0, 0.0)
            cli(
                "users", "update", account.email, "--limit", "50", "--limit-reset", "monthly",
                database_url=database_url, cwd=tmp_path,
            )  # fmt: skip
            budgeted = admin.credits.get_credits().data
            assert (budgeted.total_credits, budgeted.total_usage) == (50.0, 0.0)
        with sdk(server.base_url, account.key) as ordinary:
            with pytest.raises(errors.ForbiddenResponseError) as refused:
                ordinary.credits.get_credits()
            assert (
                refused.value.data.error.message
                == "Only management keys can perform this operation"
            )
