"""Use cases: users, apps, keys, authorization codes and the code exchange.

Services hold the rules; they know nothing of HTTP, so the JSON API, the
consent pages and the CLI all go through the same code.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """The current time in UTC; services take a clock so tests can move time."""
    return datetime.now(UTC)
