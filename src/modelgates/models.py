"""Records the services and stores exchange. Plain data, no behaviour beyond reads.

Life cycles (invariants the stores uphold):

=============  ============================================================
code           issued → consumed (exactly once, ``used_at`` set, the minted
               key's hash recorded in the same transaction) | expired
               (``expires_at`` passed while unused). A consumed code is kept
               for replay detection; it never becomes usable again.
key            active → exhausted (window spend ≥ limit) → active again when
               the window rolls; or → disabled (reversible) / revoked
               (``revoked_at`` set, final) / expired (``expires_at`` passed,
               final). Rotation revokes a key and moves its history to a new
               one (``rotated_to``); its secret answers as the new key until
               ``grace_until``.
user           active ⇄ disabled (every key of a disabled user is refused,
               401, on every route); its spend counters are always the sum of
               its keys', and its budget bounds them together.
alert          recorded with the charge that reached its threshold (once per
               threshold and window) → fanned out into one delivery per
               destination (payload fixed then).
delivery       pending → delivered | failed (after the last attempt); a
               pending one is claimed under a lease, so one process at a time
               tries it, and a try that crashed is retried once the lease ends.
=============  ============================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

from modelgates.allowlist import Allowlist
from modelgates.pkce import Method
from modelgates.windows import Reset, UsageCounters


@dataclass(frozen=True, slots=True)
class User:
    """An account: signs in to the consent page, owns keys.

    ``password_hash`` is empty for an account made by single sign-on: it has no
    password, and the password form never accepts it.
    """

    id: str
    email: str
    password_hash: str
    workspace_id: str
    created_at: datetime
    is_admin: bool = False
    """An admin (role ``admin``) may see and change every user and key; others are
    ``member``s. Set by the operator (``modelgates users update --admin``, the admin
    API), or from the provider's ``groups`` claim at each single sign-on when
    ``MODELGATES_OIDC_ADMIN_GROUPS`` is configured."""
    limit: int | None = None
    """The user's budget in nano-dollars across all their keys, or ``None`` for none."""
    limit_reset: Reset | None = None
    disabled: bool = False
    """A disabled user's keys are refused on every route, and they cannot sign in."""
    usage: UsageCounters = field(default_factory=UsageCounters)
    """The user's spend: the sum of their keys' (kept by every settlement)."""
    updated_at: datetime | None = None

    @property
    def has_password(self) -> bool:
        return bool(self.password_hash)

    @property
    def role(self) -> Literal["admin", "member"]:
        return "admin" if self.is_admin else "member"


@dataclass(frozen=True, slots=True)
class ProviderIdentity:
    """A person as an OpenID Connect provider names them: its issuer and their ``sub``."""

    issuer: str
    subject: str


@dataclass(frozen=True, slots=True)
class PendingSignIn:
    """A single sign-on started by one browser, waiting for the provider's answer.

    Only hashes are kept: of the ``state`` sent to the provider and of the browser's
    ``mg_oidc`` cookie, which the callback must carry. Taken (deleted) exactly once.
    """

    state_hash: str
    browser_hash: str
    next_path: str
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class App:
    """A third-party app, one per callback origin."""

    id: int
    origin: str
    name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key as stored: its hash, never the key itself."""

    hash: str
    user_id: str
    name: str
    label: str
    created_at: datetime
    updated_at: datetime | None = None
    app_id: int | None = None
    limit: int | None = None
    """Credit limit in nano-dollars, or ``None`` for unlimited."""
    limit_reset: Reset | None = None
    expires_at: datetime | None = None
    disabled: bool = False
    revoked_at: datetime | None = None
    is_management: bool = False
    issued_by_code: bool = False
    """True for keys minted by the PKCE exchange: they may not mint further keys."""
    last_used_at: datetime | None = None
    usage: UsageCounters = field(default_factory=UsageCounters)
    parent_key_hash: str | None = None
    """The key that minted this one through a code (its *sub-key*): this key's spend
    also counts against the parent's limit, and revoking the parent revokes it."""
    allowed_models: Allowlist = None
    """The models this key may use (:mod:`modelgates.allowlist`); ``None``: all. A
    sub-key's list stays within its parent's."""
    rotated_to: str | None = None
    """Set on a key that was rotated (it is revoked then): the hash of its successor,
    which took over its settings, usage and records."""
    grace_until: datetime | None = None
    """Until when the secret of a rotated key still works, as its successor's."""
    user_disabled: bool = field(default=False, compare=False)
    """Whether the key's user was disabled when the key was read (set by
    :meth:`~modelgates.store.base.Store.get_key`, which authentication uses)."""
    user_budgeted: bool = field(default=False, compare=False)
    """Whether the key's user had a budget then: admission must reserve against it."""

    def is_expired(self, now: datetime) -> bool:
        """A key is expired from its ``expires_at`` instant on."""
        return self.expires_at is not None and now >= self.expires_at


