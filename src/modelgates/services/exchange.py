"""The code exchange, ``POST /api/v1/auth/keys``: a code plus its verifier buys a key.

Checks run in the contract's order and the first failure answers:

1. 400 ``Invalid code_challenge_method``: a method was sent and differs from
   the one bound to the code;
2. 403 ``Invalid code or code_verifier``: unknown or used code, wrong or
   missing verifier, or a verifier sent for a code bound to no challenge
   (the PKCE downgrade defence, RFC 9700 §4.8.2);
3. 403 ``Authorization code expired``.

A used code is indistinguishable from an unknown one, except that a replay
carrying a *valid* verifier revokes the key minted from it (RFC 6749 §4.1.2,
OAuth 2.1 §4.1.3); an invalid replay changes nothing, so guessing cannot
revoke anybody's key.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from modelgates import metrics, pkce, tokens
from modelgates.errors import (
    BadRequest,
    CodeExpired,
    Forbidden,
    InvalidChallengeMethod,
    InvalidCode,
    ReplayedCode,
)
from modelgates.models import AuthCode
from modelgates.services import Clock, audit, system_clock
from modelgates.services.apps import AppService
from modelgates.services.audit import AuditLog
from modelgates.services.keys import KeyService
from modelgates.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Exchanged:
    """The minted key (shown once) and its owner."""

    key: str
    user_id: str
    key_hash: str


def _outcome(error: Exception) -> str:
    """The ``modelgates_code_exchanges_total`` outcome of a refused exchange, by type."""
    if isinstance(error, ReplayedCode):
        return "replay"
    if isinstance(error, InvalidChallengeMethod):
        return "bad_method"
    if isinstance(error, CodeExpired):
        return "expired"
    return "invalid"


def verifier_proves(code: AuthCode, verifier: str | None) -> bool:
    """Whether ``verifier`` is what the code's challenge demands.

    A code bound to no challenge is proven only by the absence of a verifier:
    accepting one would let an attacker downgrade a PKCE flow.
    """
    if code.code_challenge is None or code.code_challenge_method is None:
        return verifier is None
    if verifier is None:
        return False
    return pkce.verifier_proves_stored(verifier, code.code_challenge, code.code_challenge_method)


class ExchangeService:
    """Turns a code and its verifier into a new API key, exactly once."""

    def __init__(
        self,
        store: Store,
        keys: KeyService,
        apps: AppService,
        audit_log: AuditLog,
        *,
        clock: Clock = system_clock,
    ) -> None:
        self._store = store
        self._keys = keys
        self._apps = apps
        self._audit = audit_log
        self._clock = clock

    async def exchange(
        self, code: str, verifier: str | None, method: pkce.Method | None
    ) -> Exchanged:
        """Run the checks in order; count the outcome (``modelgates_code_exchanges_total``)."""
        try:
            exchanged = await self._exchange(code, verifier, method)
        except (BadRequest, Forbidden) as exc:
            metrics.CODE_EXCHANGES.labels(outcome=_outcome(exc)).inc()
            raise
        metrics.CODE_EXCHANGES.labels(outcome="success").inc()
        return exchanged

    async def _exchange(
        self, code: str, verifier: str | None, method: pkce.Method | None
    ) -> Exchanged:
        if not code:
            raise BadRequest("code is required", field="code")
        code_hash = tokens.sha256_hex(code)
        record = await self._store.get_code(code_hash)
        if record is None:
            raise InvalidCode
        if record.used_at is not None:
            await self._on_replay(record, verifier, method)
            raise ReplayedCode
        if method is not None and method != record.code_challenge_method:
            raise InvalidChallengeMethod
        if not verifier_proves(record, verifier):
            raise InvalidCode
        now = self._clock()
        if now >= record.expires_at:
            raise CodeExpired
        owner = await self._store.get_user(record.user_id)
        if owner is None or owner.disabled:
            raise InvalidCode  # a disabled user's codes mint nothing

        label = record.key_label
        if label is None:
            app = await self._apps.get(record.app_id)
            label = app.name if app else None
        new = self._keys.mint(
            user_id=record.user_id,
            name=label,
            label=label,
            limit=record.limit,
            limit_reset=record.usage_limit_type,
            expires_at=record.key_expires_at,
            app_id=record.app_id,
            issued_by_code=True,
            parent_key_hash=record.creator_key_hash,
            allowed_models=record.allowed_models,
        )
        # The issue is recorded in the transaction that mints the key: neither
        # can exist without the other.
        issued = self._audit.event(
            audit.KEY_ISSUED,
            actor=audit.app_actor(record.app_id),
            key=new.record,
            detail={"app_id": record.app_id, "label": label},
        )
        if not await self._store.consume_code(code_hash, now, new.record, issued):
            # Lost a race with a concurrent exchange (or the code expired meanwhile).
            raise InvalidCode
        return Exchanged(key=new.secret, user_id=record.user_id, key_hash=new.record.hash)

    async def _on_replay(
        self, record: AuthCode, verifier: str | None, method: pkce.Method | None
    ) -> None:
        """Revoke the minted key when the replay itself would have been valid."""
        if method is not None and method != record.code_challenge_method:
            return
        if not verifier_proves(record, verifier):
            return
        revoked = await self._store.revoke_key_minted_by(record.code_hash, self._clock())
        metrics.REPLAY_DETECTIONS.inc()
        if revoked is not None:
            metrics.KEYS_REVOKED.inc()
        log.warning("authorization code replayed with a valid verifier; revoked key %s", revoked)
        await self._audit.record(
            audit.REPLAY_DETECTED,
            actor=audit.SYSTEM,
            user_id=record.user_id,
            key_hash=revoked,
            detail={"app_id": record.app_id, "revoked": revoked is not None},
        )
