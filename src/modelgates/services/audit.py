"""The audit trail: an append-only record of what happened to keys and users, and who
did it."""

from __future__ import annotations

from typing import Any

from modelgates.models import ApiKey, AuditEvent
from modelgates.services import Clock, system_clock
from modelgates.store import Store

KEY_CREATED = "key.created"
KEY_ISSUED = "key.issued"
KEY_LIMIT_CHANGED = "key.limit_changed"
KEY_RENAMED = "key.renamed"
KEY_MODELS_CHANGED = "key.models_changed"
KEY_DISABLED = "key.disabled"
KEY_ENABLED = "key.enabled"
KEY_REVOKED = "key.revoked"
REPLAY_DETECTED = "code.replay_detected"
EXPIRED_USE_REFUSED = "key.expired_use_refused"
APP_RENAMED = "app.renamed"
KEY_ROTATED = "key.rotated"
USER_BUDGET_CHANGED = "user.budget_changed"
USER_DISABLED = "user.disabled"
USER_ENABLED = "user.enabled"
USER_ROLE_CHANGED = "user.role_changed"
USER_ALERT_WEBHOOK_CHANGED = "user.alert_webhook_changed"

CLI = "cli"
SYSTEM = "system"


def key_actor(key: ApiKey) -> str:
    """The actor string for a request authenticated by ``key``."""
    return f"key:{key.hash}"


def user_actor(user_id: str) -> str:
    """The actor string for a signed-in user acting in the browser."""
    return f"user:{user_id}"


def app_actor(app_id: int) -> str:
    """The actor string for an app redeeming a code the user consented to."""
    return f"app:{app_id}"


class AuditLog:
    """Appends events; what is recorded never includes a secret, only key hashes."""

    def __init__(self, store: Store, *, clock: Clock = system_clock) -> None:
        self._store = store
        self._clock = clock

    async def record(
        self,
        event: str,
        *,
        actor: str,
        key: ApiKey | None = None,
        user_id: str | None = None,
        key_hash: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        made = self.event(
            event, actor=actor, key=key, user_id=user_id, key_hash=key_hash, detail=detail
        )
        await self._store.record_event(made)

    def event(
        self,
        event: str,
        *,
        actor: str,
        key: ApiKey | None = None,
        user_id: str | None = None,
        key_hash: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> AuditEvent:
        """The event :meth:`record` would append, for a store call that writes it
        in the same transaction as the change it records."""
        return AuditEvent(
            at=self._clock(),
            event=event,
            actor=actor,
            user_id=key.user_id if key else user_id,
            key_hash=key.hash if key else key_hash,
            detail=detail,
        )

    async def events(
        self, *, user_id: str | None = None, key_hash: str | None = None, limit: int = 100
    ) -> list[AuditEvent]:
        return await self._store.list_events(user_id=user_id, key_hash=key_hash, limit=limit)
