"""The rate limiter: fixed windows in memory and in Redis, the fallback, and the 429s
every limited route answers (envelope, ``Retry-After``, ``X-RateLimit-*``)."""

from __future__ import annotations

import logging
import os
import secrets
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from modelgates import ratelimit
from modelgates.app import build_app
from modelgates.catalog import GatewayConfig
from modelgates.errors import TooManyRequests
from modelgates.pkce import s256
from modelgates.ratelimit import (
    MemoryCounters,
    RateLimiter,
    RedisCounters,
    Rule,
)
from modelgates.settings import Settings
from modelgates.store import Store
from tests.conftest import Account, make_account
from tests.support.clock import FakeClock
from tests.support.redis_server import private_redis, require_redis
from tests.support.server import free_port

RULE = Rule("test", 3, 60)
CODE_URL = "/api/v1/auth/keys/code"
EXCHANGE_URL = "/api/v1/auth/keys"
VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"


class Ticks:
    def __init__(self, now: float = 6_000.0) -> None:
        self.now = now  # the start of a 60-second window

    def __call__(self) -> float:
        return self.now


def memory_limiter(ticks: Ticks) -> RateLimiter:
    return RateLimiter(MemoryCounters(clock=ticks), clock=ticks)


async def test_allows_the_limit_then_refuses_until_the_window_ends() -> None:
    ticks = Ticks()
    limiter = memory_limiter(ticks)
    for remaining in (2, 1, 0):
        decision = await limiter.hit(RULE, "k")
        assert decision.allowed
        assert decision.remaining == remaining
    ticks.now += 15
    refused = await limiter.hit(RULE, "k")
    assert not refused.allowed
    assert refused.retry_after == 45
    assert refused.headers() == {
        "Retry-After": "45",
        "X-RateLimit-Limit": "3",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": "6060000",
    }
    assert (await limiter.hit(RULE, "other")).allowed  # keys are independent
    ticks.now += 45
    assert (await limiter.hit(RULE, "k")).allowed  # the next window


async def test_peek_counts_nothing_and_clear_forgets() -> None:
    limiter = memory_limiter(Ticks())
    for _ in range(10):
        assert (await limiter.peek(RULE, "k")).allowed
    for _ in range(3):
        await limiter.hit(RULE, "k")
    assert not (await limiter.peek(RULE, "k")).allowed
    with pytest.raises(TooManyRequests) as refused:
        await limiter.enforce_peek(RULE, "k")
    assert refused.value.status == 429
    assert refused.value.metadata is not None
    assert refused.value.metadata["headers"]["X-RateLimit-Limit"] == "3"
    await limiter.clear(RULE, "k")
    assert (await limiter.peek(RULE, "k")).allowed


async def test_a_zero_limit_is_no_limit() -> None:
    limiter = memory_limiter(Ticks())
    for _ in range(100):
        await limiter.enforce(Rule("off", 0, 60), "k")


async def test_redis_counters_are_shared_between_limiters() -> None:
    url = require_redis()
    first, second = RateLimiter(RedisCounters(url)), RateLimiter(RedisCounters(url))
    key = secrets.token_hex(8)
    try:
        assert (await first.hit(RULE, key)).allowed
        assert (await second.hit(RULE, key)).allowed
        assert (await first.hit(RULE, key)).remaining == 0
        assert not (await second.hit(RULE, key)).allowed
        assert not (await first.peek(RULE, key)).allowed
        await second.clear(RULE, key)
        assert (await first.peek(RULE, key)).allowed
    finally:
        await first.close()
        await second.close()


async def test_redis_failure_falls_back_once_and_recovers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="modelgates.ratelimit")
    mono = Ticks(0.0)
    with private_redis(tmp_path) as redis:
        counters = RedisCounters(redis.url, monotonic=mono)
        limiter = RateLimiter(counters)
        try:
            assert (await limiter.hit(RULE, "k")).allowed
            assert counters.using_redis
            redis.kill()
            # Limits hold, counted in process; one warning for the whole outage.
            for _ in range(3):
                await limiter.hit(RULE, "down")
            assert not (await limiter.hit(RULE, "down")).allowed
            mono.now += 10
            await limiter.hit(RULE, "down")
            warnings = [r.message for r in caplog.records if "unavailable" in r.message]
            assert len(warnings) == 1, warnings
            assert not counters.using_redis
            redis.start()
            mono.now += 10  # past the retry pause
            assert (await limiter.hit(RULE, "fresh")).allowed
            assert counters.using_redis
            assert any("is back" in r.message for r in caplog.records)
        finally:
            await limiter.close()


