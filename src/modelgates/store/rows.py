"""Row ↔ record mapping shared by the backends.

SQLite rows and asyncpg records both index by column name; they differ only
in how timestamps and booleans come back, which the ``ts`` converter absorbs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import fields
from datetime import datetime
from operator import attrgetter
from typing import Any, Protocol, cast

import msgspec

from modelgates import allowlist
from modelgates.models import (
    AlertAttempt,
    AlertChannel,
    AlertDelivery,
    AlertPeriod,
    AlertScope,
    ApiKey,
    App,
    AuditEvent,
    AuthCode,
    BudgetAlert,
    DeliveryStatus,
    Generation,
    PendingSignIn,
    User,
    UserSummary,
    WebSession,
)
from modelgates.money import MAX_COUNTER_NANOS
from modelgates.pkce import Method
from modelgates.windows import Reset, UsageCounters, WindowSpend


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
    " usage_month_nanos, usage_month_start, parent_key_hash, allowed_models, rotated_to,"
    " grace_until"
)
CODE_COLUMNS = (
    "code_hash, user_id, app_id, callback_url, code_challenge, code_challenge_method,"
    " key_label, limit_nanos, usage_limit_type, key_expires_at, created_at, expires_at,"
    " used_at, minted_key_hash, creator_key_hash, allowed_models"
)
OWNED_KEY_COLUMNS = ", ".join(f"k.{column.strip()}" for column in KEY_COLUMNS.split(","))
"""``KEY_COLUMNS`` of ``api_keys k`` (in a join)."""
KEY_WITH_OWNER_COLUMNS = (
    OWNED_KEY_COLUMNS + ", u.disabled AS user_disabled, u.limit_nanos IS NOT NULL AS user_budgeted"
)
"""``KEY_COLUMNS`` of ``api_keys k`` joined with its user ``u``, and the user's state
authentication and admission need (:func:`key_with_owner_from_row`). A column of ``u``
read here must be in the trigger lists of migration 0015 (the key cache forgets a key
when one changes; ``tests/test_store_key_cache.py`` checks it)."""
KEY_IS_ACTIVE = "revoked_at IS NULL AND NOT disabled AND (expires_at IS NULL OR expires_at > $now)"
"""Condition on an ``api_keys`` row: the key can be used at ``$now`` (a placeholder
each backend substitutes)."""
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
        limit=row["limit_nanos"],
        limit_reset=cast("Reset | None", row["limit_reset"]),
        disabled=bool(row["disabled"]),
        usage=UsageCounters(
            total=row["usage_nanos"],
            day=row["usage_day_nanos"],
            day_start=_opt(row["usage_day_start"], ts),
            week=row["usage_week_nanos"],
            week_start=_opt(row["usage_week_start"], ts),
            month=row["usage_month_nanos"],
            month_start=_opt(row["usage_month_start"], ts),
        ),
        updated_at=_opt(row["updated_at"], ts),
    )


USER_COLUMNS = (
    "id, email, password_hash, workspace_id, created_at, is_admin, limit_nanos, limit_reset,"
    " disabled"
)
"""The columns a new user is inserted with (its counters start at zero)."""


def user_insert_values(user: User, ts: Callable[[datetime], Any]) -> tuple[Any, ...]:
    """Values for ``INSERT INTO users (USER_COLUMNS)`` in column order."""
    return (
        user.id, user.email, user.password_hash, user.workspace_id, ts(user.created_at),
        user.is_admin, user.limit, user.limit_reset, user.disabled,
    )  # fmt: skip


USER_SUMMARY_SQL = (
    "SELECT u.*,"
    " (SELECT count(*) FROM api_keys k WHERE k.user_id = u.id AND k.revoked_at IS NULL)"
    " AS key_count,"
    " (SELECT max(k.last_used_at) FROM api_keys k WHERE k.user_id = u.id) AS last_used"
    " FROM users u"
)
"""Users with their unrevoked keys' count and latest use (:func:`summary_from_row`)."""