@dataclass(frozen=True, slots=True)
class AuthCode:
    """An authorization code as stored: its hash and what the minted key inherits."""

    code_hash: str
    user_id: str
    app_id: int
    callback_url: str | None
    created_at: datetime
    expires_at: datetime
    code_challenge: str | None = None
    """As stored (:func:`modelgates.pkce.stored_challenge`): an S256 challenge as
    sent, a ``plain`` one (the verifier itself) only as its S256 form."""
    code_challenge_method: Method | None = None
    key_label: str | None = None
    limit: int | None = None
    usage_limit_type: Reset | None = None
    key_expires_at: datetime | None = None
    used_at: datetime | None = None
    minted_key_hash: str | None = None
    creator_key_hash: str | None = None
    """The key that asked for the code (``POST /auth/keys/code``); ``None`` for codes
    made on the consent page. The minted key becomes its sub-key."""
    allowed_models: Allowlist = None
    """The minted key's allowlist (within the creator's, when a key asked)."""


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One entry of the audit trail: ``actor`` did ``event`` to ``key_hash`` at ``at``.

    ``actor`` reads ``user:<id>``, ``key:<hash>``, ``cli`` or ``system``; ``detail``
    holds event-specific facts (old and new limit, the app, …), never a secret.
    """

    at: datetime
    event: str
    actor: str
    user_id: str | None = None
    key_hash: str | None = None
    detail: dict[str, Any] | None = None
    id: int | None = None


@dataclass(frozen=True, slots=True)
class WebSession:
    """A signed-in browser session of the pages: the token's hash, never the token.

    ``csrf_secret`` is the per-session value every form of the pages must carry.
    """

    token_hash: str
    user_id: str
    csrf_secret: str
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Generation:
    """The record of one metered request, written with its charge in one transaction.

    Invariant: a key's ``usage.total`` equals the sum of its generations' ``cost``
    (over the records not yet purged). Token counts are normalised (OpenAI's
    meaning); the ``native_*`` ones are what the upstream reported in its own
    protocol's terms, ``None`` when it reported nothing usable.
    """

    id: str
    """``gen-…``: the response ``id`` the client saw."""
    key_hash: str
    user_id: str
    app_id: int | None
    model: str
    """The ModelGates model id that served."""
    provider: str
    upstream_model: str
    api_type: str
    """``chat``, ``completions``, ``embeddings``, ``messages`` or ``responses``."""
    created_at: datetime
    cost: int
    """Nano-dollars charged: never more than ``reserved`` when a reservation was held."""
    reserved: int
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    prompt_cost: int = 0
    completion_cost: int = 0
    request_cost: int = 0
    estimated: bool = False
    usage_exceeded_reservation: bool = False
    streamed: bool = False
    cancelled: bool = False
    upstream_id: str | None = None
    finish_reason: str | None = None
    native_finish_reason: str | None = None
    native_tokens_prompt: int | None = None
    native_tokens_completion: int | None = None
    native_tokens_reasoning: int | None = None
    native_tokens_cached: int | None = None
    latency_ms: int | None = None
    """From the request's arrival to the upstream's first byte (first chunk of a stream)."""
    generation_time_ms: int | None = None
    """From the request's arrival to the end of the answer."""
    origin: str | None = None
    referer: str | None = None
    user_agent: str | None = None
    external_user: str | None = None
    """The body's ``user`` field."""
    session_id: str | None = None
    attempts: str | None = None
    """A routed request's endpoints tried, the serving one last, as JSON (a list of
    ``{provider, model, upstream_model, outcome, status, latency_ms}``); ``None`` for a
    request with one endpoint to try."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """Which budget refused a request, and how many output tokens it could afford."""

    scope: Literal["key_limit", "parent_key", "user_budget"]
    kind: Literal["daily", "weekly", "monthly", "total"]
    affordable_tokens: int
    """Output tokens the tightest refusing budget could still pay for (0: none)."""


@dataclass(frozen=True, slots=True)
class Admission:
    """The outcome of reserving a request's worst case against every budget it draws on."""

    key: ApiKey | None
    """The key as locked for the decision; ``None`` if it no longer exists."""
    amount: int = 0
    """Nano-dollars reserved (0 when refused)."""
    granted_tokens: int | None = None
    """Output tokens the reservation covers when the request named none."""
    refused: Refusal | None = None
    user_disabled: bool = False
    """The key's user was disabled (found under the user's lock): nothing reserved."""

    @property
    def admitted(self) -> bool:
        return self.key is not None and self.refused is None and not self.user_disabled


