"""Money: integer nano-dollars (1e-9 USD), their rounding, conversion and bounds. No I/O.

Every amount the server stores or compares is an ``int`` of nano-dollars, so sums
are exact and ``usage == sum(charges)`` holds to the last digit. USD floats exist
only at the edges: prices and limits as configured or sent, and amounts as the
API reports them.

Bounds: one request is never charged or reserved more than
:data:`MAX_CHARGE_NANOS`, and the stores add charges to counters saturating at
:data:`MAX_COUNTER_NANOS`, so no value ever leaves a signed 64-bit column on
either store (nor turns into a float on SQLite).
"""

from __future__ import annotations

import math

NANOS_PER_USD = 1_000_000_000
MAX_LIMIT_USD = 1_000_000_000.0
"""Largest accepted limit or budget (USD): keeps sums of nano-dollars inside 64 bits."""
MAX_CHARGE_NANOS = 1_000_000 * NANOS_PER_USD
"""Most one request can cost or reserve: $1,000,000 (far above any real request)."""
MAX_COUNTER_NANOS = 2**62
"""Where usage counters saturate: a counter below it plus a charge stays inside 64 bits."""


def to_nanos(usd: float) -> int:
    """USD to integer nano-dollars, rounded to the nearest nano-dollar."""
    if not math.isfinite(usd):
        raise ValueError("amount must be finite")
    return round(usd * NANOS_PER_USD)


def to_usd(nanos: int) -> float:
    """Integer nano-dollars back to USD as the API reports it."""
    return nanos / NANOS_PER_USD


def ceil_div(numerator: int, denominator: int) -> int:
    """``ceil(numerator / denominator)`` in exact integer arithmetic (denominator > 0)."""
    return -(-numerator // denominator)


def clamp_charge(amount: int) -> int:
    """``amount`` within ``[0, MAX_CHARGE_NANOS]``: what one request may be charged."""
    return min(max(0, amount), MAX_CHARGE_NANOS)