def summary_from_row(row: Row, ts: TimestampIn) -> UserSummary:
    """A row of :data:`USER_SUMMARY_SQL`."""
    last = row["last_used"]
    return UserSummary(
        user=user_from_row(row, ts),
        keys=int(row["key_count"]),
        last_used_at=None if last is None else ts(last),
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
    return key_from_values(tuple(row), ts)


def key_with_owner_from_row(row: Row, ts: TimestampIn) -> ApiKey:
    """A key from a row of :data:`KEY_WITH_OWNER_COLUMNS`: the key, and its user's state."""
    values = tuple(row)
    owner_disabled, owner_budgeted = values[KEY_COLUMN_COUNT : KEY_COLUMN_COUNT + 2]
    return key_from_values(values, ts, bool(owner_disabled), bool(owner_budgeted))


def key_from_values(
    values: tuple[Any, ...], ts: TimestampIn, user_disabled: bool = False, budgeted: bool = False
) -> ApiKey:
    """A key from the values of a row that starts with ``KEY_COLUMNS`` (the conversions
    are spelt out inline: a helper call per timestamp cost more than the conversion)."""
    (
        key_hash, user_id, app_id, name, label, limit, limit_reset, expires_at, disabled,
        revoked_at, is_management, issued_by_code, created_at, updated_at, last_used_at,
        usage, day, day_start, week, week_start, month, month_start, parent_key_hash,
        allowed_models, rotated_to, grace_until,
    ) = values[:KEY_COLUMN_COUNT]  # fmt: skip
    return ApiKey(
        hash=key_hash,
        user_id=user_id,
        app_id=None if app_id is None else int(app_id),
        name=name,
        label=label,
        limit=limit,
        limit_reset=limit_reset,
        expires_at=None if expires_at is None else ts(expires_at),
        disabled=bool(disabled),
        revoked_at=None if revoked_at is None else ts(revoked_at),
        is_management=bool(is_management),
        issued_by_code=bool(issued_by_code),
        created_at=ts(created_at),
        updated_at=None if updated_at is None else ts(updated_at),
        last_used_at=None if last_used_at is None else ts(last_used_at),
        usage=UsageCounters(
            total=usage,
            day=day,
            day_start=None if day_start is None else ts(day_start),
            week=week,
            week_start=None if week_start is None else ts(week_start),
            month=month,
            month_start=None if month_start is None else ts(month_start),
        ),
        parent_key_hash=parent_key_hash,
        allowed_models=None if allowed_models is None else allowlist.decode(allowed_models),
        rotated_to=rotated_to,
        grace_until=None if grace_until is None else ts(grace_until),
        user_disabled=user_disabled,
        user_budgeted=budgeted,
    )


def code_from_row(row: Row, ts: TimestampIn) -> AuthCode:
    """A code from a row that starts with ``CODE_COLUMNS``, unpacked by position
    (the mirror of :func:`code_insert_values`)."""
    (
        code_hash, user_id, app_id, callback_url, code_challenge, code_challenge_method,
        key_label, limit, usage_limit_type, key_expires_at, created_at, expires_at, used_at,
        minted_key_hash, creator_key_hash, allowed_models,
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
        creator_key_hash=creator_key_hash,
        allowed_models=allowlist.decode(allowed_models),
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
        key.parent_key_hash, allowlist.encode(key.allowed_models), key.rotated_to,
        opt(key.grace_until),
    )  # fmt: skip


def code_insert_values(code: AuthCode, ts: Callable[[datetime], Any]) -> tuple[Any, ...]:
    """Values for ``INSERT INTO auth_codes (CODE_COLUMNS)`` in column order."""

    def opt(value: datetime | None) -> Any:
        return None if value is None else ts(value)

    return (
        code.code_hash, code.user_id, code.app_id, code.callback_url, code.code_challenge,
        code.code_challenge_method, code.key_label, code.limit, code.usage_limit_type,
        opt(code.key_expires_at), ts(code.created_at), ts(code.expires_at), opt(code.used_at),
        code.minted_key_hash, code.creator_key_hash, allowlist.encode(code.allowed_models),
    )  # fmt: skip


def window_increments(cost: str, day: str, week: str, month: str) -> str:
    """``SET`` fragment adding ``cost`` to the lifetime and window counters.

    Each window counter rolls over lazily: a charge in the stored window adds to
    it, a charge in a later window starts it afresh, and a charge that belongs
    to an already-closed window (a settlement that raced a rollover in another
    process) counts only towards the lifetime total, never resetting a newer
    window. Sums saturate at ``MAX_COUNTER_NANOS`` (they stay integers). The
    arguments are SQL placeholders (``:c`` or ``$1``).
    """
    top = MAX_COUNTER_NANOS
    parts = [f"usage_nanos = min(usage_nanos + {cost}, {top})"]
    for window, start in (("day", day), ("week", week), ("month", month)):
        counter, stored = f"usage_{window}_nanos", f"usage_{window}_start"
        parts.append(
            f"{counter} = CASE WHEN {stored} = {start} THEN min({counter} + {cost}, {top})"
            f" WHEN {stored} > {start} THEN {counter} ELSE {cost} END"
        )
        parts.append(f"{stored} = CASE WHEN {stored} > {start} THEN {stored} ELSE {start} END")
    return ", ".join(parts)


def minted_spend_query(count: int, style: str) -> str:
    """``SELECT`` of the window spend of the keys minted from ``count`` parents, grouped
    by parent; the window starts are the first three parameters (day, week, month)."""
    marks = ["?"] * (count + 3) if style == "qmark" else [f"${i}" for i in range(1, count + 4)]
    day, week, month, parents = marks[0], marks[1], marks[2], ", ".join(marks[3:])
    return (
        "SELECT parent_key_hash, sum(usage_nanos),"
        f" sum(CASE WHEN usage_day_start = {day} THEN usage_day_nanos ELSE 0 END),"
        f" sum(CASE WHEN usage_week_start = {week} THEN usage_week_nanos ELSE 0 END),"
        f" sum(CASE WHEN usage_month_start = {month} THEN usage_month_nanos ELSE 0 END)"
        f" FROM api_keys WHERE parent_key_hash IN ({parents}) GROUP BY parent_key_hash"
    )


def minted_spend_from(found: list[Any]) -> dict[str, WindowSpend]:
    return {
        row[0]: WindowSpend(int(row[1]), int(row[2]), int(row[3]), int(row[4])) for row in found
    }


def spend_in_window_of(reset: str, prefix: str = "") -> str:
    """SQL expression: a key or user row's spend (its columns named with ``prefix``, such
    as ``k.``) in the window of kind given by the SQL expression ``reset`` (a
    ``limit_reset`` column: lifetime when NULL), reading the window starts from ``:day``,
    ``:week`` and ``:month`` (as :meth:`modelgates.windows.UsageCounters.in_window`)."""
    windows = " ".join(
        f"WHEN '{reset_name}' THEN CASE WHEN {prefix}usage_{window}_start = :{window}"
        f" THEN {prefix}usage_{window}_nanos ELSE 0 END"
        for reset_name, window in (("daily", "day"), ("weekly", "week"), ("monthly", "month"))
    )
    return f"CASE {reset} {windows} ELSE {prefix}usage_nanos END"


def spend_of_own_limit(prefix: str = "") -> str:
    """SQL expression: a key or user row's spend in the window of its own limit
    (:func:`spend_in_window_of` its ``limit_reset``)."""
    return spend_in_window_of(f"{prefix}limit_reset", prefix)


def spend_in_window(reset: Reset | None) -> str:
    """SQL expression: a key row's spend in the window of kind ``reset`` (``None``:
    lifetime), reading the window starts from ``:day``, ``:week`` and ``:month``
    (as :meth:`modelgates.windows.UsageCounters.in_window`)."""
    if reset is None:
        return "usage_nanos"
    window = {"daily": "day", "weekly": "week", "monthly": "month"}[reset]
    return f"CASE WHEN usage_{window}_start = :{window} THEN usage_{window}_nanos ELSE 0 END"


GENERATION_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Generation))
"""``Generation`` attributes in order; their columns are the same names, money with
a ``_nanos`` suffix (:data:`GENERATION_COLUMNS`)."""
_MONEY = {"cost", "reserved", "prompt_cost", "completion_cost", "request_cost"}
GENERATION_COLUMNS: tuple[str, ...] = tuple(
    f"{name}_nanos" if name in _MONEY else name for name in GENERATION_FIELDS
)