async def test_a_redis_flap_loses_no_hits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """While Redis does not answer, counting carries on in process from Redis's last
    count (not a fresh window), and what was counted meanwhile reaches Redis with the
    next hit, so another process sees it."""
    # Only the stopped Redis may time out, not a loaded machine's slow answer.
    monkeypatch.setattr(ratelimit, "REDIS_TIMEOUT_SECONDS", 2.0)
    mono = Ticks(0.0)
    with private_redis(tmp_path) as redis:
        counters = RedisCounters(redis.url, monotonic=mono)
        limiter, other = RateLimiter(counters), RateLimiter(RedisCounters(redis.url))
        try:
            assert (await limiter.hit(RULE, "k")).remaining == 2
            assert redis.process is not None
            os.kill(redis.process.pid, signal.SIGSTOP)  # unresponsive, its counts kept
            try:
                assert (await limiter.hit(RULE, "k")).remaining == 1  # times out
                assert not counters.using_redis
                third = await limiter.hit(RULE, "k")  # in process only
                assert third.allowed and third.remaining == 0
            finally:
                os.kill(redis.process.pid, signal.SIGCONT)
            mono.now += 10  # past the retry pause
            assert not (await limiter.hit(RULE, "k")).allowed
            assert counters.using_redis
            assert not (await other.hit(RULE, "k")).allowed
        finally:
            await limiter.close()
            await other.close()


async def test_an_unreachable_redis_never_stops_a_request() -> None:
    limiter = RateLimiter(RedisCounters(f"redis://127.0.0.1:{free_port()}/0"))
    try:
        assert (await limiter.hit(RULE, "k")).allowed
    finally:
        await limiter.close()


# --- the routes ---------------------------------------------------------------

LIMITS = Settings(
    rate_limit_exchange_per_address=8,
    rate_limit_exchange_failures_per_code=3,
    rate_limit_codes_per_key=4,
    rate_limit_gateway_per_key=2,
)


@pytest.fixture
async def limited(
    store: Store, clock: FakeClock, gateway_config: GatewayConfig
) -> AsyncIterator[httpx.AsyncClient]:
    app = build_app(LIMITS, store=store, clock=clock, gateway=gateway_config)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=30) as http,
    ):
        yield http


@pytest.fixture
async def limited_account(limited: httpx.AsyncClient) -> Account:
    app_services = limited._transport.app.state.services  # type: ignore[attr-defined]
    return await make_account(app_services)


def assert_rate_limited(response: httpx.Response, limit: int) -> None:
    assert response.status_code == 429, response.text
    body = response.json()
    assert set(body) == {"error", "user_id"}
    assert body["error"]["code"] == 429
    assert body["error"]["message"] == "Rate limit exceeded"
    headers = body["error"]["metadata"]["headers"]
    assert headers["X-RateLimit-Limit"] == response.headers["X-RateLimit-Limit"] == str(limit)
    assert headers["X-RateLimit-Remaining"] == response.headers["X-RateLimit-Remaining"] == "0"
    assert headers["X-RateLimit-Reset"] == response.headers["X-RateLimit-Reset"]
    assert int(response.headers["X-RateLimit-Reset"]) > 1_000_000_000_000  # epoch ms
    assert 1 <= int(response.headers["Retry-After"]) <= 3600


async def test_code_creation_is_limited_per_key(
    limited: httpx.AsyncClient, limited_account: Account
) -> None:
    body = {"callback_url": "https://myapp.com/cb"}
    for _ in range(4):
        ok = await limited.post(CODE_URL, json=body, headers=limited_account.auth)
        assert ok.status_code == 200, ok.text
    assert_rate_limited(await limited.post(CODE_URL, json=body, headers=limited_account.auth), 4)


async def test_failed_exchanges_of_one_code_are_limited(
    limited: httpx.AsyncClient, limited_account: Account
) -> None:
    body = {
        "callback_url": "https://myapp.com/cb",
        "code_challenge": s256(VERIFIER),
        "code_challenge_method": "S256",
    }
    code = (await limited.post(CODE_URL, json=body, headers=limited_account.auth)).json()["data"][
        "id"
    ]
    for _ in range(3):
        wrong = await limited.post(EXCHANGE_URL, json={"code": code, "code_verifier": "x" * 43})
        assert wrong.status_code == 403
    # The right verifier is refused too now: guessing stops at 3 tries.
    assert_rate_limited(
        await limited.post(EXCHANGE_URL, json={"code": code, "code_verifier": VERIFIER}), 3
    )


async def test_exchanges_are_limited_per_address(limited: httpx.AsyncClient) -> None:
    for n in range(8):
        response = await limited.post(EXCHANGE_URL, json={"code": f"unknown-{n}"})
        assert response.status_code == 403
    assert_rate_limited(await limited.post(EXCHANGE_URL, json={"code": "another"}), 8)


async def test_gateway_requests_are_limited_per_key(
    limited: httpx.AsyncClient, limited_account: Account
) -> None:
    body = {"model": "test/echo", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
    for _ in range(2):
        ok = await limited.post("/api/v1/chat/completions", json=body, headers=limited_account.auth)
        assert ok.status_code == 200, ok.text
    assert_rate_limited(
        await limited.post("/api/v1/chat/completions", json=body, headers=limited_account.auth), 2
    )


def test_every_refusal_is_counted_in_metrics() -> None:
    from prometheus_client import REGISTRY

    from modelgates.ratelimit import Decision, refused

    def refusals() -> float:
        value = REGISTRY.get_sample_value(
            "modelgates_rate_limit_refusals_total", {"scope": "metrics-probe"}
        )
        return value or 0.0

    before = refusals()
    decision = Decision(allowed=False, limit=1, remaining=0, reset_at=0.0, retry_after=1)
    error = refused(decision, scope="metrics-probe")
    assert error.status == 429
    assert refusals() == before + 1
