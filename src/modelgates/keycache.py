"""The keys that requests authenticate with, kept in process between requests.

Every metered request authenticates its key, read with its user's flags (a JOIN, and a
round trip on PostgreSQL), although keys change rarely. This cache keeps them; the
stores see that a change made through any process reaches it within 1 s:

* PostgreSQL: triggers (migration 0015) send a notification for every change of a key
  or of its user's flags, and one connection per process listens for them
  (:mod:`modelgates.store.postgres_keywatch`). While that connection is down the cache
  is empty and bypassed; while its liveness is unconfirmed it is bypassed (the *hold*:
  ``hold_until``), so a connection that died without a word is no reason to serve old
  keys.
* SQLite: triggers bump a revision number, which every lookup reads first (a point
  read, several times cheaper than the key's JOIN); a new number empties the cache, so
  a change in any process applies from the next request.

What may be served stale: the usage counters and ``last_used_at`` of a key (no trigger
fires on the updates every charge makes), so what shows them reads the key's row.
Unknown hashes are not kept: a new key works at once. ``max_age`` bounds how long an
entry is trusted at all, a safety net behind the invalidations.

A read that began before an invalidation must not store what it read after it: take
``epoch`` before the read and pass it to :meth:`KeyCache.put`, which drops the key if an
invalidation came in between.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from modelgates.models import ApiKey

MAX_ENTRIES = 10_000
MAX_AGE_S = 30.0

FOREVER = float("inf")


class KeyCache:
    """A bounded LRU of key hash → key, with a maximum age and a hold (see the module)."""

    __slots__ = ("_by_user", "_clock", "_entries", "_held_until", "epoch", "max_age", "size")

    def __init__(
        self,
        *,
        size: int = MAX_ENTRIES,
        max_age: float = MAX_AGE_S,
        held_until: float = FOREVER,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.size = size
        self.max_age = max_age
        self.epoch = 0
        """Bumped by every invalidation (see :meth:`put`)."""
        self._clock = clock
        self._held_until = held_until
        self._entries: OrderedDict[str, tuple[float, ApiKey]] = OrderedDict()
        self._by_user: dict[str, set[str]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def serving(self) -> bool:
        """Whether :meth:`get` may answer from the cache now."""
        return self._clock() < self._held_until

    def get(self, key_hash: str) -> ApiKey | None:
        """The kept key, or ``None`` (not kept, too old, or the hold has lapsed)."""
        entry = self._entries.get(key_hash)
        if entry is None:
            return None
        now = self._clock()
        if now >= self._held_until:
            return None
        if now - entry[0] >= self.max_age:
            self._drop(key_hash)
            return None
        self._entries.move_to_end(key_hash)
        return entry[1]

    def put(self, key: ApiKey, epoch: int) -> None:
        """Keep ``key``, read after ``epoch`` was taken, unless an invalidation came since
        (or nothing may be served now); the least recently used key makes room."""
        if epoch != self.epoch or not self.serving or self.size <= 0:
            return
        if key.hash in self._entries:
            self._drop(key.hash)
        self._entries[key.hash] = (self._clock(), key)
        self._by_user.setdefault(key.user_id, set()).add(key.hash)
        while len(self._entries) > self.size:
            self._drop(next(iter(self._entries)))

    def invalidate(self, key_hash: str) -> None:
        """Forget one key."""
        self.epoch += 1
        self._drop(key_hash)

    def invalidate_user(self, user_id: str) -> None:
        """Forget every key of one user."""
        self.epoch += 1
        for key_hash in self._by_user.pop(user_id, ()):
            self._entries.pop(key_hash, None)

    def clear(self) -> None:
        """Forget every key."""
        self.epoch += 1
        self._entries.clear()
        self._by_user.clear()

    def hold_until(self, moment: float) -> None:
        """Serve kept keys until ``moment`` (of the cache's clock) and no longer, unless
        held again; :data:`FOREVER` for a cache whose store checks it on every lookup."""
        self._held_until = moment

    def suspend(self) -> None:
        """Forget every key and serve none until held again (invalidations may be lost)."""
        self._held_until = 0.0
        self.clear()

    def _drop(self, key_hash: str) -> None:
        entry = self._entries.pop(key_hash, None)
        if entry is None:
            return
        owned = self._by_user.get(entry[1].user_id)
        if owned is not None:
            owned.discard(key_hash)
            if not owned:
                del self._by_user[entry[1].user_id]
