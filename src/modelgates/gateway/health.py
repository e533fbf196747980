"""Endpoint health: the cool-down of an endpoint that keeps failing, in memory or Redis.

An endpoint (``provider:upstream_model``) that failed ``failures`` times in a row
(before answering: unreachable, timed out, 408, 429, 5xx, 401/403) is *cooling down*
for ``cooldown`` seconds, doubling each time it trips again, up to ``max_cooldown``.
When the period ends it is *half-open*: one request (the probe) may try it, and until
that request has an answer the others keep skipping it; a success closes it (state
cleared), a failure opens it again for the next, longer period.

Only requests with more than one endpoint to try consult or change health: a model
with one endpoint has nothing to fall back to, so its requests skip this module.

The state is shared by every process: with a Redis URL, one hash per endpoint
(``mg:upstream:<endpoint>``), else one row per unhealthy endpoint in the store
(``upstream_health``, changed under its lock). A Redis or database error is logged
and the endpoint counts as healthy (a cool-down is an optimisation, never a reason
to refuse a request). :class:`MemoryHealth` keeps it in one process.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from modelgates.models import EndpointHealth

if TYPE_CHECKING:
    from modelgates.store.base import Store

log = logging.getLogger(__name__)

PREFIX = "mg:upstream:"
PROBE_SECONDS = 30.0
"""How long a half-open endpoint's probe keeps it reserved for that one request."""


@dataclass(frozen=True, slots=True)
class Policy:
    failures: int = 3
    """Consecutive failures that start a cool-down (0: never)."""
    cooldown: float = 30.0
    max_cooldown: float = 600.0


State = EndpointHealth
"""One endpoint's health (:class:`~modelgates.models.EndpointHealth`)."""


def failed(state: State, now: float, policy: Policy) -> State:
    """``state`` after a failure at ``now``."""
    half_open = state.trips > 0 and now >= state.open_until
    failures = state.failures + 1
    if policy.failures and (half_open or failures >= policy.failures):
        period = min(policy.cooldown * 2**state.trips, policy.max_cooldown)
        return State(0, state.trips + 1, now + period, 0.0)
    return replace(state, failures=failures)


class HealthBoard(Protocol):
    """Where endpoint health lives (one process, or Redis)."""

    async def states(self, keys: Sequence[str]) -> list[State]: ...

    async def claim_probe(self, key: str, now: float) -> bool:
        """Reserve the half-open probe of ``key`` for the caller; False if taken."""
        ...

    async def failure(self, key: str, now: float) -> State: ...

    async def success(self, key: str) -> None: ...

    async def close(self) -> None: ...


class MemoryHealth:
    """Health kept by this process alone."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._states: dict[str, State] = {}

    async def states(self, keys: Sequence[str]) -> list[State]:
        return [self._states.get(key, _HEALTHY) for key in keys]

    async def claim_probe(self, key: str, now: float) -> bool:
        state = self._states.get(key, _HEALTHY)
        if now < state.probe_until:
            return False
        self._states[key] = replace(state, probe_until=now + PROBE_SECONDS)
        return True

    async def failure(self, key: str, now: float) -> State:
        state = failed(self._states.get(key, _HEALTHY), now, self.policy)
        self._states[key] = state
        return state

    async def success(self, key: str) -> None:
        self._states.pop(key, None)

    async def close(self) -> None:
        return None


_HEALTHY = State()


class StoreHealth:
    """Health shared by every process through the store (``upstream_health``)."""

    def __init__(self, store: Store, policy: Policy) -> None:
        self.policy = policy
        self._store = store

    async def states(self, keys: Sequence[str]) -> list[State]:
        try:
            return await self._store.endpoint_health(keys)
        except Exception as exc:  # the database's own errors differ by backend
            log.warning("upstream health unreadable (%r): all endpoints healthy", exc)
            return [_HEALTHY for _ in keys]

    async def claim_probe(self, key: str, now: float) -> bool:
        claimed = now + PROBE_SECONDS

        def claim(state: State) -> State:
            return state if now < state.probe_until else replace(state, probe_until=claimed)

        return (await self._change(key, claim)).probe_until == claimed

    async def failure(self, key: str, now: float) -> State:
        return await self._change(key, lambda state: failed(state, now, self.policy))

    async def success(self, key: str) -> None:
        await self._change(key, lambda _: _HEALTHY)

    async def _change(self, key: str, change: Callable[[State], State]) -> State:
        try:
            return await self._store.change_endpoint_health(key, change)
        except Exception as exc:
            log.warning("upstream health not recorded (%r)", exc)
            return _HEALTHY

    async def close(self) -> None:
        return None


# One failure, atomically: KEYS[1] the hash; ARGV now, threshold, cooldown, max, ttl.
_FAILURE_SCRIPT = """
local s = redis.call('HMGET', KEYS[1], 'failures', 'trips', 'open_until')
local failures = tonumber(s[1]) or 0
local trips = tonumber(s[2]) or 0
local open_until = tonumber(s[3]) or 0
local now = tonumber(ARGV[1])
local threshold = tonumber(ARGV[2])
failures = failures + 1
local half_open = trips > 0 and now >= open_until
if threshold > 0 and (half_open or failures >= threshold) then
  local period = math.min(tonumber(ARGV[3]) * (2 ^ trips), tonumber(ARGV[4]))
  trips = trips + 1
  open_until = now + period
  failures = 0
  redis.call('HSET', KEYS[1], 'failures', 0, 'trips', trips, 'open_until', open_until,
             'probe_until', 0)
