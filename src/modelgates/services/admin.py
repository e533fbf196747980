"""The operator's use cases: users' budgets, roles and disabling, every key, the audit
trail and the server's spend per day. The CLI, the admin API and the admin pages all
go through here, and every change is recorded in the audit trail.

Who may do this is the caller's business: the CLI runs on the database itself, the API
and the pages ask :meth:`UserAdmin.require_admin` first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from msgspec import UNSET, UnsetType

from modelgates.errors import BadRequest, Forbidden, NotFound
from modelgates.models import ApiKey, AuditEvent, DaySpend, User, UserSummary
from modelgates.money import to_usd
from modelgates.services import Clock, system_clock
from modelgates.services.audit import (
    USER_BUDGET_CHANGED,
    USER_DISABLED,
    USER_ENABLED,
    USER_ROLE_CHANGED,
    AuditLog,
)
from modelgates.services.budgets import user_remaining, user_spend
from modelgates.services.keys import check_limit
from modelgates.store import Store
from modelgates.timestamps import isoformat
from modelgates.windows import Reset, day_start

ADMINS_ONLY = "Only admins can perform this operation"
USER_NOT_FOUND = "User not found"
PAGE_SIZE = 100
MAX_SPEND_DAYS = 366


@dataclass(frozen=True, slots=True)
class Change:
    """What an operator asks to change on a user (absent fields stay as they are)."""

    limit_usd: float | UnsetType | None = UNSET
    """A budget in USD; ``None`` removes it (and its reset)."""
    limit_reset: Reset | UnsetType | None = UNSET
    disabled: bool | UnsetType = UNSET
    is_admin: bool | UnsetType = UNSET


class UserAdmin:
    """Reads and changes users on behalf of an operator."""

    def __init__(self, store: Store, audit_log: AuditLog, *, clock: Clock = system_clock) -> None:
        self._store = store
        self._audit = audit_log
        self._clock = clock

    async def require_admin(self, user_id: str) -> User:
        """The user if they are an admin (and not disabled); 403 otherwise."""
        user = await self._store.get_user(user_id)
        if user is None or not user.is_admin or user.disabled:
            raise Forbidden(ADMINS_ONLY)
        return user

    async def get(self, user_id: str) -> User:
        """The user, or 404."""
        user = await self._store.get_user(user_id) if len(user_id) <= 200 else None
        if user is None:
            raise NotFound(USER_NOT_FOUND)
        return user

    async def users(self, *, search: str | None = None, offset: int = 0) -> list[UserSummary]:
        """One page of users (oldest first) whose e-mail contains ``search``."""
        text = (search or "").strip()[:320] or None
        return await self._store.list_users(search=text, offset=offset, limit=PAGE_SIZE)

    async def summary(self, user: User) -> UserSummary:
        """``user`` with their key count and latest use."""
        keys = await self.keys_of(user)
        used = [key.last_used_at for key in keys if key.last_used_at is not None]
        return UserSummary(user, len(keys), max(used, default=None))

    async def keys_of(self, user: User) -> list[ApiKey]:
        """Every unrevoked key of the user, newest first."""
        found: list[ApiKey] = []
        while True:
            page = await self._store.list_keys(
                user.id, include_disabled=True, offset=len(found), limit=PAGE_SIZE
            )
            found.extend(page)
            if len(page) < PAGE_SIZE:
                return found

    async def every_key(self, *, offset: int = 0) -> list[ApiKey]:
        """One page of every user's unrevoked keys, newest first."""
        return await self._store.list_every_key(offset=offset, limit=PAGE_SIZE)

    async def events(
        self, *, user_id: str | None = None, key_hash: str | None = None, limit: int = 100
    ) -> list[AuditEvent]:
        """The audit trail, newest first (of one user and/or key when given)."""
        return await self._store.list_events(user_id=user_id, key_hash=key_hash, limit=limit)

    async def spend_per_day(self, days: int = 30) -> list[DaySpend]:
        """What every key spent on each of the last ``days`` UTC days (today included)
        that has records (they are kept for ``MODELGATES_GENERATION_RETENTION_DAYS``)."""
        if not 1 <= days <= MAX_SPEND_DAYS:
            raise BadRequest(f"days must be an integer from 1 to {MAX_SPEND_DAYS}", field="days")
        now = self._clock()
        since = day_start(now) - timedelta(days=days - 1)
        return await self._store.spend_by_day(since, day_start(now) + timedelta(days=1))

    async def update(
        self, user: User, change: Change, *, actor: str, by: User | None = None
    ) -> User:
        """Apply ``change`` to ``user`` (400 for a bad budget; a reset needs a budget, and
        removing the budget removes its reset), one audit event per kind of change. An
        admin (``by``) may not disable or demote themselves: someone must stay an admin."""
        if (
            by is not None
            and by.id == user.id
            and (change.disabled is True or change.is_admin is False)
        ):
            raise BadRequest(
                "An admin cannot disable or demote themselves",
                field="disabled" if change.disabled is True else "role",
            )
        nanos = UNSET if isinstance(change.limit_usd, UnsetType) else check_limit(change.limit_usd)
        reset = change.limit_reset
        resulting = user.limit if isinstance(nanos, UnsetType) else nanos
        if resulting is None:
            if not isinstance(reset, UnsetType) and reset is not None:
                raise BadRequest("limit_reset requires a limit", field="limit_reset")
            if user.limit_reset is not None:
                reset = None
        updated = await self._store.update_user(
            user.id,
            self._clock(),
            limit=nanos,
            limit_reset=reset,
            disabled=change.disabled,
            is_admin=change.is_admin,
        )
        if updated is None:
            raise NotFound(USER_NOT_FOUND)
        await self._record(user, updated, actor=actor)
        return updated

    async def _record(self, before: User, after: User, *, actor: str) -> None:
        if (before.limit, before.limit_reset) != (after.limit, after.limit_reset):
            detail = {
                "old_limit": None if before.limit is None else to_usd(before.limit),
                "new_limit": None if after.limit is None else to_usd(after.limit),
                "old_limit_reset": before.limit_reset,
                "new_limit_reset": after.limit_reset,
            }
            await self._audit.record(
                USER_BUDGET_CHANGED, actor=actor, user_id=after.id, detail=detail
            )
        if before.disabled != after.disabled:
            event = USER_DISABLED if after.disabled else USER_ENABLED
            await self._audit.record(event, actor=actor, user_id=after.id)
        if before.is_admin != after.is_admin:
            await self._audit.record(
                USER_ROLE_CHANGED, actor=actor, user_id=after.id,
                detail={"old_role": before.role, "new_role": after.role},
            )  # fmt: skip


def user_view(summary: UserSummary, now: datetime) -> dict[str, Any]:
    """A user as the admin API and ``modelgates users … --json`` show them (money in USD):
    the budget, what it has left and the spend in its window, lifetime and per window."""
    user = summary.user
    remaining = user_remaining(user, now)
    daily, weekly, monthly = user.usage.by_window(now)
    return {
        "id": user.id,
        "email": user.email,
        "role": user.role,
        "disabled": user.disabled,
        "limit": None if user.limit is None else to_usd(user.limit),
        "limit_reset": user.limit_reset,
        "limit_remaining": None if remaining is None else to_usd(remaining),
        "window_usage": to_usd(user_spend(user, now)),
        "usage": to_usd(user.usage.total),
        "usage_daily": to_usd(daily),
        "usage_weekly": to_usd(weekly),
        "usage_monthly": to_usd(monthly),
        "keys": summary.keys,
        "last_used_at": isoformat(summary.last_used_at),
        "created_at": isoformat(user.created_at),
        "updated_at": isoformat(user.updated_at),
        "workspace_id": user.workspace_id,
    }
