"""Typed results of the API, decoded with msgspec; unknown fields are ignored."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Generic, Literal, TypeVar

import msgspec

__all__ = ["AuthCode", "Budget", "ExchangedKey", "KeyInfo", "RateLimit", "key_hash"]

T = TypeVar("T")

LimitReset = Literal["daily", "weekly", "monthly"]


def key_hash(key: str) -> str:
    """A key's public id: lowercase hex SHA-256 of the whole key string."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class AuthCode(msgspec.Struct, frozen=True):
    """``POST /auth/keys/code``: the code (``id``) to exchange, its app and creation time."""

    id: str
    app_id: int
    created_at: datetime


class ExchangedKey(msgspec.Struct, frozen=True):
    """``POST /auth/keys``: the new API key (shown only once) and its owner.

    ``repr()`` hides the key, so logging the object does not leak it.
    """

    key: str
    user_id: str | None = None

    @property
    def hash(self) -> str:
        """The key's public id (``/keys/{hash}``)."""
        return key_hash(self.key)

    def __repr__(self) -> str:
        return f"ExchangedKey(key='{self.key[:9]}…', user_id={self.user_id!r})"


class RateLimit(msgspec.Struct, frozen=True):
    requests: int = -1
    interval: str = ""
    note: str | None = None


class FreeModelRequests(msgspec.Struct, frozen=True):
    limit: int = 0
    remaining: int = 0
    used: int = 0


class Budget(msgspec.Struct, frozen=True):
    """One spending limit that applies to the key (today: the key's own limit)."""

    scope: str
    limit_usd: float | None = None
    spend_usd: float | None = None
    remaining_usd: float | None = None
    reset_interval: str | None = None
    resets_at: datetime | None = None
    include_byok: bool = False
    budget_id: str | None = None
    guardrail_id: str | None = None


class KeyInfo(msgspec.Struct, frozen=True):
    """``GET /key``: the calling key's label, limit, usage and expiry (USD amounts)."""

    label: str
    limit: float | None = None
    limit_remaining: float | None = None
    limit_reset: str | None = None
    usage: float = 0.0
    usage_daily: float = 0.0
    usage_weekly: float = 0.0
    usage_monthly: float = 0.0
    expires_at: datetime | None = None
    is_management_key: bool = False
    is_provisioning_key: bool = False
    is_free_tier: bool = False
    include_byok_in_limit: bool = False
    byok_usage: float = 0.0
    byok_usage_daily: float = 0.0
    byok_usage_weekly: float = 0.0
    byok_usage_monthly: float = 0.0
    workspace_id: str | None = None
    creator_user_id: str | None = None
    organization_id: str | None = None
    app_id: int | None = None
    rate_limit: RateLimit | None = None
    allowed_data_regions: list[str] = msgspec.field(default_factory=list)
    free_model_daily_requests: FreeModelRequests | None = None
    budgets: list[Budget] = msgspec.field(default_factory=list)
    effective_budget: Budget | None = None


class Data(msgspec.Struct, Generic[T]):
    """The ``{"data": ...}`` wrapper of most answers."""

    data: T
