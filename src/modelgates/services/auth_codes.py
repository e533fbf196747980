"""Authorization codes: the rules of ``POST /api/v1/auth/keys/code``.

The consent page creates its codes through the same service, so both paths
enforce one set of rules (callback policy, RFC 7636 syntax, PKCE policy,
limit/label/expiry checks, and the 409 for a challenge bound to a live code).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from modelgates import allowlist, metrics, pkce, tokens
from modelgates.allowlist import Allowlist
from modelgates.callbacks import Callback, CallbackRejected, check_callback
from modelgates.errors import BadRequest, Forbidden
from modelgates.models import ApiKey, App, AuthCode
from modelgates.services import Clock, system_clock
from modelgates.services.apps import HEADLESS_APP_NAME, AppService
from modelgates.services.keys import check_label, check_limit
from modelgates.settings import Settings
from modelgates.store import Store
from modelgates.windows import Reset

APP_KEYS_CANNOT_MINT = "Keys issued to an app cannot create authorization codes"

_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})")


def parse_rfc3339(text: str, *, field: str) -> datetime:
    """An RFC 3339 date-time that names its offset (``Z`` or ``±hh:mm``)."""
    if not _RFC3339.fullmatch(text):
        raise BadRequest(
            f"{field} must be an RFC 3339 date-time with a time zone, like 2026-12-31T23:59:59Z",
            field=field,
        )
    try:
        moment = datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    except ValueError as exc:
        raise BadRequest(f"{field} is not a valid date-time", field=field) from exc
    try:
        # 9999-12-31T23:59:59-01:00 is valid RFC 3339 but lies in the year 10000 in
        # UTC, past what any datetime (or comparison with one) can hold.
        return moment.astimezone(UTC)
    except OverflowError as exc:
        raise BadRequest(
            f"{field} must be between the years 0001 and 9999 in UTC", field=field
        ) from exc


@dataclass(frozen=True, slots=True)
class CodeRequest:
    """What an app asks for; fields as in the founding spec, not yet validated."""

    callback_url: str | None
    code_challenge: str | None = None
    code_challenge_method: pkce.Method | None = None
    expires_at: str | None = None
    key_label: str | None = None
    limit: float | None = None
    usage_limit_type: Reset | None = None
    allowed_models: Allowlist = None
    """Checked already (:func:`modelgates.allowlist.parse`)."""


@dataclass(frozen=True, slots=True)
class Consent:
    """A consent-page request, checked: the callback (``None`` for a headless code) and
    the effective PKCE pair."""

    callback: Callback | None
    challenge: str | None
    method: pkce.Method | None


@dataclass(frozen=True, slots=True)
class IssuedCode:
    """A new code: the secret (returned once as ``data.id``), its record and app."""

    secret: str
    record: AuthCode
    app: App


class AuthCodeService:
    """Validates code requests and issues codes."""

    def __init__(
        self, store: Store, settings: Settings, apps: AppService, *, clock: Clock = system_clock
    ) -> None:
        self._store = store
        self._settings = settings
        self._apps = apps
        self._clock = clock

    def check_pkce(
        self, challenge: str | None, method: pkce.Method | None
    ) -> tuple[str | None, pkce.Method | None]:
        """Apply RFC 7636 syntax and the PKCE policy; return the effective pair."""
        if challenge is None:
            if method is not None:
                raise BadRequest(
                    "code_challenge_method requires a code_challenge",
                    field="code_challenge_method",
                )
            if self._settings.pkce_policy == "s256":
                raise BadRequest(
                    "code_challenge is required: this server requires PKCE with S256",
                    field="code_challenge",
                )
            return None, None
        effective: pkce.Method = method or "plain"  # RFC 7636 §4.3
        if self._settings.pkce_policy == "s256" and effective != "S256":
            raise BadRequest(
                "code_challenge_method must be S256 on this server",
                field="code_challenge_method",
            )
        if not pkce.is_valid_challenge(challenge, effective):
            message = (
                "code_challenge for S256 must be 43 base64url characters"
                if effective == "S256"
                else "code_challenge must be 43-128 characters of [A-Za-z0-9-._~]"
            )
            raise BadRequest(message, field="code_challenge")
        return challenge, effective

    async def create(
        self, caller: ApiKey, request: CodeRequest, *, title: str | None = None
    ) -> IssuedCode:
        """Issue a code on behalf of ``caller``'s user (``POST /auth/keys/code``)."""
        if caller.issued_by_code:
            raise Forbidden(APP_KEYS_CANNOT_MINT)
        return await self.issue(caller.user_id, request, title=title, creator=caller)

    async def issue(
        self,
        user_id: str,
        request: CodeRequest,
        *,
        title: str | None = None,
        creator: ApiKey | None = None,
    ) -> IssuedCode:
        """Validate ``request`` and store a new code for ``user_id``.

        A code asked for by a key (``creator``) mints that key's sub-key: its spend
        also counts against the creator's limit, it is revoked with the creator, it
        expires no later than the creator (absent an ``expires_at`` it inherits
        the creator's; a later one is refused), and its allowlist is the intersection
        of the one asked for (absent: every model) and the creator's.
        """
        if request.callback_url is None:
            raise BadRequest("callback_url is required", field="callback_url")
        callback = self.check_callback_url(request.callback_url)
        terms = self._check_terms(request)
        if creator is not None:
            terms = _within(creator, terms)
        app = await self._apps.for_callback(callback, title)
        return await self._store_code(user_id, app, callback.url, terms, creator)

    async def issue_headless(self, user_id: str, request: CodeRequest) -> IssuedCode:
        """A code for an app with no callback (a CLI): the user pastes it into the app.

        There is no redirect to protect, so PKCE with S256 is what binds the code to
        the app that asked: a missing challenge or ``plain`` is refused. Every such
        code belongs to the one headless app; the key label names the tool.
        """
        if request.callback_url is not None:
            raise BadRequest("headless codes have no callback_url", field="callback_url")
        _require_headless_pkce(request.code_challenge, request.code_challenge_method)
        return await self._store_headless(user_id, self._check_terms(request))

    def check_consent(
        self, callback_url: str | None, challenge: str | None, method: pkce.Method | None
    ) -> Consent:
        """Check what the consent page (``/auth``) was asked for, once per request: the
        callback, and the PKCE pair (S256 is required without a callback)."""
        callback = None if callback_url is None else self.check_callback_url(callback_url)
        if callback is None:
            _require_headless_pkce(challenge, method)
        challenge, method = self.check_pkce(challenge, method)
        return Consent(callback, challenge, method)

    async def issue_consented(
        self, user_id: str, consent: Consent, request: CodeRequest
    ) -> IssuedCode:
        """Issue the code the user authorized on the consent page: ``consent`` is
        already checked; ``request`` carries the key terms the user chose."""
        terms = self._key_terms(request, consent.challenge, consent.method)
        if consent.callback is None:
            return await self._store_headless(user_id, terms)
        app = await self._apps.for_callback(consent.callback, None)
        return await self._store_code(user_id, app, consent.callback.url, terms)

    async def _store_headless(self, user_id: str, terms: _Terms) -> IssuedCode:
        if terms.label is None:
            terms = replace(terms, label=HEADLESS_APP_NAME)
        app = await self._apps.headless()
        return await self._store_code(user_id, app, None, terms)

    def check_callback_url(self, url: str) -> Callback:
        """The callback policy (``callbacks.check_callback``) as a 400 naming the field."""
        try:
            return check_callback(url, allow_loopback=self._settings.allow_loopback_callbacks)
        except CallbackRejected as exc:
            raise BadRequest(str(exc), field="callback_url") from exc

    def _check_terms(self, request: CodeRequest) -> _Terms:
        challenge, method = self.check_pkce(request.code_challenge, request.code_challenge_method)
        return self._key_terms(request, challenge, method)

    def _key_terms(
        self, request: CodeRequest, challenge: str | None, method: pkce.Method | None
    ) -> _Terms:
        """The terms of the key a code will mint, beside a checked PKCE pair."""
        now = self._clock()
        key_expires_at = None
        if request.expires_at is not None:
            key_expires_at = parse_rfc3339(request.expires_at, field="expires_at")
            if key_expires_at <= now:
                raise BadRequest("expires_at must be in the future", field="expires_at")
        limit = check_limit(request.limit)
        if request.usage_limit_type is not None and limit is None:
            raise BadRequest("usage_limit_type requires a limit", field="usage_limit_type")
        label = check_label(request.key_label, field="key_label")
        return _Terms(
            challenge=challenge,
            method=method,
            key_expires_at=key_expires_at,
            limit=limit,
            usage_limit_type=request.usage_limit_type,
            label=label,
            allowed_models=request.allowed_models,
        )

    async def _store_code(
        self,
        user_id: str,
        app: App,
        callback_url: str | None,
        terms: _Terms,
        creator: ApiKey | None = None,
    ) -> IssuedCode:
        now = self._clock()
        secret = tokens.generate_code()
        record = AuthCode(
            code_hash=tokens.sha256_hex(secret),
            user_id=user_id,
            app_id=app.id,
            callback_url=callback_url,
            created_at=now,
            expires_at=now + timedelta(seconds=self._settings.code_ttl_seconds),
            code_challenge=(
                None
                if terms.challenge is None or terms.method is None
                else pkce.stored_challenge(terms.challenge, terms.method)
            ),
            code_challenge_method=terms.method,
            key_label=terms.label,
            limit=terms.limit,
            usage_limit_type=terms.usage_limit_type,
            key_expires_at=terms.key_expires_at,
            creator_key_hash=None if creator is None else creator.hash,
            allowed_models=terms.allowed_models,
        )
        await self._store.create_code(record, now)  # ChallengeInUse is the client's 409
        metrics.AUTH_CODES_CREATED.inc()
        return IssuedCode(secret=secret, record=record, app=app)


