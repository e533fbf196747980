"""Every refusal of the metered path on ``POST /api/v1/responses``, in-process against both
stubs, on SQLite and PostgreSQL: what refuses a chat completion refuses a response, before
the upstream hears of it and without a charge, streamed or not.

Prices: 1000 nano-dollars a prompt token, 2000 a completion token.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import httpx
import pytest

from modelgates.app import build_app
from modelgates.catalog import GatewayConfig
from modelgates.container import Services
from modelgates.money import NANOS_PER_USD
from modelgates.settings import Settings
from modelgates.store import Store
from tests.conftest import Account
from tests.support.clock import FakeClock
from tests.support.responses_events import final, read_stream
from tests.support.upstream import Upstream
from tests.test_metering import mint

MODES = ["chat", "native"]
ROUTE = "/api/v1/responses"
BODY = {"input": "one two three", "max_output_tokens": 10, "store": False}
"""A request whose worst case is its prompt estimate plus 10 tokens (20,000)."""


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def body(mode: str, **extra: Any) -> dict[str, Any]:
    return {"model": f"{mode}/stop", **BODY, **extra}


async def ledger(services: Services, key: str) -> tuple[int, int, int]:
    """(usage, sum of generation records, live reservations) of a key."""
    record = await services.store.get_key((await services.keys.authenticate(f"Bearer {key}")).hash)
    assert record is not None
    audit = await services.store.usage_audit(record.hash, services.clock())
    return record.usage.total, audit.charged, audit.reservations


async def refused(
    http: httpx.AsyncClient, key: str, mode: str, upstreams: list[Upstream]
) -> list[httpx.Response]:
    """The answers to the same request, whole and streamed; neither reached an upstream."""
    before = [len(upstream.requests) for upstream in upstreams]
    answers = [
        await http.post(ROUTE, headers=bearer(key), json=body(mode, stream=stream))
        for stream in (False, True)
    ]
    assert [len(upstream.requests) for upstream in upstreams] == before
    for answer in answers:
        assert answer.headers["content-type"] == "application/json"
        assert answer.json()["error"]["code"] == answer.status_code
    return answers


@pytest.fixture
def upstreams(fake_upstream: Upstream, native_upstream: Upstream) -> list[Upstream]:
    return [fake_upstream, native_upstream]


@pytest.mark.parametrize("mode", MODES)
async def test_a_key_over_its_limit_is_refused_and_spends_nothing_more(
    responses_client: httpx.AsyncClient,
    services: Services,
    account: Account,
    upstreams: list[Upstream],
    mode: str,
) -> None:
    cost = 3 * 1000 + 5 * 2000
    limit = 50_000  # a few answers of 13,000, whose worst cases are 24,000 to 32,000
    key = (await services.keys.create(account.user, name="small", limit_usd=limit / 1e9)).secret
    served = 0
    for _ in range(10):
        answer = await responses_client.post(ROUTE, headers=bearer(key), json=body(mode))
        if answer.status_code != 200:
            break
        served += 1
    assert answer.status_code == 403 and served >= 2
    for answer in await refused(responses_client, key, mode, upstreams):
        assert answer.status_code == 403
        assert answer.json()["error"]["message"].startswith("Key limit exceeded (total limit)")
    assert await ledger(services, key) == (served * cost, served * cost, 0)
    assert served * cost <= limit


@pytest.mark.parametrize("mode", MODES)
async def test_a_sub_key_is_bound_by_the_limit_of_the_key_that_minted_it(
    responses_client: httpx.AsyncClient,
    services: Services,
    account: Account,
    upstreams: list[Upstream],
    mode: str,
) -> None:
    parent = (await services.keys.create(account.user, name="parent", limit_usd=0.00001)).secret
    _, child = await mint(responses_client, parent)
    assert child is not None
    for answer in await refused(responses_client, child, mode, upstreams):
        assert answer.status_code == 403
        assert answer.json()["error"]["message"].startswith(
            "Limit of the key that minted this key exceeded"
        )


@pytest.mark.parametrize("mode", MODES)
async def test_revoked_disabled_expired_and_management_keys_are_refused(
    responses_client: httpx.AsyncClient,
    services: Services,
    account: Account,
    clock: FakeClock,
    upstreams: list[Upstream],
    mode: str,
) -> None:
    revoked = await services.keys.create(account.user, name="gone")
    await services.keys.revoke(revoked.record.hash)
    expiring = await services.keys.create(
        account.user, name="soon", expires_at=clock() + timedelta(hours=1)
    )
    disabled = services.keys.mint(user_id=account.user.id, name="off")
    await services.store.create_key(replace(disabled.record, disabled=True))
    management = await services.keys.create(account.user, name="admin", is_management=True)
    clock.advance(3600)

    for key, status, message in [
        (revoked.secret, 401, "Key revoked"),
        (expiring.secret, 401, "Key expired"),
        (disabled.secret, 401, "Key disabled"),
        ("sk-mg-v1-" + "0" * 64, 401, "Invalid API key"),
        (management.secret, 403, "Management keys cannot be used for model requests"),
    ]:
        for answer in await refused(responses_client, key, mode, upstreams):
            assert answer.status_code == status, answer.text
            assert answer.json()["error"]["message"] == message


@pytest.mark.parametrize("mode", MODES)
async def test_without_an_output_bound_the_budget_grants_one(
    responses_client: httpx.AsyncClient,
    services: Services,
    account: Account,
    fake_upstream: Upstream,
    native_upstream: Upstream,
    mode: str,
) -> None:
    upstream = fake_upstream if mode == "chat" else native_upstream
    key = (await services.keys.create(account.user, name="small", limit_usd=0.00005)).secret
    request = {"model": f"{mode}/echo", "input": "one two three", "store": False}
    answer = await responses_client.post(ROUTE, headers=bearer(key), json=request)

    assert answer.status_code == 200, answer.text
    sent = upstream.requests[-1].body
    granted = sent["max_tokens" if mode == "chat" else "max_output_tokens"]
    assert 0 < granted < 25  # what 50,000 nano-dollars buy after the prompt estimate
    assert answer.json()["usage"]["output_tokens"] == granted
    assert (await ledger(services, key))[0] <= 50_000


@pytest.mark.parametrize("mode", MODES)
async def test_concurrent_streams_never_overspend(
    responses_client: httpx.AsyncClient, services: Services, account: Account, mode: str
) -> None:
    limit = 100_000
    key = await services.keys.create(account.user, name="l", limit_usd=limit / NANOS_PER_USD)
    answers = await asyncio.gather(
        *(
            responses_client.post(ROUTE, headers=bearer(key.secret), json=body(mode, stream=True))
            for _ in range(8)
        )
    )
    served = [a for a in answers if a.status_code == 200]
    assert {a.status_code for a in answers} == {200, 403}
    charged = sum(
        round(final(read_stream(a.text))["usage"]["cost"] * NANOS_PER_USD) for a in served
    )
    usage, records, reservations = await ledger(services, key.secret)
    assert usage == records == charged <= limit
    assert reservations == 0


@pytest.fixture
async def limited_rate_client(
    store: Store, clock: FakeClock, responses_config: GatewayConfig
) -> AsyncIterator[httpx.AsyncClient]:
    """The app with two model requests a minute per key."""
    app = build_app(
        Settings(rate_limit_gateway_per_key=2), store=store, clock=clock, gateway=responses_config
    )
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=30) as http,
    ):
        yield http


async def test_the_key_rate_limit_counts_responses(
    limited_rate_client: httpx.AsyncClient, account: Account, upstreams: list[Upstream]
) -> None:
    for mode in MODES:
        answer = await limited_rate_client.post(ROUTE, headers=account.auth, json=body(mode))
        assert answer.status_code == 200, answer.text
    for answer in await refused(limited_rate_client, account.key, "chat", upstreams):
        assert answer.status_code == 429
        assert "retry-after" in answer.headers
