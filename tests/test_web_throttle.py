"""The log-in throttle on the server's rate limiter (fixed 15-minute windows): counted
before the password check, so parallel attempts cannot race past it."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from modelgates.app import build_app
from modelgates.container import Services
from modelgates.ratelimit import MemoryCounters, RateLimiter, Rule
from modelgates.settings import Settings
from modelgates.store import Store
from modelgates.web.throttle import LoginThrottle
from tests.conftest import make_account
from tests.support.clock import FakeClock
from tests.support.pages import csrf_of
from tests.support.redis_server import require_redis

ACCOUNT_LIMIT = 5
ADDRESS_LIMIT = 20
PARALLEL = 12


class Ticks:
    def __init__(self) -> None:
        self.now = 900.0 * 1000  # the start of a window

    def __call__(self) -> float:
        return self.now


def throttle(ticks: Ticks) -> LoginThrottle:
    limiter = RateLimiter(MemoryCounters(clock=ticks), clock=ticks)
    return LoginThrottle(
        limiter,
        account=Rule("login_account", ACCOUNT_LIMIT, 900),
        address=Rule("login_address", ADDRESS_LIMIT, 900),
    )


async def test_blocks_after_the_limit_until_the_window_ends() -> None:
    ticks = Ticks()
    login = throttle(ticks)
    for _ in range(5):
        assert (await login.attempt("a@example.com", "10.0.0.1")).refusal is None
        ticks.now += 10
    refusal = (await login.attempt("a@example.com", "10.0.0.2")).refusal
    assert refusal is not None
    assert refusal.retry_after == 900 - 50
    assert refusal.headers()["X-RateLimit-Remaining"] == "0"
    assert (await login.attempt("b@example.com", "10.0.0.1")).refusal is None  # independent
    ticks.now += refusal.retry_after
    assert (await login.attempt("a@example.com", "10.0.0.1")).refusal is None  # a new window


async def test_the_address_limit_spans_accounts() -> None:
    login = throttle(Ticks())
    for n in range(20):
        assert (await login.attempt(f"user{n}@example.com", "10.0.0.1")).refusal is None
    assert (await login.attempt("new@example.com", "10.0.0.1")).refusal is not None
    assert (await login.attempt("new@example.com", "10.0.0.9")).refusal is None


async def test_success_forgets_the_account_and_takes_back_its_address_count() -> None:
    login = throttle(Ticks())
    for _ in range(4):
        await login.attempt("a@example.com", "10.0.0.1")
    last = await login.attempt("a@example.com", "10.0.0.1")
    assert last.refusal is None
    await login.succeeded(last)
    for _ in range(5):  # the account starts over
        assert (await login.attempt("a@example.com", "10.0.0.2")).refusal is None
    for n in range(20 - 4):  # the address kept its 4 failures, not the success
        assert (await login.attempt(f"u{n}@example.com", "10.0.0.1")).refusal is None
    assert (await login.attempt("z@example.com", "10.0.0.1")).refusal is not None


async def test_refused_and_abandoned_attempts_do_not_count() -> None:
    login = throttle(Ticks())
    for _ in range(5):
        await login.attempt("a@example.com", "10.0.0.1")
    for _ in range(10):
        assert (await login.attempt("a@example.com", "10.0.0.1")).refusal is not None
    for n in range(15):  # the 10 refusals raised nothing: 5 + 15 = 20
        assert (await login.attempt(f"u{n}@example.com", "10.0.0.1")).refusal is None
    assert (await login.attempt("v@example.com", "10.0.0.1")).refusal is not None
    other = throttle(Ticks())
    for _ in range(20):
        await other.abandoned(await other.attempt("b@example.com", "10.0.0.3"))
    assert (await other.attempt("b@example.com", "10.0.0.3")).refusal is None


# --- the race, for real: parallel wrong passwords ------------------------------


@asynccontextmanager
async def login_client(
    services: Services, store: Store, clock: FakeClock, address: str
) -> AsyncIterator[httpx.AsyncClient]:
    """The app in-process, reached from ``address``, with the shared (Redis) limiter
    on PostgreSQL and the in-process one on SQLite."""
    settings = Settings(
        rate_limit_login_per_account=ACCOUNT_LIMIT,
        rate_limit_login_per_address=ADDRESS_LIMIT,
        redis_url=require_redis() if getattr(store, "dialect", "") == "postgres" else None,
    )
    app = build_app(settings, store=store, clock=clock)
    transport = httpx.ASGITransport(app=app, client=(address, 40_000))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as http,
    ):
        yield http


async def wrong_passwords(http: httpx.AsyncClient, emails: list[str]) -> list[int]:
    form = await http.get("/login")
    csrf = csrf_of(form.text)
    answers = await asyncio.gather(
        *(
            http.post("/login", data={"email": e, "password": "wrong password", "csrf": csrf})
            for e in emails
        )
    )
    return sorted(answer.status_code for answer in answers)


async def test_parallel_wrong_passwords_check_at_most_the_limit(
    services: Services, store: Store, clock: FakeClock
) -> None:
    """12 at once for one account (limit 5): at most 5 are checked (401), the rest
    refused (429), on PostgreSQL with Redis and on SQLite in process. Then 25 at once
    for different accounts from one address (limit 20). (On a loaded machine a few of
    the checked ones may also be turned away as busy: 429 too, never a 401.)"""
    tag = secrets.token_hex(4)  # Redis counters outlive a test: fresh names each run
    account = await make_account(services, f"race-{tag}@example.com")
    octets = f"{int(tag[:2], 16)}.{int(tag[2:4], 16)}"
    async with login_client(services, store, clock, f"10.1.{octets}") as http:
        statuses = await wrong_passwords(http, [account.user.email] * PARALLEL)
    assert set(statuses) <= {401, 429}
    assert 1 <= statuses.count(401) <= ACCOUNT_LIMIT, statuses
    assert statuses.count(429) >= PARALLEL - ACCOUNT_LIMIT

    spread = [f"nobody{n}-{tag}@example.com" for n in range(ADDRESS_LIMIT + 5)]
    async with login_client(services, store, clock, f"10.2.{octets}") as http:
        statuses = await wrong_passwords(http, spread)
    assert set(statuses) <= {401, 429}
    assert 1 <= statuses.count(401) <= ADDRESS_LIMIT, statuses
