"""Typed results of the API, and how each is read from its JSON (unknown fields ignored)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, TypeVar

from modelgates.client._shape import (
    Fields,
    Reader,
    array,
    boolean,
    integer,
    nullable,
    number,
    record,
    string,
    timestamp,
)

__all__ = ["AuthCode", "Budget", "ExchangedKey", "KeyInfo", "RateLimit", "key_hash"]

T = TypeVar("T")

LimitReset = Literal["daily", "weekly", "monthly"]


def key_hash(key: str) -> str:
    """A key's public id: lowercase hex SHA-256 of the whole key string."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class AuthCode:
    """``POST /auth/keys/code``: the code (``id``) to exchange, its app and creation time."""

    id: str
    app_id: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ExchangedKey:
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


@dataclass(frozen=True, slots=True)
class RateLimit:
    requests: int = -1
    interval: str = ""
    note: str | None = None


@dataclass(frozen=True, slots=True)
class FreeModelRequests:
    limit: int = 0
    remaining: int = 0
    used: int = 0


@dataclass(frozen=True, slots=True)
class Budget:
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


@dataclass(frozen=True, slots=True)
class KeyInfo:
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
    allowed_data_regions: list[str] = field(default_factory=list)
    free_model_daily_requests: FreeModelRequests | None = None
    budgets: list[Budget] = field(default_factory=list)
    effective_budget: Budget | None = None


# --- reading them from JSON: one line per field, with the field's type and default ---

_optional_text = nullable(string)
_optional_number = nullable(number)
_optional_time = nullable(timestamp)


def _auth_code(fields: Fields) -> AuthCode:
    return AuthCode(
        id=fields.required("id", string),
        app_id=fields.required("app_id", integer),
        created_at=fields.required("created_at", timestamp),
    )


def _exchanged_key(fields: Fields) -> ExchangedKey:
    return ExchangedKey(
        key=fields.required("key", string),
        user_id=fields.optional("user_id", _optional_text, None),
    )


def _rate_limit(fields: Fields) -> RateLimit:
    return RateLimit(
        requests=fields.optional("requests", integer, -1),
        interval=fields.optional("interval", string, ""),
        note=fields.optional("note", _optional_text, None),
    )


def _free_model_requests(fields: Fields) -> FreeModelRequests:
    return FreeModelRequests(
        limit=fields.optional("limit", integer, 0),
        remaining=fields.optional("remaining", integer, 0),
        used=fields.optional("used", integer, 0),
    )


def _budget(fields: Fields) -> Budget:
    return Budget(
        scope=fields.required("scope", string),
        limit_usd=fields.optional("limit_usd", _optional_number, None),
        spend_usd=fields.optional("spend_usd", _optional_number, None),
        remaining_usd=fields.optional("remaining_usd", _optional_number, None),
        reset_interval=fields.optional("reset_interval", _optional_text, None),
        resets_at=fields.optional("resets_at", _optional_time, None),
        include_byok=fields.optional("include_byok", boolean, False),
        budget_id=fields.optional("budget_id", _optional_text, None),
        guardrail_id=fields.optional("guardrail_id", _optional_text, None),
    )


_optional_budget = nullable(record(_budget))


def _key_info(fields: Fields) -> KeyInfo:
    def amount(name: str) -> float:
        return fields.optional(name, number, 0.0)

    def flag(name: str) -> bool:
        return fields.optional(name, boolean, False)

    def text(name: str) -> str | None:
        return fields.optional(name, _optional_text, None)

    return KeyInfo(
        label=fields.required("label", string),
        limit=fields.optional("limit", _optional_number, None),
        limit_remaining=fields.optional("limit_remaining", _optional_number, None),
        limit_reset=text("limit_reset"),
        usage=amount("usage"),
        usage_daily=amount("usage_daily"),
        usage_weekly=amount("usage_weekly"),
        usage_monthly=amount("usage_monthly"),
        expires_at=fields.optional("expires_at", _optional_time, None),
        is_management_key=flag("is_management_key"),
        is_provisioning_key=flag("is_provisioning_key"),
        is_free_tier=flag("is_free_tier"),
        include_byok_in_limit=flag("include_byok_in_limit"),
        byok_usage=amount("byok_usage"),
        byok_usage_daily=amount("byok_usage_daily"),
        byok_usage_weekly=amount("byok_usage_weekly"),
        byok_usage_monthly=amount("byok_usage_monthly"),
        workspace_id=text("workspace_id"),
        creator_user_id=text("creator_user_id"),
        organization_id=text("organization_id"),
        app_id=fields.optional("app_id", nullable(integer), None),
        rate_limit=fields.optional("rate_limit", nullable(record(_rate_limit)), None),
        allowed_data_regions=fields.optional("allowed_data_regions", array(string), []),
        free_model_daily_requests=fields.optional(
            "free_model_daily_requests", nullable(record(_free_model_requests)), None
        ),
        budgets=fields.optional("budgets", array(record(_budget)), []),
        effective_budget=fields.optional("effective_budget", _optional_budget, None),
    )


def _in_data(read: Reader[T]) -> Reader[T]:
    """The ``{"data": ...}`` wrapper of most answers."""
    return record(lambda fields: fields.required("data", read))


auth_code_answer: Reader[AuthCode] = _in_data(record(_auth_code))
key_info_answer: Reader[KeyInfo] = _in_data(record(_key_info))
exchanged_key_answer: Reader[ExchangedKey] = record(_exchanged_key)
