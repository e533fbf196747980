"""Row ↔ record mapping shared by the backends.

SQLite rows and asyncpg records both index by column name; they differ only
in how timestamps and booleans come back, which the ``ts`` converter absorbs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, Protocol, cast

import msgspec

from modelgates.models import ApiKey, App, AuditEvent, AuthCode, PendingSignIn, User, WebSession
from modelgates.pkce import Method
from modelgates.windows import Reset, UsageCounters


class Row(Protocol):
    """What both ``sqlite3.Row`` and ``asyncpg.Record`` offer: lookup by column name,
    and the values in column order."""

    def __getitem__(self, key: str, /) -> Any: ...

    def __iter__(self) -> Iterator[Any]: ...


TimestampIn = Callable[[Any], datetime]

KEY_COLUMNS = (
    "hash, user_id, app_id, name, label, limit_nanos, limit_reset, expires_at, disabled,"
    " revoked_at, is_management, issued_by_code, created_at, updated_at, last_used_at,"
    " usage_nanos, usage_day_nanos, usage_day_start, usage_week_nanos, usage_week_start,"
    " usage_month_nanos, usage_month_start"
)
CODE_COLUMNS = (
    "code_hash, user_id, app_id, callback_url, code_challenge, code_challenge_method,"
    " key_label, limit_nanos, usage_limit_type, key_expires_at, created_at, expires_at,"
    " used_at, minted_key_hash"
)
KEY_COLUMN_COUNT = KEY_COLUMNS.count(",") + 1
CODE_COLUMN_COUNT = CODE_COLUMNS.count(",") + 1


def _opt(value: Any, ts: TimestampIn) -> datetime | None:
    return None if value is None else ts(value)


def user_from_row(row: Row, ts: TimestampIn) -> User:
    return User(
        id=row["id"],
        email=row["email"],
        password_hash=row["password_hash"],
        workspace_id=row["workspace_id"],
        created_at=ts(row["created_at"]),
        is_admin=bool(row["is_admin"]),
    )


def app_from_row(row: Row, ts: TimestampIn) -> App:
    return App(
        id=int(row["id"]), origin=row["origin"], name=row["name"], created_at=ts(row["created_at"])
    )


def key_from_row(row: Row, ts: TimestampIn) -> ApiKey:
    """A key from a row that starts with ``KEY_COLUMNS`` (any further columns are
    ignored). Unpacked by position, the mirror of :func:`key_insert_values`: a
    lookup by name scans the column list each time, and this runs on every
    authenticated request."""
    (
        key_hash, user_id, app_id, name, label, limit, limit_reset, expires_at, disabled,
        revoked_at, is_management, issued_by_code, created_at, updated_at, last_used_at,
        usage, day, day_start, week, week_start, month, month_start,
    ) = tuple(row)[:KEY_COLUMN_COUNT]  # fmt: skip
    return ApiKey(
        hash=key_hash,
        user_id=user_id,
        app_id=None if app_id is None else int(app_id),
        name=name,
        label=label,
        limit=limit,
        limit_reset=cast("Reset | None", limit_reset),
        expires_at=_opt(expires_at, ts),
        disabled=bool(disabled),
        revoked_at=_opt(revoked_at, ts),
        is_management=bool(is_management),
        issued_by_code=bool(issued_by_code),
        created_at=ts(created_at),
        updated_at=_opt(updated_at, ts),
        last_used_at=_opt(last_used_at, ts),
        usage=UsageCounters(
            total=usage,
            day=day,
            day_start=_opt(day_start, ts),
            week=week,
            week_start=_opt(week_start, ts),
            month=month,
            month_start=_opt(month_start, ts),
        ),
    )


def code_from_row(row: Row, ts: TimestampIn) -> AuthCode:
    """A code from a row that starts with ``CODE_COLUMNS``, unpacked by position
    (the mirror of :func:`code_insert_values`)."""
    (
        code_hash, user_id, app_id, callback_url, code_challenge, code_challenge_method,
        key_label, limit, usage_limit_type, key_expires_at, created_at, expires_at, used_at,
        minted_key_hash,
    ) = tuple(row)[:CODE_COLUMN_COUNT]  # fmt: skip
    return AuthCode(
        code_hash=code_hash,
        user_id=user_id,
        app_id=int(app_id),
        callback_url=callback_url,
        code_challenge=code_challenge,
        code_challenge_method=cast("Method | None", code_challenge_method),
        key_label=key_label,
        limit=limit,
        usage_limit_type=cast("Reset | None", usage_limit_type),
        key_expires_at=_opt(key_expires_at, ts),
        created_at=ts(created_at),
        expires_at=ts(expires_at),
        used_at=_opt(used_at, ts),
        minted_key_hash=minted_key_hash,
    )


def event_from_row(row: Row, ts: TimestampIn) -> AuditEvent:
    detail = row["detail"]
    return AuditEvent(
        id=int(row["id"]),
        at=ts(row["at"]),
        event=row["event"],
        actor=row["actor"],
        user_id=row["user_id"],
        key_hash=row["key_hash"],
        detail=None if detail is None else msgspec.json.decode(detail),
    )


def event_filter(
    user_id: str | None, key_hash: str | None, style: str
) -> tuple[str, tuple[Any, ...]]:
    """``WHERE`` clause and values selecting events of a user and/or a key."""
    clauses: list[str] = []
    values: list[Any] = []
    for column, value in (("user_id", user_id), ("key_hash", key_hash)):
        if value is not None:
            values.append(value)
            clauses.append(f"{column} = " + ("?" if style == "qmark" else f"${len(values)}"))
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), tuple(values)


def key_insert_values(key: ApiKey, ts: Callable[[datetime], Any]) -> tuple[Any, ...]:
    """Values for ``INSERT INTO api_keys (KEY_COLUMNS)`` in column order."""
    u = key.usage

    def opt(value: datetime | None) -> Any:
        return None if value is None else ts(value)

    return (
        key.hash, key.user_id, key.app_id, key.name, key.label, key.limit, key.limit_reset,
        opt(key.expires_at), key.disabled, opt(key.revoked_at), key.is_management,
        key.issued_by_code, ts(key.created_at), opt(key.updated_at), opt(key.last_used_at),
        u.total, u.day, opt(u.day_start), u.week, opt(u.week_start), u.month, opt(u.month_start),
    )  # fmt: skip


def code_insert_values(code: AuthCode, ts: Callable[[datetime], Any]) -> tuple[Any, ...]:
    """Values for ``INSERT INTO auth_codes (CODE_COLUMNS)`` in column order."""

    def opt(value: datetime | None) -> Any:
        return None if value is None else ts(value)

    return (
        code.code_hash, code.user_id, code.app_id, code.callback_url, code.code_challenge,
        code.code_challenge_method, code.key_label, code.limit, code.usage_limit_type,
        opt(code.key_expires_at), ts(code.created_at), ts(code.expires_at), opt(code.used_at),
        code.minted_key_hash,
    )  # fmt: skip


def window_increments(cost: str, day: str, week: str, month: str) -> str:
    """``SET`` fragment adding ``cost`` to the lifetime and window counters.

    Each window counter rolls over lazily: a charge in the stored window adds to
    it, a charge in a later window starts it afresh, and a charge that belongs
    to an already-closed window (a settlement that raced a rollover in another
    process) counts only towards the lifetime total, never resetting a newer
    window. The arguments are SQL placeholders (``:c`` or ``$1``).
    """
    parts = [f"usage_nanos = usage_nanos + {cost}"]
    for window, start in (("day", day), ("week", week), ("month", month)):
        counter, stored = f"usage_{window}_nanos", f"usage_{window}_start"
        parts.append(
            f"{counter} = CASE WHEN {stored} = {start} THEN {counter} + {cost}"
            f" WHEN {stored} > {start} THEN {counter} ELSE {cost} END"
        )
        parts.append(f"{stored} = CASE WHEN {stored} > {start} THEN {stored} ELSE {start} END")
    return ", ".join(parts)


def placeholders(count: int, style: str) -> str:
    """``?, ?, ?`` for SQLite or ``$1, $2, $3`` for PostgreSQL."""
    if style == "qmark":
        return ", ".join("?" * count)
    return ", ".join(f"${i}" for i in range(1, count + 1))


def session_from_row(row: Row, ts: TimestampIn) -> WebSession:
    return WebSession(
        token_hash=row["token_hash"],
        user_id=row["user_id"],
        csrf_secret=row["csrf_secret"],
        created_at=ts(row["created_at"]),
        expires_at=ts(row["expires_at"]),
    )


def sign_in_from_row(row: Row, ts: TimestampIn) -> PendingSignIn:
    return PendingSignIn(
        state_hash=row["state_hash"],
        browser_hash=row["browser_hash"],
        next_path=row["next_path"],
        created_at=ts(row["created_at"]),
        expires_at=ts(row["expires_at"]),
    )
