"""Rate limits: fixed-window counters, in process memory or shared through Redis.

A :class:`Rule` names a scope (``exchange_address``, ``gateway_key``…), how
many hits a window allows, and the window's length. :class:`RateLimiter` has
three calls:

- ``hit(rule, key)`` counts one hit and says whether it was allowed;
- ``peek(rule, key)`` says whether a hit would be allowed, counting nothing
  (for limits on *failures*: peek before the attempt, ``hit`` on failure);
- ``clear(rule, key)`` forgets the key's count (a successful log-in);
- ``count(rule, key)`` is ``hit`` that can be taken back with ``uncount``: for
  limits on attempts whose outcome is known only after an await (a log-in counts
  before its password check, so concurrent attempts cannot all pass a peek).

Windows are aligned to the epoch (``floor(now / window)``), so every process
agrees on when a window resets: ``X-RateLimit-Reset`` is the window's end.

With a Redis URL the counters live in Redis (``INCRBY`` and ``PEXPIRE`` in one
Lua script, so a count and its expiry are set atomically) and are shared by
every process. When Redis fails, the limiter logs one warning, falls back to
its in-process counters, and tries Redis again at most every
``RETRY_SECONDS``; when Redis answers again it logs that once too. A flap
loses no hits: the in-process counters carry on from the last count Redis
gave, and what they counted while Redis was away is added to Redis with the
name's next hit (a call that timed out may have reached Redis too, so a flap
can count a hit twice: it errs on the side of refusing). A rule whose
``limit`` is 0 is off.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from modelgates import metrics
from modelgates.errors import TooManyRequests
from modelgates.settings import Settings

log = logging.getLogger(__name__)

RETRY_SECONDS = 2.0
"""After a Redis failure, how long to use in-process counters before trying Redis again."""
REDIS_TIMEOUT_SECONDS = 0.25
"""A Redis call slower than this counts as a failure: a request never waits longer on it."""
MAX_TRACKED_KEYS = 100_000
"""Memory bound of the in-process counters: past it the oldest are forgotten."""
KEY_PREFIX = "mg:rl:"

# KEYS[1]: the window's counter; ARGV[1]: increment; ARGV[2]: window in ms.
_HIT_SCRIPT = """
local n = redis.call('INCRBY', KEYS[1], ARGV[1])
if n == tonumber(ARGV[1]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return n
"""


@dataclass(frozen=True, slots=True)
class Rule:
    """``limit`` hits of ``scope`` per ``window_seconds`` per key; ``limit`` 0: no limit."""

    scope: str
    limit: int
    window_seconds: int


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of a hit or a peek."""

    allowed: bool
    limit: int
    remaining: int
    reset_at: float
    """Epoch seconds at which the window ends."""
    retry_after: int
    """Whole seconds until the window ends (≥ 1)."""

    def headers(self) -> dict[str, str]:
        """``Retry-After`` plus OpenRouter's ``X-RateLimit-*`` (reset in epoch ms)."""
        return {
            "Retry-After": str(self.retry_after),
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(int(self.reset_at * 1000)),
        }


@dataclass(frozen=True, slots=True)
class Counted:
    """A hit already counted, which :meth:`RateLimiter.uncount` takes back."""

    decision: Decision
    counter: str | None
    """The window counter that was raised; ``None`` when the rule is off."""
    window_seconds: int


def refused(decision: Decision, *, scope: str) -> TooManyRequests:
    """The 429 a refused ``decision`` answers with (counted in the refusals metric)."""
    headers = decision.headers()
    rate_headers = {k: v for k, v in headers.items() if k.startswith("X-")}
    metrics.RATE_LIMIT_REFUSALS.labels(scope=scope).inc()
    return TooManyRequests(headers=headers, metadata={"headers": rate_headers, "scope": scope})


def _window(rule: Rule, now: float) -> tuple[int, float]:
    index = int(now // rule.window_seconds)
    return index, (index + 1) * rule.window_seconds


def _decide(rule: Rule, count: int, now: float, *, counted: bool) -> Decision:
    _, reset_at = _window(rule, now)
    allowed = count <= rule.limit if counted else count < rule.limit
    return Decision(
        allowed=allowed,
        limit=rule.limit,
        remaining=max(0, rule.limit - count),
        reset_at=reset_at,
        retry_after=max(1, math.ceil(reset_at - now)),
    )


class Counters(Protocol):
    """Where the counts live: ``add`` returns the new count, ``get`` the current one."""

    async def add(self, name: str, amount: int, window_seconds: int) -> int: ...

    async def get(self, name: str) -> int: ...

    async def delete(self, name: str) -> None: ...


class MemoryCounters:
    """:class:`Counters` in this process (names carry their window, so they just expire)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._counts: dict[str, tuple[float, int]] = {}

    def _live(self, name: str) -> int:
        entry = self._counts.get(name)
        if entry is None:
            return 0
        if entry[0] <= self._clock():
            del self._counts[name]
            return 0
        return entry[1]

    async def add(self, name: str, amount: int, window_seconds: int) -> int:
        count = self._live(name) + amount
        entry = self._counts.get(name)
        expires = entry[0] if entry is not None else self._clock() + window_seconds
        if entry is None and len(self._counts) >= MAX_TRACKED_KEYS:
            self._sweep()
        self._counts[name] = (expires, count)
        return count

    def _sweep(self) -> None:
        now = self._clock()
        for name in [n for n, (expires, _) in self._counts.items() if expires <= now]:
            del self._counts[name]
        while len(self._counts) >= MAX_TRACKED_KEYS:
            del self._counts[next(iter(self._counts))]

    async def get(self, name: str) -> int:
        return self._live(name)

    async def delete(self, name: str) -> None:
        self._counts.pop(name, None)

    def record(self, name: str, count: int, window_seconds: int) -> None:
        """Set ``name``'s count to ``count``, as another store of counts saw it."""
        entry = self._counts.get(name)
        if entry is None and len(self._counts) >= MAX_TRACKED_KEYS:
            self._sweep()
        expires = entry[0] if entry is not None else self._clock() + window_seconds
        self._counts[name] = (expires, count)


class RedisCounters:
    """:class:`Counters` in Redis, falling back to :class:`MemoryCounters` while it is down."""

    def __init__(
        self,
        url: str,
        *,
        fallback: MemoryCounters | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        import redis.asyncio as aioredis

        self.url = url
        self._redis: Any = aioredis.Redis.from_url(
            url,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            retry_on_timeout=False,
        )
        self._script: Any = self._redis.register_script(_HIT_SCRIPT)
        self._fallback = fallback or MemoryCounters()
        self._monotonic = monotonic
        self._down_until: float | None = None
        self._unsynced: dict[str, int] = {}
        """Hits counted in process while Redis was away, not yet added to Redis."""

    @property
    def using_redis(self) -> bool:
        return self._down_until is None

    def _available(self) -> bool:
        return self._down_until is None or self._monotonic() >= self._down_until

    def _failed(self, exc: BaseException) -> None:
        if self._down_until is None:
            log.warning(
                "Redis at %s unavailable (%r): using in-process rate limits until it is back",
                _redacted(self.url),
                exc,
            )
        self._down_until = self._monotonic() + RETRY_SECONDS

    def _succeeded(self) -> None:
        if self._down_until is not None:
            log.warning("Redis at %s is back: rate limits are shared again", _redacted(self.url))
            self._down_until = None

    async def _call(self, work: Callable[[], Any], fallback: Callable[[], Any]) -> Any:
        from redis.exceptions import RedisError

        if self._available():
            try:
                result = await work()
            except (RedisError, OSError) as exc:
                self._failed(exc)
            else:
                self._succeeded()
                return result
        return await fallback()

    async def add(self, name: str, amount: int, window_seconds: int) -> int:
        synced = self._unsynced.pop(name, 0)

        async def shared() -> int:
            try:
                count = int(
                    await self._script(keys=[name], args=[amount + synced, window_seconds * 1000])
                )
            except BaseException:
                self._unsynced[name] = self._unsynced.get(name, 0) + synced
                raise
            # Hits counted in process while this call was on its way are still unsynced.
            count += self._unsynced.get(name, 0)
            self._fallback.record(name, count, window_seconds)
            return count

        async def local() -> int:
            if len(self._unsynced) < MAX_TRACKED_KEYS:
                self._unsynced[name] = self._unsynced.get(name, 0) + amount
            return await self._fallback.add(name, amount, window_seconds)

        return int(await self._call(shared, local))

    async def get(self, name: str) -> int:
        async def shared() -> int:
            return int(await self._redis.get(name) or 0) + self._unsynced.get(name, 0)

        return int(await self._call(shared, lambda: self._fallback.get(name)))

    async def delete(self, name: str) -> None:
        self._unsynced.pop(name, None)
        await self._fallback.delete(name)
        await self._call(lambda: self._redis.delete(name), _nothing)

    async def close(self) -> None:
        await self._redis.aclose()


async def _nothing() -> None:
    return None


def _redacted(url: str) -> str:
    """The URL without a password."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.rsplit("@", 1)[1]
    return scheme + sep + rest


class RateLimiter:
    """Fixed-window limits over some :class:`Counters`."""

    def __init__(self, counters: Counters, *, clock: Callable[[], float] = time.time) -> None:
        self.counters = counters
        self._clock = clock

    def _name(self, rule: Rule, key: str, index: int) -> str:
        return f"{KEY_PREFIX}{rule.scope}:{key}:{index}"

    async def hit(self, rule: Rule, key: str, amount: int = 1) -> Decision:
        """Count ``amount`` hits of ``key`` and decide on them."""
        return (await self.count(rule, key, amount)).decision

    async def count(self, rule: Rule, key: str, amount: int = 1) -> Counted:
        """Count ``amount`` hits of ``key`` atomically and decide on them; the result can
        be taken back (:meth:`uncount`), in the window it was counted in."""
        now = self._clock()
        if rule.limit <= 0:
            off = _decide(Rule(rule.scope, 1, rule.window_seconds), 0, now, counted=True)
            return Counted(off, None, rule.window_seconds)
        index, _ = _window(rule, now)
        name = self._name(rule, key, index)
        count = await self.counters.add(name, amount, rule.window_seconds)
        return Counted(_decide(rule, count, now, counted=True), name, rule.window_seconds)

    async def uncount(self, counted: Counted, amount: int = 1) -> None:
        """Take back ``amount`` hits that :meth:`count` counted."""
        if counted.counter is not None:
            await self.counters.add(counted.counter, -amount, counted.window_seconds)

    async def peek(self, rule: Rule, key: str) -> Decision:
        """Whether one more hit of ``key`` would be allowed; counts nothing."""
        now = self._clock()
        if rule.limit <= 0:
            return _decide(Rule(rule.scope, 1, rule.window_seconds), 0, now, counted=False)
        index, _ = _window(rule, now)
        count = await self.counters.get(self._name(rule, key, index))
        return _decide(rule, count, now, counted=False)

    async def clear(self, rule: Rule, key: str) -> None:
        index, _ = _window(rule, self._clock())
        await self.counters.delete(self._name(rule, key, index))

    async def enforce(self, rule: Rule, key: str) -> Decision:
        """``hit``, raising :class:`TooManyRequests` when refused."""
        decision = await self.hit(rule, key)
        if not decision.allowed:
            raise refused(decision, scope=rule.scope)
        return decision

    async def enforce_peek(self, rule: Rule, key: str) -> Decision:
        """``peek``, raising :class:`TooManyRequests` when a hit would be refused."""
        decision = await self.peek(rule, key)
        if not decision.allowed:
            raise refused(decision, scope=rule.scope)
        return decision

    async def close(self) -> None:
        close = getattr(self.counters, "close", None)
        if close is not None:
            await close()


@dataclass(frozen=True, slots=True)
class Rules:
    """The server's limits, from the ``MODELGATES_RATE_LIMIT_*`` settings."""

    exchange_address: Rule
    exchange_code_failures: Rule
    codes_key: Rule
    login_account: Rule
    login_address: Rule
    gateway_key: Rule

    @classmethod
    def from_settings(cls, settings: Settings) -> Rules:
        return cls(
            exchange_address=Rule("exchange_address", settings.rate_limit_exchange_per_address, 60),
            exchange_code_failures=Rule(
                "exchange_code", settings.rate_limit_exchange_failures_per_code, 3600
            ),
            codes_key=Rule("code_key", settings.rate_limit_codes_per_key, 60),
            login_account=Rule("login_account", settings.rate_limit_login_per_account, 900),
            login_address=Rule("login_address", settings.rate_limit_login_per_address, 900),
            gateway_key=Rule("gateway_key", settings.rate_limit_gateway_per_key, 60),
        )


def limiter_for(redis_url: str | None) -> RateLimiter:
    """Redis-backed (with in-process fallback) when ``redis_url`` is set, else in-process."""
    if redis_url:
        return RateLimiter(RedisCounters(redis_url))
    return RateLimiter(MemoryCounters())
