"""The API's views of a key: OpenRouter's ``GET /key`` data, its management ``Key``
object and budget entries, computed from a key and the time (no I/O)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from modelgates import allowlist
from modelgates.models import ApiKey, User
from modelgates.money import to_usd
from modelgates.services.budgets import budget_entry, user_budget_entry
from modelgates.services.keys import Budgets
from modelgates.timestamps import isoformat
from modelgates.windows import NO_SPEND, WindowSpend, limit_remaining


def key_budget(
    key: ApiKey, now: datetime, minted: WindowSpend = NO_SPEND, *, scope: str = "key_limit"
) -> dict[str, Any] | None:
    """A key's limit as OpenRouter's budget entry (its spend includes what the keys it
    minted spent), or ``None`` without a limit. ``scope`` is ``key_limit`` for the key's
    own, ``parent_key`` for the limit of the key that minted it."""
    if key.limit is None:
        return None
    spent = key.usage.in_window(now, key.limit_reset) + minted.in_window(key.limit_reset)
    return budget_entry(scope, key.limit, spent, key.limit_reset, now)


def usage_fields(key: ApiKey, now: datetime, minted: WindowSpend = NO_SPEND) -> dict[str, Any]:
    """Limit and usage fields shared by ``/key`` and the management key objects: usage is
    the key's own; what remains of its limit also counts what its sub-keys spent."""
    remaining = limit_remaining(key.limit, key.usage, key.limit_reset, now, minted)
    daily, weekly, monthly = key.usage.by_window(now)
    return {
        "limit": None if key.limit is None else to_usd(key.limit),
        "limit_remaining": None if remaining is None else to_usd(remaining),
        "limit_reset": key.limit_reset,
        "include_byok_in_limit": False,
        "usage": to_usd(key.usage.total),
        "usage_daily": to_usd(daily),
        "usage_weekly": to_usd(weekly),
        "usage_monthly": to_usd(monthly),
        "byok_usage": 0.0,
        "byok_usage_daily": 0.0,
        "byok_usage_weekly": 0.0,
        "byok_usage_monthly": 0.0,
    }


def key_object(
    key: ApiKey, user: User | None, now: datetime, minted: WindowSpend = NO_SPEND
) -> dict[str, Any]:
    """OpenRouter's management ``Key`` object for ``key`` at ``now`` (plus ``app_id``)."""
    return {
        "hash": key.hash,
        "name": key.name,
        "label": key.label,
        "disabled": key.disabled,
        **usage_fields(key, now, minted),
        "created_at": isoformat(key.created_at),
        "updated_at": isoformat(key.updated_at),
        "last_used_at": isoformat(key.last_used_at),
        "expires_at": isoformat(key.expires_at),
        "creator_user_id": None,
        "external_user": None,
        "workspace_id": user.workspace_id if user else None,
        "app_id": key.app_id,
        "allowed_models": allowlist.listed(key.allowed_models),
    }


def current_key_data(
    key: ApiKey, workspace_id: str | None, now: datetime, budgets: Budgets | None = None
) -> dict[str, Any]:
    """OpenRouter's ``GET /key`` field set for ``key`` at ``now``: ``budgets`` lists the
    key's own limit, the limit of the key that minted it and its user's budget;
    ``effective_budget`` is the one with the least remaining (the first of them on a tie)."""
    budgets = budgets or Budgets()
    entries = [
        entry
        for entry in (
            key_budget(key, now, budgets.minted),
            None
            if budgets.parent is None
            else key_budget(budgets.parent, now, budgets.parent_minted, scope="parent_key"),
            None if budgets.user is None else user_budget_entry(budgets.user, now),
        )
        if entry is not None
    ]
    tightest = min(entries, key=lambda entry: entry["remaining_usd"], default=None)
    return {
        "label": key.label,
        **usage_fields(key, now, budgets.minted),
        "expires_at": isoformat(key.expires_at),
        "is_management_key": key.is_management,
        "is_provisioning_key": key.is_management,
        "is_free_tier": False,
        "creator_user_id": None,
        "organization_id": None,
        "workspace_id": workspace_id,
        "app_id": key.app_id,
        "rate_limit": {"requests": -1, "interval": "10s", "note": "deprecated"},
        "allowed_data_regions": [],
        "free_model_daily_requests": {"limit": 0, "remaining": 0, "used": 0},
        "budgets": entries,
        "effective_budget": tightest,
        "allowed_models": allowlist.listed(key.allowed_models),
    }