GENERATION_FLAGS = ("estimated", "usage_exceeded_reservation", "streamed", "cancelled")
"""The record's booleans."""

_GENERATION_VALUES = attrgetter(*GENERATION_FIELDS)
_CREATED_AT = GENERATION_FIELDS.index("created_at")


def generation_values(record: Generation, ts: Callable[[datetime], Any]) -> tuple[Any, ...]:
    """Values for ``INSERT INTO generations (GENERATION_COLUMNS)`` in column order
    (``created_at`` is the record's one timestamp)."""
    values = list(_GENERATION_VALUES(record))
    values[_CREATED_AT] = ts(values[_CREATED_AT])
    return tuple(values)


def generation_from_row(row: Row, ts: TimestampIn) -> Generation:
    """A record from a row of ``SELECT GENERATION_COLUMNS`` (booleans as stored)."""
    values = dict(zip(GENERATION_FIELDS, tuple(row)[: len(GENERATION_FIELDS)], strict=True))
    for name in GENERATION_FLAGS:
        values[name] = bool(values[name])
    values["created_at"] = ts(values["created_at"])
    return Generation(**values)


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


ZEROED_COUNTERS = (
    "usage_nanos = 0, usage_day_nanos = 0, usage_day_start = NULL, usage_week_nanos = 0,"
    " usage_week_start = NULL, usage_month_nanos = 0, usage_month_start = NULL"
)
"""``SET`` fragment: a key's usage counters emptied (a rotated key's moved to its successor)."""


