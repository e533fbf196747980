"""The key cache alone: what it keeps, for how long, and what forgets it (a clock the
tests move, no store)."""

from __future__ import annotations

from datetime import UTC, datetime

from modelgates.keycache import KeyCache
from modelgates.models import ApiKey

CREATED = datetime(2026, 11, 25, tzinfo=UTC)


class Ticks:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def key(n: int, user: str = "user_a") -> ApiKey:
    return ApiKey(hash=f"{n:064x}", user_id=user, name="k", label="k", created_at=CREATED)


def test_a_kept_key_is_served_until_its_max_age() -> None:
    ticks = Ticks()
    cache = KeyCache(max_age=30.0, clock=ticks)
    cache.put(key(1), cache.epoch)
    ticks.now += 29.9
    assert cache.get(key(1).hash) == key(1)
    ticks.now += 0.1
    assert cache.get(key(1).hash) is None
    assert len(cache) == 0


def test_a_read_that_an_invalidation_overtook_is_not_kept() -> None:
    cache = KeyCache(clock=Ticks())
    epoch = cache.epoch  # taken before the read
    cache.invalidate(key(2).hash)  # a change of any key came in while it ran
    cache.put(key(1), epoch)
    assert cache.get(key(1).hash) is None
    cache.put(key(1), cache.epoch)
    assert cache.get(key(1).hash) == key(1)


def test_invalidations_forget_one_key_a_users_keys_or_all() -> None:
    cache = KeyCache(clock=Ticks())
    for n, user in ((1, "user_a"), (2, "user_a"), (3, "user_b"), (4, "user_c")):
        cache.put(key(n, user), cache.epoch)
    cache.invalidate(key(3).hash)
    assert cache.get(key(3).hash) is None
    assert cache.get(key(4).hash) is not None
    cache.invalidate_user("user_a")
    assert cache.get(key(1).hash) is None and cache.get(key(2).hash) is None
    assert cache.get(key(4).hash) is not None
    cache.clear()
    assert cache.get(key(4).hash) is None and len(cache) == 0


def test_the_least_recently_used_key_makes_room() -> None:
    cache = KeyCache(size=2, clock=Ticks())
    cache.put(key(1), cache.epoch)
    cache.put(key(2), cache.epoch)
    assert cache.get(key(1).hash) is not None  # 2 is now the least recently used
    cache.put(key(3), cache.epoch)
    assert len(cache) == 2
    assert cache.get(key(2).hash) is None
    assert cache.get(key(1).hash) is not None and cache.get(key(3).hash) is not None
    cache.invalidate_user("user_a")  # the index of users' keys followed the evictions
    assert len(cache) == 0


def test_nothing_is_served_outside_the_hold_and_nothing_kept_while_suspended() -> None:
    ticks = Ticks()
    cache = KeyCache(held_until=0.0, clock=ticks)
    cache.put(key(1), cache.epoch)
    assert len(cache) == 0  # not held yet: not kept
    cache.hold_until(ticks.now + 0.75)
    cache.put(key(1), cache.epoch)
    assert cache.get(key(1).hash) == key(1)
    ticks.now += 0.75
    assert not cache.serving
    assert cache.get(key(1).hash) is None  # the hold lapsed: kept, not served
    cache.hold_until(ticks.now + 0.75)
    assert cache.get(key(1).hash) == key(1)
    cache.suspend()
    assert len(cache) == 0 and not cache.serving
    cache.put(key(1), cache.epoch)
    assert len(cache) == 0


def test_a_cache_of_size_zero_keeps_nothing() -> None:
    cache = KeyCache(size=0, clock=Ticks())
    cache.put(key(1), cache.epoch)
    assert cache.get(key(1).hash) is None
