"""The log-in throttle on the server's rate limiter (fixed 15-minute windows)."""

from __future__ import annotations

from modelgates.ratelimit import MemoryCounters, RateLimiter, Rule
from modelgates.web.throttle import LoginThrottle


class Ticks:
    def __init__(self) -> None:
        self.now = 900.0 * 1000  # the start of a window

    def __call__(self) -> float:
        return self.now


def throttle(ticks: Ticks) -> LoginThrottle:
    limiter = RateLimiter(MemoryCounters(clock=ticks), clock=ticks)
    return LoginThrottle(
        limiter,
        account=Rule("login_account", 5, 900),
        address=Rule("login_address", 20, 900),
    )


async def test_blocks_after_the_limit_until_the_window_ends() -> None:
    ticks = Ticks()
    login = throttle(ticks)
    for _ in range(5):
        assert await login.refusal("a@example.com", "10.0.0.1") is None
        await login.failed("a@example.com", "10.0.0.1")
        ticks.now += 10
    refusal = await login.refusal("a@example.com", "10.0.0.2")
    assert refusal is not None
    assert refusal.retry_after == 900 - 50
    assert refusal.headers()["X-RateLimit-Remaining"] == "0"
    assert await login.refusal("b@example.com", "10.0.0.1") is None  # accounts are independent
    ticks.now += refusal.retry_after
    assert await login.refusal("a@example.com", "10.0.0.1") is None  # a new window


async def test_the_address_limit_spans_accounts() -> None:
    ticks = Ticks()
    login = throttle(ticks)
    for n in range(20):
        await login.failed(f"user{n}@example.com", "10.0.0.1")
    assert await login.refusal("new@example.com", "10.0.0.1") is not None
    assert await login.refusal("new@example.com", "10.0.0.9") is None


async def test_success_forgets_the_account_failures() -> None:
    login = throttle(Ticks())
    for _ in range(5):
        await login.failed("a@example.com", "10.0.0.1")
    assert await login.refusal("a@example.com", "10.0.0.1") is not None
    await login.succeeded("a@example.com")
    assert await login.refusal("a@example.com", "10.0.0.1") is None
