"""Failed log-in throttling: a sliding window of failures per key, in process memory.

Each key (``account:<email>``, ``address:<ip>``) may fail ``limit`` times in
``window_seconds``; the next attempt is refused until the oldest failure
leaves the window. State lives in this process only: with several workers each
keeps its own count (an attacker gets at most ``limit × workers`` tries a
window). :class:`Throttle` is the seam where a shared backend (Redis sorted
sets) can replace :class:`MemoryThrottle` without touching the pages.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

ACCOUNT_LIMIT = 5
"""Failures per account in a window: a targeted guesser gets 5 tries in 15 minutes."""
ADDRESS_LIMIT = 20
"""Failures per client address: higher, since many people can share one address."""
WINDOW_SECONDS = 15 * 60
MAX_TRACKED_KEYS = 100_000
"""Memory bound: past it the oldest keys are forgotten (their windows restart)."""


class Throttle(Protocol):
    def retry_after(self, key: str, limit: int) -> int | None:
        """Seconds until ``key`` may try again, or ``None`` if it may now."""
        ...

    def failed(self, key: str) -> None:
        """Record one failure of ``key``."""
        ...

    def clear(self, key: str) -> None:
        """Forget ``key``'s failures (after a successful log-in)."""
        ...


class MemoryThrottle:
    """:class:`Throttle` in one process's memory."""

    def __init__(
        self,
        *,
        window_seconds: float = WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._window = window_seconds
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str) -> deque[float]:
        now = self._clock()
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - self._window:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def retry_after(self, key: str, limit: int) -> int | None:
        times = self._recent(key)
        if len(times) < limit:
            return None
        # The attempt is allowed again once enough old failures leave the window.
        oldest_blocking = times[len(times) - limit]
        return max(1, math.ceil(oldest_blocking + self._window - self._clock()))

    def failed(self, key: str) -> None:
        times = self._recent(key)
        if key not in self._failures:
            if len(self._failures) >= MAX_TRACKED_KEYS:
                del self._failures[next(iter(self._failures))]
            self._failures[key] = times
        times.append(self._clock())

    def clear(self, key: str) -> None:
        self._failures.pop(key, None)
