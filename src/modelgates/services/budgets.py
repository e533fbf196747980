"""A user's budget as clients read it: its ``/key`` budget entry and ``/credits``. No I/O.

A user's budget (``limit`` nano-dollars, reset ``daily``, ``weekly``, ``monthly`` or
never) bounds the spend of every key of the user together, in the same UTC windows
as a key's limit; the user's spend is kept with each charge (``User.usage``), so it
is the sum of their keys' spend.

``GET /api/v1/credits`` answers OpenRouter's ``{"data": {"total_credits",
"total_usage"}}``, both numbers (the official SDKs require them): for a user with a
budget, the budget and the spend in its current window. A user without a budget has
nothing to run out of; the answer then says so without looking like an empty balance:
``total_credits`` is :data:`UNLIMITED_CREDITS` (the largest budget the server
accepts), ``total_usage`` the lifetime spend, and ``limit`` and ``limit_remaining``
(which every answer carries beside them) are ``null``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from modelgates.models import User
from modelgates.money import MAX_LIMIT_USD, to_nanos, to_usd
from modelgates.settings import Settings
from modelgates.timestamps import isoformat
from modelgates.windows import Reset, next_reset

UNLIMITED_CREDITS = MAX_LIMIT_USD
"""``total_credits`` of a user without a budget."""


def default_budget(settings: Settings) -> tuple[int | None, Reset | None]:
    """The budget (nano-dollars) and reset a new user gets
    (``MODELGATES_DEFAULT_USER_LIMIT`` and ``…_RESET``)."""
    if settings.default_user_limit is None:
        return None, None
    return to_nanos(settings.default_user_limit), settings.default_user_limit_reset


def budget_entry(
    scope: str, limit: int, spent: int, reset: Reset | None, now: datetime
) -> dict[str, Any]:
    """One entry of ``/key``'s ``budgets`` (OpenRouter's shape)."""
    return {
        "scope": scope,
        "limit_usd": to_usd(limit),
        "spend_usd": to_usd(spent),
        "remaining_usd": to_usd(max(0, limit - spent)),
        "reset_interval": reset,
        "resets_at": isoformat(next_reset(now, reset)) if reset else None,
        "include_byok": False,
        "budget_id": None,
        "guardrail_id": None,
    }


def user_spend(user: User, now: datetime) -> int:
    """What the user spent in their budget's current window (lifetime without a reset)."""
    return user.usage.in_window(now, user.limit_reset)


def user_remaining(user: User, now: datetime) -> int | None:
    """The budget minus the window's spend, never below zero; ``None`` without a budget."""
    if user.limit is None:
        return None
    return max(0, user.limit - user_spend(user, now))


def user_budget_entry(user: User, now: datetime) -> dict[str, Any] | None:
    """The user's budget as a ``budgets`` entry (scope ``user_budget``), or ``None``."""
    if user.limit is None:
        return None
    return budget_entry("user_budget", user.limit, user_spend(user, now), user.limit_reset, now)


def credits_data(user: User, now: datetime) -> dict[str, Any]:
    """The ``data`` of ``GET /api/v1/credits`` (the module docstring)."""
    remaining = user_remaining(user, now)
    return {
        "total_credits": UNLIMITED_CREDITS if user.limit is None else to_usd(user.limit),
        "total_usage": to_usd(user_spend(user, now)),
        "limit": None if user.limit is None else to_usd(user.limit),
        "limit_remaining": None if remaining is None else to_usd(remaining),
        "limit_reset": user.limit_reset,
    }
