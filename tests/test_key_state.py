"""The key life cycle as one table (modelgates.key_state)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from modelgates.key_state import KeyState, key_state
from modelgates.models import ApiKey
from modelgates.windows import UsageCounters, WindowSpend

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
KEY = ApiKey(hash="h", user_id="u", name="k", label="k", created_at=NOW - timedelta(days=1))
TODAY = datetime(2026, 11, 25, tzinfo=UTC)
SPENT = UsageCounters(10, 10, TODAY)
SPENT_YESTERDAY = UsageCounters(10, 10, TODAY - timedelta(days=1))


@pytest.mark.parametrize(
    ("changes", "state"),
    [
        ({}, "active"),
        ({"limit": 10, "limit_reset": "daily", "usage": SPENT}, "exhausted"),
        ({"limit": 10, "limit_reset": "daily", "usage": SPENT_YESTERDAY}, "active"),  # rolled
        ({"expires_at": NOW}, "expired"),
        ({"expires_at": NOW, "disabled": True}, "disabled"),
        ({"disabled": True, "revoked_at": NOW, "expires_at": NOW}, "revoked"),
    ],
)  # fmt: skip
def test_the_first_state_that_applies_wins(changes: dict[str, object], state: KeyState) -> None:
    from dataclasses import replace

    assert key_state(replace(KEY, **changes), NOW) == state  # type: ignore[arg-type]


def test_what_sub_keys_spent_exhausts_their_parent() -> None:
    from dataclasses import replace

    parent = replace(KEY, limit=10)
    assert key_state(parent, NOW) == "active"
    assert key_state(parent, NOW, WindowSpend(total=10)) == "exhausted"
