"""UTC usage windows and limit arithmetic, free of I/O.

Windows start at 00:00 UTC (day), Monday 00:00 UTC (week) and the first of
the calendar month 00:00 UTC (month). A key's per-window counter is stored
with the start of the window it counts; when the current window has a later
start the counter reads as zero. That makes resets lazy and exact at the
boundary: no job has to run, and nothing lags.

Amounts are integer nano-dollars (:mod:`modelgates.money`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

Reset = Literal["daily", "weekly", "monthly"]
RESETS: tuple[Reset, ...] = ("daily", "weekly", "monthly")


def day_start(now: datetime) -> datetime:
    """00:00 UTC of ``now``'s UTC day."""
    utc = now.astimezone(UTC)
    return utc.replace(hour=0, minute=0, second=0, microsecond=0)


def week_start(now: datetime) -> datetime:
    """Monday 00:00 UTC of ``now``'s ISO week."""
    start = day_start(now)
    return start - timedelta(days=start.weekday())


def month_start(now: datetime) -> datetime:
    """The first of ``now``'s UTC calendar month, 00:00 UTC."""
    return day_start(now).replace(day=1)


def window_starts(now: datetime) -> tuple[datetime, datetime, datetime]:
    """The day, week and month starts of ``now``, with the day's start computed once."""
    day = day_start(now)
    return day, day - timedelta(days=day.weekday()), day.replace(day=1)


def window_start(now: datetime, reset: Reset) -> datetime:
    """Start of the window of kind ``reset`` that contains ``now``."""
    if reset == "daily":
        return day_start(now)
    if reset == "weekly":
        return week_start(now)
    return month_start(now)


def next_reset(now: datetime, reset: Reset) -> datetime:
    """The instant the current ``reset`` window ends (the next one starts)."""
    start = window_start(now, reset)
    if reset == "daily":
        return start + timedelta(days=1)
    if reset == "weekly":
        return start + timedelta(days=7)
    if start.month == 12:
        return start.replace(year=start.year + 1, month=1)
    return start.replace(month=start.month + 1)


@dataclass(frozen=True, slots=True)
class UsageCounters:
    """A key's stored counters, each per-window one tagged with its window start."""

    total: int = 0
    day: int = 0
    day_start: datetime | None = None
    week: int = 0
    week_start: datetime | None = None
    month: int = 0
    month_start: datetime | None = None

    def daily(self, now: datetime) -> int:
        """Spend in ``now``'s UTC day (zero once the day has rolled)."""
        return self.day if self.day_start == day_start(now) else 0

    def weekly(self, now: datetime) -> int:
        """Spend in ``now``'s Monday-based UTC week."""
        return self.week if self.week_start == week_start(now) else 0

    def monthly(self, now: datetime) -> int:
        """Spend in ``now``'s UTC calendar month."""
        return self.month if self.month_start == month_start(now) else 0

    def by_window(self, now: datetime) -> tuple[int, int, int]:
        """Daily, weekly and monthly spend at ``now``."""
        day, week, month = window_starts(now)
        return (
            self.day if self.day_start == day else 0,
            self.week if self.week_start == week else 0,
            self.month if self.month_start == month else 0,
        )

    def in_window(self, now: datetime, reset: Reset | None) -> int:
        """Spend that counts against a limit with reset interval ``reset``."""
        if reset == "daily":
            return self.daily(now)
        if reset == "weekly":
            return self.weekly(now)
        if reset == "monthly":
            return self.monthly(now)
        return self.total


@dataclass(frozen=True, slots=True)
class WindowSpend:
    """Spend in the windows current at one moment: what a key's sub-keys spent, which
    counts against the key's own limit."""

    total: int = 0
    day: int = 0
    week: int = 0
    month: int = 0

    def in_window(self, reset: Reset | None) -> int:
        if reset == "daily":
            return self.day
        if reset == "weekly":
            return self.week
        if reset == "monthly":
            return self.month
        return self.total


NO_SPEND = WindowSpend()


def limit_remaining(
    limit: int | None,
    counters: UsageCounters,
    reset: Reset | None,
    now: datetime,
    minted: WindowSpend = NO_SPEND,
) -> int | None:
    """``limit`` minus spend in the current window (the key's own and its sub-keys'),
    never below zero; ``None`` if unlimited."""
    if limit is None:
        return None
    return max(0, limit - counters.in_window(now, reset) - minted.in_window(reset))
