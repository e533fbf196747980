"""The storage interface every backend implements, and the helpers they share.

Stores speak in records (:mod:`modelgates.models`) and never see a secret:
keys and codes arrive already hashed. Every method that changes more than one
row does so in one transaction, so a crash leaves either all or none of it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Protocol

from msgspec import UNSET, UnsetType

from modelgates.admission import Ask
from modelgates.allowlist import Allowlist
from modelgates.keycache import KeyCache
from modelgates.models import (
    Admission,
    AlertAttempt,
    AlertChannel,
    AlertDelivery,
    AlertToSend,
    ApiKey,
    App,
    AttemptOutcome,
    AuditEvent,
    AuthCode,
    DaySpend,
    EndpointHealth,
    Generation,
    PendingSignIn,
    ProviderIdentity,
    StoredResponse,
    UsageAudit,
    UsageDay,
    User,
    UserSummary,
    WebSession,
)
from modelgates.windows import Reset, WindowSpend, window_starts

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


@dataclass(frozen=True, slots=True)
class KeyChange:
    """An updated key, and the keys minted from it that the update revoked."""

    key: ApiKey
    revoked_minted: tuple[str, ...] = ()


class Store(Protocol):
    """Persistence for users, apps, keys and authorization codes."""

    key_cache: KeyCache
    """The keys :meth:`get_key_cached` serves without reading them (this process's)."""

    async def migrate(self) -> list[str]:
        """Apply pending migrations; return the names applied (idempotent, safe to race)."""
        ...

    async def close(self) -> None:
        """Release connections and threads."""
        ...

    async def ping(self) -> None:
        """Raise if the database cannot be reached."""
        ...

    # users ------------------------------------------------------------
    async def create_user(self, user: User, identity: ProviderIdentity | None = None) -> None:
        """Insert ``user``, linked to ``identity`` in the same transaction when given;
        raise :class:`~modelgates.errors.DuplicateEmail` if the e-mail is taken, or
        :class:`~modelgates.errors.DuplicateIdentity` if the identity is linked already
        (nothing is written then)."""
        ...

    async def get_user(self, user_id: str) -> User | None: ...

    async def get_user_by_email(self, email: str) -> User | None: ...

    async def update_user(
        self,
        user_id: str,
        now: datetime,
        *,
        limit: int | UnsetType | None = UNSET,
        limit_reset: Reset | UnsetType | None = UNSET,
        disabled: bool | UnsetType = UNSET,
        is_admin: bool | UnsetType = UNSET,
    ) -> User | None:
        """Set the given fields (and ``updated_at``) of a user; ``None`` if there is no
        such user. A budget or a disabling applies to the next admission of any of the
        user's keys that reserves, in every process, and reaches every process's key cache
        within 1 s (:meth:`get_key_cached`)."""
        ...

    async def list_users(self, *, search: str | None, offset: int, limit: int) -> list[UserSummary]:
        """Users (whose e-mail contains ``search``, case-insensitively, when given), oldest
        first, with their unrevoked keys' count and latest use."""
        ...

    async def list_every_key(self, *, offset: int, limit: int) -> list[ApiKey]:
        """Every user's unrevoked keys, newest first (for the operator)."""
        ...

    async def spend_by_day(self, since: datetime, until: datetime) -> list[DaySpend]:
        """What every key spent on each UTC day with records from ``since`` to before
        ``until``, oldest first (days without records are left out)."""
        ...

    # usage history ------------------------------------------------------
    async def usage_days(
        self, user_id: str, since: date, until: date, key_hash: str | None = None
    ) -> list[UsageDay]:
        """The daily rollup rows of the user (of one of their keys when ``key_hash`` is
        given) from the UTC day ``since`` to ``until``, both included, oldest first.
        Written with each charge; kept when the generation records are purged."""
        ...

    async def recent_generations(
        self, user_id: str, since: datetime, limit: int
    ) -> list[Generation]:
        """The user's generation records created at or after ``since``, newest first,
        at most ``limit``."""
        ...

    async def user_usage_audit(self, user_id: str, now: datetime) -> UsageAudit:
        """Sum of the user's generation records, and of the live reservations of their
        keys at ``now`` (for checking ``user usage == sum(records)``)."""
        ...

    # single sign-on -----------------------------------------------------
    async def get_user_by_identity(self, identity: ProviderIdentity) -> User | None:
        """The user linked to the provider identity, or ``None``."""
        ...

    async def link_identity(self, identity: ProviderIdentity, user_id: str, now: datetime) -> bool:
        """Link the identity to an existing user; ``False`` (and no change) if it is
        linked already, to this user or another."""
        ...

    async def set_user_admin(self, user_id: str, is_admin: bool) -> None: ...

    async def create_sign_in(self, sign_in: PendingSignIn) -> None: ...

    async def take_sign_in(self, state_hash: str, now: datetime) -> PendingSignIn | None:
        """Delete the sign-in of ``state_hash`` and return it if it was live at ``now``:
        of any number of concurrent calls, across processes, at most one gets it."""
        ...

    async def purge_sign_ins(self, now: datetime, limit: int) -> int:
        """Delete sign-ins that expired at or before ``now`` (never completed)."""
        ...

    # apps -------------------------------------------------------------
    async def get_or_create_app(self, origin: str, name: str, now: datetime) -> App:
        """The app of ``origin``, created with ``name`` on first use (race-safe)."""
        ...

    async def get_app(self, app_id: int) -> App | None: ...

    # keys -------------------------------------------------------------
    async def create_key(self, key: ApiKey) -> None: ...

    async def get_key(self, key_hash: str) -> ApiKey | None:
        """The key, revoked or not, with its user's state (``user_disabled``,
        ``user_budgeted``) read in the same query."""
        ...

    async def get_key_cached(self, key_hash: str) -> ApiKey | None:
        """:meth:`get_key`, from this process's :class:`~modelgates.keycache.KeyCache` when
        it has the key: for authentication. A change of the key or of its user's state,
        made through any process, shows within 1 s (on SQLite at once); the usage
        counters and ``last_used_at`` may be older."""
        ...

    async def rotate_key(
        self,
        old_hash: str,
        new_hash: str,
        now: datetime,
        grace_until: datetime,
    ) -> ApiKey | None:
        """In one transaction holding the user's lock: insert the successor ``new_hash``
        with every setting and usage counter of the unrevoked key ``old_hash`` (and
        ``updated_at`` = ``now``), move to it what :data:`~modelgates.store.rows.
        ROTATION_MOVES` names (records, live reservations, sub-keys, earlier rotations,
        codes), and mark the old key revoked at ``now`` with emptied counters,
        ``rotated_to`` and ``grace_until`` (its secret answers as the successor until
        then). ``None`` (nothing changed) if there is no such unrevoked key; else the
        successor as stored."""
        ...

    async def list_keys(
        self, user_id: str, *, include_disabled: bool, offset: int, limit: int
    ) -> list[ApiKey]:
        """The user's unrevoked keys, newest first."""
        ...

    async def minted_spend(self, parent_hashes: list[str], now: datetime) -> dict[str, WindowSpend]:
        """What the keys minted from each of ``parent_hashes`` spent, in the windows
        current at ``now`` (one query; parents without sub-keys are left out)."""
        ...

    async def revoke_key(self, key_hash: str, now: datetime) -> list[str] | None:
        """Mark the key revoked, and in the same transaction revoke the keys minted
        from it and expire its pending codes. ``None`` if it does not exist or already
        was revoked; else the hashes of the minted keys revoked with it."""
        ...

    async def update_key(
        self,
        key_hash: str,
        now: datetime,
        *,
        name: str | UnsetType = UNSET,
        disabled: bool | UnsetType = UNSET,
        limit: int | UnsetType | None = UNSET,
        limit_reset: Reset | UnsetType | None = UNSET,
        allowed_models: Allowlist | UnsetType = UNSET,
    ) -> KeyChange | None:
        """Set the given fields (and ``updated_at``) of an unrevoked key in one
        transaction; ``None`` if there is no such unrevoked key. Disabling a key
        also revokes the keys minted from it and expires its pending codes, in the
        same transaction, as :meth:`revoke_key` does.

        A sub-key's allowlist stays within its parent's, in the same transaction: the
        list set on a sub-key is intersected with its parent's, and a list set on a
        key narrows the lists of the keys minted from it
        (:func:`modelgates.allowlist.intersection`)."""
        ...

    # audit ------------------------------------------------------------
    async def record_event(self, event: AuditEvent) -> None:
        """Append ``event`` to the audit trail."""
        ...

    async def list_events(
        self, *, user_id: str | None = None, key_hash: str | None = None, limit: int = 100
    ) -> list[AuditEvent]:
        """The newest ``limit`` events, optionally of one user and/or one key, newest first."""
        ...

    # codes ------------------------------------------------------------
    async def create_code(self, code: AuthCode, now: datetime) -> None:
        """Insert ``code``; raise :class:`~modelgates.errors.ChallengeInUse` if the same
        challenge is bound to a live (unused, unexpired at ``now``) code of the user.
        The check and the insert are one atomic step."""
        ...

    async def get_code(self, code_hash: str) -> AuthCode | None: ...

    async def consume_code(
        self, code_hash: str, now: datetime, key: ApiKey, event: AuditEvent | None = None
    ) -> bool:
        """Atomically mark the code used and insert ``key`` minted from it (and
        ``event``, the audit record of the issue, in the same transaction).

        The key's allowlist is first intersected with its creator's as it is at the
        commit (read under the creator's lock), so a key narrowed meanwhile never
        mints a looser one.

        Returns ``False`` (and changes nothing) when the code is already used or
        expired at ``now``, or the key that created it is no longer active (revoked,
        disabled or expired; checked under its lock, so a concurrent revocation
        either refuses this exchange or revokes the key it mints): of any number of
        concurrent calls, across processes, exactly one returns ``True``.
        """
        ...

    async def revoke_key_minted_by(self, code_hash: str, now: datetime) -> str | None:
        """Revoke the key minted from a used code (replay defence); return its hash."""
        ...

    # apps, looked up without creating (the consent page's GET) ------------
    async def find_app(self, origin: str) -> App | None:
        """The app of ``origin`` if it exists; never creates one."""
        ...

    async def list_apps(self) -> list[App]:
        """Every app, oldest first (for the operator)."""
        ...

    async def rename_app(self, app_id: int, name: str) -> App | None:
        """Set the app's name; the renamed app, or ``None`` if there is no such app."""
        ...

    # page sessions ----------------------------------------------------
    async def create_session(self, session: WebSession) -> None: ...

    async def get_session(self, token_hash: str) -> WebSession | None:
        """The session with this token hash, expired or not (the caller checks)."""
        ...

    async def delete_session(self, token_hash: str) -> bool:
        """End the session; ``False`` if there was none."""
        ...

    async def delete_expired_sessions(self, now: datetime) -> int:
        """Drop sessions that expired before ``now``; return how many."""

    # metering ---------------------------------------------------------
    async def reserve(
        self, key_hash: str, reservation_id: str, ask: Ask, now: datetime, expires_at: datetime
    ) -> Admission:
        """In one transaction holding the budgets' row locks (the user's, the minting
        key's, then the key's own): decide as :func:`modelgates.admission.decide` against
        the key's limit, its parent's and its user's budget, each counting what the
        budget's keys spent in its window and their live reservations, and insert a
        reservation of the decided amount (live until ``expires_at``) if admitted. A
        rotated key's successor is admitted in its place; a disabled user's key is not
        (``Admission.user_disabled``). Expired reservations never count; a backend may
        delete them here or leave them to the purge."""
        ...

    async def settle(
        self, reservation_id: str, record: Generation, thresholds: Sequence[int] = ()
    ) -> int:
        """In one transaction: add ``record.cost`` to the lifetime and window counters
        (rolling windows over lazily, saturating) of the user and of the key (its
        successor if it was rotated meanwhile), set the key's ``last_used_at``, delete
        the reservation (if still there) and insert the generation record (under that
        key); then record a :class:`~modelgates.models.BudgetAlert` for each of
        ``thresholds`` (percent) that the key's or the user's spend in its limit's
        current window has reached, unless one is recorded for that window already.
        Returns how many alerts it recorded."""
        ...

    async def release(self, reservation_id: str) -> None:
        """Delete a reservation without charging (the upstream never served it)."""
        ...

    async def usage_audit(self, key_hash: str, now: datetime) -> UsageAudit:
        """Sum of the key's generation records and of its live reservations at ``now``."""
        ...

    async def get_generation(self, generation_id: str) -> Generation | None:
        """The generation record with this id, if it exists (and is not purged)."""
        ...

    # purge: each call deletes at most ``limit`` rows and returns how many ----
    async def purge_codes(self, now: datetime, used_before: datetime, limit: int) -> int:
        """Delete codes expired at ``now`` that are unused, or were consumed at or
        before ``used_before`` (a used code is kept until then, and at least until
        it expires, so a replay is still detected). Found through the expiry
        index, never by scanning the table."""
        ...

    async def purge_sessions(self, now: datetime, limit: int) -> int:
        """Delete page sessions that expired at or before ``now``."""
        ...

    async def purge_reservations(self, now: datetime, limit: int) -> int:
        """Delete metering reservations that expired at or before ``now``."""
        ...

    async def purge_generations(self, before: datetime, limit: int) -> int:
        """Delete generation records created before ``before`` (the keys' counters stay)."""
        ...

    async def purge_responses(self, before: datetime, limit: int) -> int:
        """Delete stored responses created before ``before``."""
        ...

    # stored responses (the Responses API's ``store: true``) ----------------
    async def save_response(self, stored: StoredResponse) -> None:
        """Keep ``stored`` (a second save of the same id changes nothing)."""
        ...

    async def get_response(self, response_id: str, user_id: str) -> StoredResponse | None:
        """The stored response ``response_id`` if it is ``user_id``'s, else ``None``
        (unknown, purged, deleted and another user's look alike)."""
        ...

    async def delete_response(self, response_id: str, user_id: str) -> bool:
        """Delete the stored response if it is ``user_id``'s; ``False`` if there was none."""
        ...

    # budget alerts (the outbox ``settle`` writes to) ------------------------
    async def get_alert_webhook(self, user_id: str) -> str | None:
        """The webhook URL the user's alerts also go to, or ``None``."""
        ...

    async def set_alert_webhook(self, user_id: str, url: str | None, now: datetime) -> None:
        """Set (or, with ``None``, remove) the user's webhook URL."""
        ...

    async def unsent_alerts(self, limit: int) -> list[AlertToSend]:
        """Up to ``limit`` alerts not yet fanned out, oldest first."""
        ...

    async def fan_out(
        self,
        alert_id: str,
        payload: str,
        destinations: list[tuple[str, AlertChannel, str]],
        now: datetime,
    ) -> None:
        """In one transaction: fix the alert's payload (unless fixed already), add a pending
        delivery ``(id, channel, destination)`` for each destination it lacks (due at
        ``now``), and mark the alert fanned out. Idempotent: processes racing on one alert
        add each destination once."""
        ...

    async def claim_deliveries(
        self, now: datetime, lease_until: datetime, token: str, limit: int
    ) -> list[tuple[AlertDelivery, str]]:
        """Lease up to ``limit`` pending deliveries due at ``now`` (none leased, or the lease
        ended) to ``token`` until ``lease_until``, each with its payload; no two processes
        get the same delivery while its lease runs."""
        ...

    async def finish_attempt(
        self, delivery_id: str, token: str, outcome: AttemptOutcome, now: datetime
    ) -> bool:
        """Record one try of a delivery leased to ``token`` (its attempt row, its count, its
        status, its next attempt) and end the lease; ``False`` (nothing written) when the
        lease is no longer ``token``'s."""
        ...

    async def list_deliveries(
        self, *, offset: int, limit: int, user_id: str | None = None
    ) -> list[AlertDelivery]:
        """Deliveries newest first (only the alerts of ``user_id`` when given)."""
        ...

    async def list_attempts(self, delivery_id: str) -> list[AlertAttempt]:
        """Every try of a delivery, first first."""

    # upstream endpoint health (cool-downs) -----------------------------------
    async def endpoint_health(self, endpoints: Sequence[str]) -> list[EndpointHealth]:
        """The health of each of ``endpoints``, in order (healthy when unknown)."""
        ...

    async def change_endpoint_health(
        self, endpoint: str, change: Callable[[EndpointHealth], EndpointHealth]
    ) -> EndpointHealth:
        """Apply ``change`` to the endpoint's health under its lock (one transaction, so
        concurrent processes never lose a failure) and keep the result (a clean one
        deletes the row); returns it."""
        ...


def utc(moment: datetime) -> datetime:
    """``moment`` as an aware UTC datetime (naive values are taken as UTC)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def iso(moment: datetime) -> str:
    """Fixed-width ISO 8601 UTC text (``2026-11-29T10:30:00.000000Z``): sorts and
    compares as text in SQLite. ``%``-formatted from the fields: half the time of
    ``isoformat(timespec=…)``, and this runs several times per metered request."""
    if moment.tzinfo is not UTC:  # UTC already is the common case: no conversion
        moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ" % (  # noqa: UP031 (the fastest here)
        moment.year, moment.month, moment.day,
        moment.hour, moment.minute, moment.second, moment.microsecond,
    )  # fmt: skip


from_iso: Callable[[str], datetime] = datetime.fromisoformat
"""Inverse of :func:`iso` (``fromisoformat`` reads the ``Z``: ~10x ``strptime``), bound
directly rather than wrapped: rows decode several timestamps each."""


@lru_cache(maxsize=8)
def _window_start_texts(day: date) -> tuple[str, str, str]:
    starts = window_starts(datetime(day.year, day.month, day.day, tzinfo=UTC))
    return iso(starts[0]), iso(starts[1]), iso(starts[2])


def window_start_texts(moment: datetime) -> tuple[str, str, str]:
    """:func:`~modelgates.windows.window_starts` of ``moment`` as :func:`iso` text,
    formatted once per UTC day (every reservation and settlement needs them)."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return _window_start_texts(moment.date())


def migration_files(dialect: str) -> list[Path]:
    """The dialect's ``NNNN_name.sql`` files in order."""
    return sorted((MIGRATIONS_DIR / dialect).glob("[0-9][0-9][0-9][0-9]_*.sql"))


def key_changes(
    *,
    name: str | UnsetType,
    disabled: bool | UnsetType,
    limit: int | UnsetType | None,
    limit_reset: Reset | UnsetType | None,
) -> list[tuple[str, object]]:
    """``(column, value)`` pairs for the fields of :meth:`Store.update_key` that were given."""
    given = {
        "name": name,
        "disabled": disabled,
        "limit_nanos": limit,
        "limit_reset": limit_reset,
    }
    return [(column, value) for column, value in given.items() if value is not UNSET]


def user_changes(
    *,
    limit: int | UnsetType | None,
    limit_reset: Reset | UnsetType | None,
    disabled: bool | UnsetType,
    is_admin: bool | UnsetType,
) -> list[tuple[str, object]]:
    """``(column, value)`` pairs for the fields of :meth:`Store.update_user` that were given."""
    given = {
        "limit_nanos": limit,
        "limit_reset": limit_reset,
        "disabled": disabled,
        "is_admin": is_admin,
    }
    return [(column, value) for column, value in given.items() if value is not UNSET]


def like_pattern(text: str) -> str:
    """``%text%`` for ``LIKE … ESCAPE '\\'``, with ``%``, ``_`` and ``\\`` in ``text`` literal."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
