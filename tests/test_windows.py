"""Tests for modelgates.windows (UTC usage windows and limit arithmetic)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelgates.money import MAX_LIMIT_USD, NANOS_PER_USD, to_nanos, to_usd
from modelgates.windows import (
    RESETS,
    Reset,
    UsageCounters,
    day_start,
    limit_remaining,
    month_start,
    next_reset,
    week_start,
    window_start,
    window_starts,
)

utc_datetimes = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)
resets = st.sampled_from(RESETS)
fixed_offsets = st.builds(
    lambda minutes: timezone(timedelta(minutes=minutes)),
    st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59),
)


def utc(
    year: int,
    month: int,
    day: int,
    hour: int = 0,
    minute: int = 0,
    second: int = 0,
    microsecond: int = 0,
) -> datetime:
    return datetime(year, month, day, hour, minute, second, microsecond, tzinfo=UTC)


# --- constants -------------------------------------------------------------


def test_constants() -> None:
    assert RESETS == ("daily", "weekly", "monthly")
    assert NANOS_PER_USD == 1_000_000_000
    # the largest limit in nanos still fits a signed 64-bit integer
    assert to_nanos(MAX_LIMIT_USD) < 2**63


# --- exact values ----------------------------------------------------------


def test_day_start_leap_day() -> None:
    t = utc(2024, 2, 29, 13, 45, 12, 345678)
    assert day_start(t) == utc(2024, 2, 29)
    assert window_start(t, "daily") == utc(2024, 2, 29)
    assert next_reset(t, "daily") == utc(2024, 3, 1)


def test_week_start_leap_day() -> None:
    t = utc(2024, 2, 29, 13, 45)  # a Thursday
    assert week_start(t) == utc(2024, 2, 26)
    assert next_reset(t, "weekly") == utc(2024, 3, 4)


def test_month_of_leap_february() -> None:
    t = utc(2024, 2, 29, 23, 59, 59, 999999)
    assert month_start(t) == utc(2024, 2, 1)
    assert next_reset(t, "monthly") == utc(2024, 3, 1)
    assert next_reset(t, "daily") == utc(2024, 3, 1)


def test_month_of_non_leap_february() -> None:
    t = utc(2023, 2, 15)
    assert month_start(t) == utc(2023, 2, 1)
    assert next_reset(t, "monthly") == utc(2023, 3, 1)


def test_end_of_year_rolls_over() -> None:
    t = utc(2023, 12, 31, 23, 59, 59, 999999)
    assert day_start(t) == utc(2023, 12, 31)
    assert month_start(t) == utc(2023, 12, 1)
    assert next_reset(t, "daily") == utc(2024, 1, 1)
    assert next_reset(t, "monthly") == utc(2024, 1, 1)
    # 2023-12-31 is a Sunday: its week began Monday 2023-12-25
    assert week_start(t) == utc(2023, 12, 25)
    assert next_reset(t, "weekly") == utc(2024, 1, 1)


def test_first_instant_of_year() -> None:
    t = utc(2024, 1, 1)
    assert day_start(t) == t
    assert week_start(t) == t  # 2024-01-01 is a Monday
    assert month_start(t) == t
    assert next_reset(t, "daily") == utc(2024, 1, 2)
    assert next_reset(t, "weekly") == utc(2024, 1, 8)
    assert next_reset(t, "monthly") == utc(2024, 2, 1)


def test_sunday_late_vs_monday_midnight() -> None:
    sunday = utc(2026, 11, 29, 23, 59, 59, 999999)
    monday = utc(2026, 11, 30)
    assert sunday.weekday() == 6
    assert monday.weekday() == 0
    assert week_start(sunday) == utc(2026, 11, 23)
    assert next_reset(sunday, "weekly") == monday
    assert week_start(monday) == monday
    assert next_reset(monday, "weekly") == utc(2026, 12, 7)


def test_sunday_23_59_59() -> None:
    t = utc(2026, 11, 29, 23, 59, 59)
    assert window_start(t, "weekly") == utc(2026, 11, 23)
    assert window_start(t, "daily") == utc(2026, 11, 29)
    assert window_start(t, "monthly") == utc(2026, 11, 1)
    assert next_reset(t, "daily") == utc(2026, 11, 30)
    assert next_reset(t, "monthly") == utc(2026, 12, 1)


def test_week_crossing_month_and_year() -> None:
    t = utc(2025, 1, 1, 12)  # Wednesday
    assert week_start(t) == utc(2024, 12, 30)
    assert next_reset(t, "weekly") == utc(2025, 1, 6)
    assert month_start(t) == utc(2025, 1, 1)


def test_month_lengths() -> None:
    assert next_reset(utc(2024, 1, 31), "monthly") == utc(2024, 2, 1)
    assert next_reset(utc(2024, 4, 30), "monthly") == utc(2024, 5, 1)
    assert next_reset(utc(2024, 11, 30), "monthly") == utc(2024, 12, 1)
    assert next_reset(utc(2024, 12, 1), "monthly") == utc(2025, 1, 1)


def test_result_is_utc() -> None:
    t = utc(2024, 5, 5, 5, 5)
    for reset in RESETS:
        assert window_start(t, reset).tzinfo == UTC
        assert next_reset(t, reset).tzinfo == UTC


# --- non-UTC input ---------------------------------------------------------


def test_plus_five_hours_is_converted_to_utc_first() -> None:
    plus5 = timezone(timedelta(hours=5))
    # 2024-03-01 03:00 +05:00 is 2024-02-29 22:00 UTC
    t = datetime(2024, 3, 1, 3, 0, tzinfo=plus5)
    assert day_start(t) == utc(2024, 2, 29)
    assert day_start(t).utcoffset() == timedelta(0)
    assert month_start(t) == utc(2024, 2, 1)
    assert week_start(t) == utc(2024, 2, 26)
    assert next_reset(t, "daily") == utc(2024, 3, 1)
    assert next_reset(t, "monthly") == utc(2024, 3, 1)


def test_minus_offset_crosses_into_next_utc_day() -> None:
    minus8 = timezone(timedelta(hours=-8))
    # Sunday 2026-11-29 20:00 -08:00 is Monday 2026-11-30 04:00 UTC
    t = datetime(2026, 11, 29, 20, 0, tzinfo=minus8)
    assert day_start(t) == utc(2026, 11, 30)
    assert week_start(t) == utc(2026, 11, 30)
    assert next_reset(t, "weekly") == utc(2026, 12, 7)


def test_new_year_in_plus_offset_is_still_old_year_in_utc() -> None:
    plus5 = timezone(timedelta(hours=5))
    t = datetime(2024, 1, 1, 2, 0, tzinfo=plus5)  # 2023-12-31 21:00 UTC
    assert month_start(t) == utc(2023, 12, 1)
    assert next_reset(t, "monthly") == utc(2024, 1, 1)


@given(utc_datetimes, fixed_offsets, resets)
def test_offset_does_not_change_the_window(t: datetime, tz: timezone, reset: Reset) -> None:
    local = t.astimezone(tz)
    assert window_start(local, reset) == window_start(t, reset)
    assert window_start(local, reset).utcoffset() == timedelta(0)
    assert next_reset(local, reset) == next_reset(t, reset)


# --- window properties -----------------------------------------------------


@given(utc_datetimes, resets)
def test_window_contains_t(t: datetime, reset: Reset) -> None:
    assert window_start(t, reset) <= t < next_reset(t, reset)


@given(utc_datetimes, resets)
def test_next_reset_starts_a_window(t: datetime, reset: Reset) -> None:
    nxt = next_reset(t, reset)
    assert window_start(nxt, reset) == nxt


@given(utc_datetimes, resets)
def test_window_start_is_idempotent(t: datetime, reset: Reset) -> None:
    start = window_start(t, reset)
    assert window_start(start, reset) == start
    assert next_reset(start, reset) == next_reset(t, reset)


@given(utc_datetimes, resets)
def test_instant_before_next_reset_is_in_same_window(t: datetime, reset: Reset) -> None:
    last = next_reset(t, reset) - timedelta(microseconds=1)
    assert window_start(last, reset) == window_start(t, reset)


@given(utc_datetimes)
def test_day_start_is_midnight_same_date(t: datetime) -> None:
    start = day_start(t)
    assert (start.hour, start.minute, start.second, start.microsecond) == (0, 0, 0, 0)
    assert start.date() == t.date()
    assert next_reset(t, "daily") - start == timedelta(days=1)


@given(utc_datetimes)
def test_week_starts_are_monday_midnight(t: datetime) -> None:
    start = week_start(t)
    assert start.weekday() == 0
    assert (start.hour, start.minute, start.second, start.microsecond) == (0, 0, 0, 0)
    assert timedelta(0) <= t - start < timedelta(days=7)
    assert next_reset(t, "weekly") - start == timedelta(days=7)


@given(utc_datetimes)
def test_month_starts_are_day_one(t: datetime) -> None:
    start = month_start(t)
    assert start.day == 1
    assert (start.hour, start.minute, start.second, start.microsecond) == (0, 0, 0, 0)
    assert (start.year, start.month) == (t.year, t.month)


@given(utc_datetimes)
def test_monthly_next_reset_is_28_to_31_days_later(t: datetime) -> None:
    start = month_start(t)
    nxt = next_reset(t, "monthly")
    assert timedelta(days=28) <= nxt - start <= timedelta(days=31)
    assert nxt.day == 1
    assert (nxt - timedelta(days=1)).month == start.month


# --- UsageCounters ---------------------------------------------------------


def test_empty_counters_read_zero() -> None:
    counters = UsageCounters()
    t = utc(2024, 6, 1)
    assert counters.daily(t) == 0
    assert counters.weekly(t) == 0
    assert counters.monthly(t) == 0
    assert counters.in_window(t, None) == 0


def test_counters_roll_over_at_exact_boundary() -> None:
    sunday = utc(2026, 11, 29, 23, 59, 59, 999999)
    counters = UsageCounters(
        total=1000,
        day=10,
        day_start=day_start(sunday),
        week=20,
        week_start=week_start(sunday),
        month=30,
        month_start=month_start(sunday),
    )
    assert counters.daily(sunday) == 10
    assert counters.weekly(sunday) == 20
    assert counters.monthly(sunday) == 30
    monday = sunday + timedelta(microseconds=1)
    assert counters.daily(monday) == 0
    assert counters.weekly(monday) == 0
    assert counters.monthly(monday) == 30  # still November
    december = utc(2026, 12, 1)
    assert counters.monthly(december) == 0
    assert counters.in_window(december, None) == 1000


def test_counters_compare_instants_not_zones() -> None:
    plus5 = timezone(timedelta(hours=5))
    start = utc(2024, 2, 29).astimezone(plus5)  # same instant, different zone
    counters = UsageCounters(day=7, day_start=start)
    assert counters.daily(utc(2024, 2, 29, 12)) == 7


def test_counters_in_an_earlier_window_read_zero() -> None:
    t = utc(2024, 3, 15, 12)
    counters = UsageCounters(
        day=5,
        day_start=utc(2024, 3, 14),
        week=6,
        week_start=utc(2024, 3, 4),
        month=7,
        month_start=utc(2024, 2, 1),
    )
    assert counters.daily(t) == 0
    assert counters.weekly(t) == 0
    assert counters.monthly(t) == 0


@st.composite
def counters_at(draw: st.DrawFn) -> tuple[UsageCounters, datetime]:
    t = draw(utc_datetimes)
    counters = UsageCounters(
        total=draw(st.integers(min_value=0, max_value=10**18)),
        day=draw(st.integers(min_value=0, max_value=10**15)),
        day_start=day_start(t),
        week=draw(st.integers(min_value=0, max_value=10**15)),
        week_start=week_start(t),
        month=draw(st.integers(min_value=0, max_value=10**15)),
        month_start=month_start(t),
    )
    return counters, t


@given(counters_at())
def test_counters_read_stored_value_in_current_window(pair: tuple[UsageCounters, datetime]) -> None:
    counters, t = pair
    assert counters.daily(t) == counters.day
    assert counters.weekly(t) == counters.week
    assert counters.monthly(t) == counters.month
    assert counters.in_window(t, "daily") == counters.day
    assert counters.in_window(t, "weekly") == counters.week
    assert counters.in_window(t, "monthly") == counters.month
    assert counters.in_window(t, None) == counters.total


@given(counters_at(), st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=400)))
def test_counters_read_zero_in_a_later_window(
    pair: tuple[UsageCounters, datetime], extra: timedelta
) -> None:
    counters, t = pair
    later_day = next_reset(t, "daily") + extra
    later_week = next_reset(t, "weekly") + extra
    later_month = next_reset(t, "monthly") + extra
    assert counters.daily(later_day) == 0
    assert counters.weekly(later_week) == 0
    assert counters.monthly(later_month) == 0
    # lifetime total never resets
    assert counters.in_window(later_month, None) == counters.total


@given(counters_at(), st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=31)))
def test_counters_keep_value_until_next_reset(
    pair: tuple[UsageCounters, datetime], extra: timedelta
) -> None:
    counters, t = pair
    stored_by_reset: tuple[tuple[Reset, int], ...] = (
        ("daily", counters.day),
        ("weekly", counters.week),
    )
    for reset, stored in stored_by_reset:
        later = min(t + extra, next_reset(t, reset) - timedelta(microseconds=1))
        assert counters.in_window(later, reset) == stored
    later = min(t + extra, next_reset(t, "monthly") - timedelta(microseconds=1))
    assert counters.in_window(later, "monthly") == counters.month


# --- limit_remaining -------------------------------------------------------


def test_limit_remaining_none_without_limit() -> None:
    counters = UsageCounters(total=5)
    t = utc(2024, 1, 1)
    for reset in (*RESETS, None):
        assert limit_remaining(None, counters, reset, t) is None


def test_limit_remaining_uses_total_without_reset() -> None:
    t = utc(2024, 1, 10)
    counters = UsageCounters(total=700, day=100, day_start=day_start(t))
    assert limit_remaining(1000, counters, None, t) == 300
    assert limit_remaining(1000, counters, "daily", t) == 900
    assert limit_remaining(1000, counters, "weekly", t) == 1000
    assert limit_remaining(1000, counters, "monthly", t) == 1000


def test_limit_remaining_never_negative() -> None:
    t = utc(2024, 1, 10)
    counters = UsageCounters(total=5000, day=5000, day_start=day_start(t))
    assert limit_remaining(1000, counters, None, t) == 0
    assert limit_remaining(1000, counters, "daily", t) == 0
    assert limit_remaining(0, counters, None, t) == 0


def test_limit_remaining_resets_with_window() -> None:
    t = utc(2024, 1, 10, 23, 59)
    counters = UsageCounters(total=800, day=800, day_start=day_start(t))
    assert limit_remaining(1000, counters, "daily", t) == 200
    assert limit_remaining(1000, counters, "daily", next_reset(t, "daily")) == 1000


@given(
    st.one_of(st.none(), st.integers(min_value=0, max_value=10**18)),
    counters_at(),
    st.one_of(st.none(), resets),
    st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=60)),
)
def test_limit_remaining_properties(
    limit: int | None,
    pair: tuple[UsageCounters, datetime],
    reset: Reset | None,
    extra: timedelta,
) -> None:
    counters, t = pair
    now = t + extra
    remaining = limit_remaining(limit, counters, reset, now)
    if limit is None:
        assert remaining is None
        return
    assert remaining is not None
    assert 0 <= remaining <= limit
    assert remaining == max(0, limit - counters.in_window(now, reset))
    if reset is None:
        assert remaining == max(0, limit - counters.total)


# --- money -----------------------------------------------------------------


def test_to_nanos_exact_values() -> None:
    assert to_nanos(0.0) == 0
    assert to_nanos(1.0) == 1_000_000_000
    assert to_nanos(0.1) == 100_000_000
    assert to_nanos(0.000000001) == 1
    assert to_nanos(0.0000000004) == 0
    assert to_nanos(12.345678901) == 12_345_678_901
    assert to_nanos(-2.5) == -2_500_000_000
    assert to_nanos(MAX_LIMIT_USD) == 10**18
    assert isinstance(to_nanos(1.5), int)


def test_to_usd_exact_values() -> None:
    assert to_usd(0) == 0.0
    assert to_usd(1_000_000_000) == 1.0
    assert to_usd(1) == 1e-9
    assert to_usd(1_500_000_000) == 1.5
    assert isinstance(to_usd(3), float)


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan])
def test_to_nanos_rejects_non_finite(bad: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        to_nanos(bad)


@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_nanos_round_trip(nanos: int) -> None:
    assert to_nanos(to_usd(nanos)) == nanos


@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_usd_round_trip(nanos: int) -> None:
    usd = to_usd(nanos)
    assert to_usd(to_nanos(usd)) == usd


@given(st.floats(min_value=-MAX_LIMIT_USD, max_value=MAX_LIMIT_USD, allow_nan=False))
def test_to_nanos_is_nearest(usd: float) -> None:
    nanos = to_nanos(usd)
    assert isinstance(nanos, int)
    assert abs(to_usd(nanos) - usd) <= 1e-9 + abs(usd) * 1e-15


@given(counters_at(), st.timedeltas(min_value=-timedelta(days=40), max_value=timedelta(days=400)))
def test_by_window_agrees_with_the_single_window_readers(
    pair: tuple[UsageCounters, datetime], shift: timedelta
) -> None:
    counters, t = pair
    at = t + shift
    assert counters.by_window(at) == (counters.daily(at), counters.weekly(at), counters.monthly(at))


@given(utc_datetimes)
def test_window_starts_are_the_three_single_window_starts(t: datetime) -> None:
    assert window_starts(t) == (day_start(t), week_start(t), month_start(t))
