"""Failed log-in throttling, on the server's rate limiter (:mod:`modelgates.ratelimit`).

Each account (``MODELGATES_RATE_LIMIT_LOGIN_PER_ACCOUNT``, default 5) and each
client address (``…_PER_ADDRESS``, default 20) may fail that many times in a
15-minute window; the next attempt is refused (429) until the window ends. With
``MODELGATES_REDIS_URL`` the counts are shared by every process, else each
process keeps its own.

An attempt is counted *before* its password is checked (one atomic increment
per limit, then the decision), so concurrent attempts cannot all slip past a
count that the first failures have not raised yet: of any number of parallel
wrong passwords, at most the limit are checked. A refused attempt takes its
counts back at once; a successful one forgets the account's failures and takes
back its own count of the address; one that was never checked (the server was
busy, the database failed) takes back both.
"""

from __future__ import annotations

from dataclasses import dataclass

from modelgates.ratelimit import Counted, Decision, RateLimiter, Rule


@dataclass(frozen=True, slots=True)
class Attempt:
    """A log-in attempt: refused (``refusal`` set, nothing counted), or counted
    against the account and the address and let through to the password check."""

    account: str
    refusal: Decision | None
    account_count: Counted | None = None
    address_count: Counted | None = None


class LoginThrottle:
    """Counts log-in attempts per account and per address; refuses past the limits."""

    def __init__(self, limiter: RateLimiter, *, account: Rule, address: Rule) -> None:
        self._limiter = limiter
        self._account = account
        self._address = address

    async def attempt(self, account: str, address: str) -> Attempt:
        """Count an attempt for both the account and the address, then decide; a
        refused attempt (the longest wait is reported) is not counted."""
        by_account = await self._limiter.count(self._account, account)
        by_address = await self._limiter.count(self._address, address)
        refused = [c.decision for c in (by_account, by_address) if not c.decision.allowed]
        if not refused:
            return Attempt(account, None, by_account, by_address)
        await self._take_back(by_account, by_address)
        return Attempt(account, max(refused, key=lambda d: d.retry_after))

    async def succeeded(self, attempt: Attempt) -> None:
        """Forget the account's failures; the address keeps its earlier ones."""
        await self._limiter.clear(self._account, attempt.account)
        await self._take_back(attempt.address_count)

    async def abandoned(self, attempt: Attempt) -> None:
        """The password was never checked: the attempt does not count."""
        await self._take_back(attempt.account_count, attempt.address_count)

    async def _take_back(self, *counted: Counted | None) -> None:
        for each in counted:
            if each is not None:
                await self._limiter.uncount(each)