def successor_insert(new_hash: str, updated_at: str) -> str:
    """``INSERT … SELECT`` of a rotated key's successor from its row (``WHERE hash = …``
    follows): every column copied (settings, counters, parent, creation time), but the hash
    and ``updated_at`` (the two SQL expressions given) and no rotation of its own."""
    given = {
        "hash": new_hash,
        "updated_at": updated_at,
        "rotated_to": "NULL",
        "grace_until": "NULL",
    }
    columns = [column.strip() for column in KEY_COLUMNS.split(",")]
    values = ", ".join(given.get(column, column) for column in columns)
    return f"INSERT INTO api_keys ({KEY_COLUMNS}) SELECT {values} FROM api_keys"


ROTATION_MOVES = (
    "UPDATE generations SET key_hash = {new} WHERE key_hash = {old}",
    "UPDATE usage_daily SET key_hash = {new} WHERE key_hash = {old}",
    "UPDATE reservations SET key_hash = {new} WHERE key_hash = {old}",
    "UPDATE reservations SET parent_key_hash = {new} WHERE parent_key_hash = {old}",
    "UPDATE api_keys SET parent_key_hash = {new} WHERE parent_key_hash = {old}",
    "UPDATE api_keys SET rotated_to = {new} WHERE rotated_to = {old}",
    "UPDATE auth_codes SET creator_key_hash = {new} WHERE creator_key_hash = {old}",
    "UPDATE auth_codes SET minted_key_hash = {new} WHERE minted_key_hash = {old}",
)
"""What moves from a rotated key to its successor, with the placeholders of the old and
the new hash filled in: its records and their daily rollup, live reservations (its own
and its sub-keys'), its sub-keys, the keys rotated into it (so every old secret points at
the newest), and its codes (pending ones it created, and the one it was minted from, for
the replay defence)."""


ALERT_COLUMNS = (
    "a.id, a.scope, a.subject, a.user_id, a.key_hash, a.threshold, a.period, a.window_start,"
    " a.limit_nanos, a.usage_nanos, a.generation_id, a.created_at, a.payload"
)
DELIVERY_COLUMNS = (
    f"{ALERT_COLUMNS}, d.id AS delivery_id, d.channel, d.destination, d.status, d.attempts,"
    " d.next_attempt_at, d.last_http_status, d.last_error, d.created_at AS delivery_created_at,"
    " d.updated_at AS delivery_updated_at, d.delivered_at"
)
"""A delivery joined with its alert (``alert_deliveries d JOIN budget_alerts a``)."""


def alert_from_row(row: Row, ts: TimestampIn) -> BudgetAlert:
    period = cast("AlertPeriod", row["period"])
    return BudgetAlert(
        id=row["id"],
        scope=cast("AlertScope", row["scope"]),
        subject=row["subject"],
        user_id=row["user_id"],
        key_hash=row["key_hash"],
        threshold=int(row["threshold"]),
        period=period,
        window_start=None if period == "total" else ts(row["window_start"]),
        limit=int(row["limit_nanos"]),
        usage=int(row["usage_nanos"]),
        generation_id=row["generation_id"],
        created_at=ts(row["created_at"]),
        payload=row["payload"],
    )


def delivery_from_row(row: Row, ts: TimestampIn) -> AlertDelivery:
    return AlertDelivery(
        id=row["delivery_id"],
        alert=alert_from_row(row, ts),
        channel=cast("AlertChannel", row["channel"]),
        destination=row["destination"],
        status=cast("DeliveryStatus", row["status"]),
        attempts=int(row["attempts"]),
        next_attempt_at=_opt(row["next_attempt_at"], ts),
        last_http_status=row["last_http_status"],
        last_error=row["last_error"],
        created_at=ts(row["delivery_created_at"]),
        updated_at=ts(row["delivery_updated_at"]),
        delivered_at=_opt(row["delivered_at"], ts),
    )


def attempt_from_row(row: Row, ts: TimestampIn) -> AlertAttempt:
    return AlertAttempt(
        delivery_id=row["delivery_id"],
        number=int(row["number"]),
        attempted_at=ts(row["attempted_at"]),
        http_status=row["http_status"],
        error=row["error"],
    )
