"""Failed log-in throttling, on the server's rate limiter (:mod:`modelgates.ratelimit`).

Each account (``MODELGATES_RATE_LIMIT_LOGIN_PER_ACCOUNT``, default 5) and each
client address (``…_PER_ADDRESS``, default 20) may fail that many times in a
15-minute window; the next attempt is refused (429) until the window ends. With
``MODELGATES_REDIS_URL`` the counts are shared by every process, else each
process keeps its own.
"""

from __future__ import annotations

from modelgates.ratelimit import Decision, RateLimiter, Rule


class LoginThrottle:
    """Counts failed log-ins per account and per address; refuses past the limits."""

    def __init__(self, limiter: RateLimiter, *, account: Rule, address: Rule) -> None:
        self._limiter = limiter
        self._account = account
        self._address = address

    def _keys(self, account: str, address: str) -> list[tuple[Rule, str]]:
        return [(self._account, account), (self._address, address)]

    async def refusal(self, account: str, address: str) -> Decision | None:
        """The decision that refuses an attempt now (the longest wait), or ``None``."""
        refused = [
            decision
            for rule, key in self._keys(account, address)
            if not (decision := await self._limiter.peek(rule, key)).allowed
        ]
        return max(refused, key=lambda d: d.retry_after) if refused else None

    async def failed(self, account: str, address: str) -> None:
        """Record one failure for both the account and the address."""
        for rule, key in self._keys(account, address):
            await self._limiter.hit(rule, key)

    async def succeeded(self, account: str) -> None:
        """Forget the account's failures (the address keeps its count)."""
        await self._limiter.clear(self._account, account)