@dataclass(frozen=True, slots=True)
class UserSummary:
    """A user as the operator lists them: their unrevoked keys and latest use."""

    user: User
    keys: int
    """Unrevoked keys (disabled ones included)."""
    last_used_at: datetime | None


@dataclass(frozen=True, slots=True)
class DaySpend:
    """What every key spent on one UTC day, from the generation records."""

    day: date
    cost: int
    """Nano-dollars."""
    requests: int


@dataclass(frozen=True, slots=True)
class UsageDay:
    """One row of the daily usage rollup: what one key spent on one UTC day on one
    model through one provider (the sums of those generation records, kept after the
    records themselves are purged)."""

    day: date
    key_hash: str
    model: str
    provider: str
    upstream_model: str
    requests: int
    cost: int
    """Nano-dollars."""
    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int
    cached_tokens: int


@dataclass(frozen=True, slots=True)
class UsageAudit:
    """A key's ledger, for checking ``usage == sum(generations)``."""

    charged: int
    charges: int
    reserved: int
    reservations: int


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """A Response of the Responses API kept for its user (``store: true``), so that a
    later request can continue it (``previous_response_id``) and it can be read back."""

    id: str
    """The generation id the answer carried (``gen-…``)."""
    user_id: str
    key_hash: str
    """The key that made the request."""
    created_at: datetime
    input: list[Any]
    """The whole conversation it answered: the history it continued, then its own input
    items (a string input as one user message)."""
    response: dict[str, Any]
    """The Response object, as the client received it."""


AlertScope = Literal["key_limit", "user_budget"]
AlertPeriod = Literal["daily", "weekly", "monthly", "total"]
AlertChannel = Literal["webhook", "email"]
DeliveryStatus = Literal["pending", "delivered", "failed"]


@dataclass(frozen=True, slots=True)
class BudgetAlert:
    """A threshold of a key's limit or a user's budget that a charge reached, recorded in
    the charge's transaction (the outbox row)."""

    id: str
    """``msg_…``: the ``webhook-id`` of every delivery of it (receivers deduplicate by it)."""
    scope: AlertScope
    subject: str
    """The key's hash (``key_limit``) or the user's id (``user_budget``)."""
    user_id: str
    key_hash: str
    """The key whose charge reached the threshold."""
    threshold: int
    """Percent of the limit."""
    period: AlertPeriod
    window_start: datetime | None
    """``None`` for a lifetime limit (period ``total``)."""
    limit: int
    usage: int
    """Spend in the window after the charge, nano-dollars."""
    generation_id: str
    created_at: datetime
    payload: str | None = None
    """The JSON body every delivery sends, fixed when the alert is fanned out."""


@dataclass(frozen=True, slots=True)
class AlertToSend:
    """An alert not yet fanned out, with what its payload and destinations need."""

    alert: BudgetAlert
    user_email: str
    key_label: str | None
    user_webhook: str | None


@dataclass(frozen=True, slots=True)
class AlertDelivery:
    """One alert to one destination, and how its attempts went."""

    id: str
    alert: BudgetAlert
    channel: AlertChannel
    destination: str
    """A webhook URL or an e-mail address."""
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_http_status: int | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    delivered_at: datetime | None


@dataclass(frozen=True, slots=True)
class AlertAttempt:
    """One try of a delivery."""

    delivery_id: str
    number: int
    attempted_at: datetime
    http_status: int | None
    error: str | None


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    """What one try of a claimed delivery came to, as the store records it."""

    http_status: int | None
    error: str | None
    delivered: bool
    next_attempt_at: datetime | None
    """When to try again; ``None`` with ``delivered`` false: failed for good."""

    @property
    def status(self) -> DeliveryStatus:
        """The delivery's status once this try is recorded."""
        if self.delivered:
            return "delivered"
        return "pending" if self.next_attempt_at is not None else "failed"


@dataclass(frozen=True, slots=True)
class EndpointHealth:
    """One upstream endpoint's cool-down state (:mod:`modelgates.gateway.health`)."""

    failures: int = 0
    """Consecutive failures since the last success or trip."""
    trips: int = 0
    """Cool-downs in a row (the next lasts ``cooldown × 2**trips``)."""
    open_until: float = 0.0
    """Unix seconds the current cool-down ends (0: none)."""
    probe_until: float = 0.0
    """A half-open probe is under way until then."""

    def status(self, now: float) -> Literal["healthy", "cooling", "half-open", "probing"]:
        if self.open_until and now < self.open_until:
            return "cooling"
        if self.trips:
            return "probing" if now < self.probe_until else "half-open"
        return "healthy"

    @property
    def clean(self) -> bool:
        return self == EndpointHealth()
