"""Timestamps as the API writes them."""

from __future__ import annotations

from datetime import datetime


def isoformat(moment: datetime | None) -> str | None:
    """``2026-11-29T10:30:00Z`` (fractional seconds only when present)."""
    if moment is None:
        return None
    return moment.isoformat().replace("+00:00", "Z")
