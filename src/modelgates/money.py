"""Money: integer nano-dollars (1e-9 USD), their rounding, conversion and bounds. No I/O.

Every amount the server stores or compares is an ``int`` of nano-dollars, so sums
are exact and ``usage == sum(charges)`` holds to the last digit. USD floats exist
only at the edges: prices and limits as configured or sent, and amounts as the
API reports them.

Bounds: every amount that reaches the database is at most :data:`MAX_NANOS`
(a little under 2**62), so a counter that adds two of them stays inside a
signed 64-bit column on both stores. :func:`clamp_nanos` enforces it.
"""

from __future__ import annotations

import math

NANOS_PER_USD = 1_000_000_000
MAX_LIMIT_USD = 1_000_000_000.0
"""Largest accepted limit or budget (USD): keeps sums of nano-dollars inside 64 bits."""
MAX_NANOS = 4_000_000_000_000_000_000
"""Largest amount (nano-dollars, $4e9) any single stored value may hold; twice it
still fits a signed 64-bit integer (9.22e18)."""


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


def clamp_nanos(amount: int) -> int:
    """``amount`` within ``[0, MAX_NANOS]``: what may be written to a money column."""
    return min(max(0, amount), MAX_NANOS)