else
  redis.call('HSET', KEYS[1], 'failures', failures)
end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return {failures, trips, tostring(open_until)}
"""

# Claim the probe: KEYS[1] the hash; ARGV now, probe seconds.
_PROBE_SCRIPT = """
local busy = tonumber(redis.call('HGET', KEYS[1], 'probe_until')) or 0
if tonumber(ARGV[1]) < busy then return 0 end
redis.call('HSET', KEYS[1], 'probe_until', tonumber(ARGV[1]) + tonumber(ARGV[2]))
return 1
"""


class RedisHealth:
    """Health shared by every process through Redis (module docstring)."""

    def __init__(self, url: str, policy: Policy) -> None:
        import redis.asyncio as aioredis

        self.policy = policy
        self._redis: Any = aioredis.Redis.from_url(
            url, socket_timeout=0.25, socket_connect_timeout=0.25
        )
        self._failure: Any = self._redis.register_script(_FAILURE_SCRIPT)
        self._probe: Any = self._redis.register_script(_PROBE_SCRIPT)

    @property
    def _ttl_ms(self) -> int:
        """Forget an endpoint's state a while after its longest cool-down."""
        return int((self.policy.max_cooldown * 2 + 3600) * 1000)

    async def states(self, keys: Sequence[str]) -> list[State]:
        from redis.exceptions import RedisError

        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.hgetall(PREFIX + key)
                rows = await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("Redis unavailable for upstream health (%r): all endpoints healthy", exc)
            return [_HEALTHY for _ in keys]
        return [_from_hash(row) for row in rows]

    async def claim_probe(self, key: str, now: float) -> bool:
        from redis.exceptions import RedisError

        try:
            return bool(await self._probe(keys=[PREFIX + key], args=[now, PROBE_SECONDS]))
        except (RedisError, OSError) as exc:
            log.warning("Redis unavailable for upstream health (%r)", exc)
            return True

    async def failure(self, key: str, now: float) -> State:
        from redis.exceptions import RedisError

        p = self.policy
        try:
            args = [now, p.failures, p.cooldown, p.max_cooldown, self._ttl_ms]
            failures, trips, open_until = await self._failure(keys=[PREFIX + key], args=args)
        except (RedisError, OSError) as exc:
            log.warning("Redis unavailable for upstream health (%r)", exc)
            return _HEALTHY
        return State(int(failures), int(trips), float(open_until))

    async def success(self, key: str) -> None:
        from redis.exceptions import RedisError

        try:
            await self._redis.delete(PREFIX + key)
        except (RedisError, OSError) as exc:
            log.warning("Redis unavailable for upstream health (%r)", exc)

    async def close(self) -> None:
        await self._redis.aclose()


def _from_hash(row: dict[bytes, bytes]) -> State:
    if not row:
        return _HEALTHY

    def number(name: bytes) -> float:
        try:
            return float(row.get(name, b"0"))
        except ValueError:
            return 0.0

    return State(
        int(number(b"failures")),
        int(number(b"trips")),
        number(b"open_until"),
        number(b"probe_until"),
    )


def board_for(redis_url: str | None, policy: Policy, store: Store) -> HealthBoard:
    """Redis-backed when ``redis_url`` is set, else the store's."""
    if redis_url:
        return RedisHealth(redis_url, policy)
    return StoreHealth(store, policy)