def _require_headless_pkce(challenge: str | None, method: pkce.Method | None) -> None:
    """Without a callback, PKCE with S256 is what binds a code to the app that asked."""
    if challenge is None:
        raise BadRequest(
            "code_challenge is required without a callback_url", field="code_challenge"
        )
    if method != "S256":
        raise BadRequest(
            "code_challenge_method must be S256 without a callback_url",
            field="code_challenge_method",
        )


def _within(creator: ApiKey, terms: _Terms) -> _Terms:
    """``terms`` bounded by the key that asks for the code: a key never mints a key
    that outlives it or reaches models it may not use (its limit binds the sub-key
    through admission, not here)."""
    models = allowlist.intersection(terms.allowed_models, creator.allowed_models)
    terms = replace(terms, allowed_models=models)
    if creator.expires_at is None:
        return terms
    if terms.key_expires_at is None:
        return replace(terms, key_expires_at=creator.expires_at)
    if terms.key_expires_at > creator.expires_at:
        raise Forbidden(
            "expires_at must not be later than the expiry of the key asking for the code",
            metadata={"field": "expires_at"},
        )
    return terms


@dataclass(frozen=True, slots=True)
class _Terms:
    """A code request's validated terms, shared by the callback and headless paths."""

    challenge: str | None
    method: pkce.Method | None
    key_expires_at: datetime | None
    limit: int | None
    usage_limit_type: Reset | None
    label: str | None
    allowed_models: Allowlist = None
