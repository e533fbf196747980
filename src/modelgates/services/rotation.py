"""Key rotation: a new secret for a key, with everything else kept.

The successor is a new row (its hash is the SHA-256 of the new secret, as every key's
is) that takes over the old key's settings, usage counters, generation records, live
reservations, sub-keys and codes in one transaction (:meth:`~modelgates.store.base.
Store.rotate_key`), so its limits go on counting what was spent. The old key is revoked
at once; its secret keeps working, as the successor, for the grace period asked for
(default 0: it stops at once, on the model routes of other workers within 1 s: the key
cache), so the apps holding it can be moved over. The audit trail
records the link both ways (``key.rotated`` on each key, naming the other).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from modelgates import tokens
from modelgates.errors import BadRequest, NotFound
from modelgates.models import ApiKey
from modelgates.services import Clock, audit, system_clock
from modelgates.services.audit import AuditLog
from modelgates.services.keys import RESOURCE_NOT_FOUND, KeyService
from modelgates.store import Store
from modelgates.timestamps import isoformat

MAX_GRACE_SECONDS = 30 * 86_400
"""The longest grace period an old secret may keep working: 30 days."""


@dataclass(frozen=True, slots=True)
class Rotated:
    """A rotated key: the new secret (shown once), its record, and the old key's end."""

    secret: str
    record: ApiKey
    previous_hash: str
    grace_until: datetime
    """Until when the old secret still works (the rotation instant with no grace)."""


def check_grace(seconds: object, *, field: str = "grace_period_seconds") -> int:
    """A grace period: an integer of seconds from 0 to :data:`MAX_GRACE_SECONDS`, else 400."""
    if isinstance(seconds, bool) or not isinstance(seconds, int):
        raise BadRequest(f"{field} must be an integer of seconds", field=field)
    if not 0 <= seconds <= MAX_GRACE_SECONDS:
        raise BadRequest(f"{field} must be from 0 to {MAX_GRACE_SECONDS}", field=field)
    return seconds


class KeyRotation:
    """Rotates keys on behalf of their user (management API, key page)."""

    def __init__(
        self, store: Store, keys: KeyService, audit_log: AuditLog, *, clock: Clock = system_clock
    ) -> None:
        self._store = store
        self._keys = keys
        self._audit = audit_log
        self._clock = clock

    async def rotate(
        self, user_id: str, key_hash: str, *, grace_seconds: int = 0, actor: str
    ) -> Rotated:
        """Rotate the unrevoked key ``key_hash`` of ``user_id`` (404 for anything else, as
        :meth:`KeyService.owned_by`)."""
        grace = check_grace(grace_seconds)
        old = await self._keys.owned_by(user_id, key_hash)
        secret = tokens.generate_api_key()
        now = self._clock()
        until = now + timedelta(seconds=grace)
        successor = await self._store.rotate_key(old.hash, tokens.sha256_hex(secret), now, until)
        if successor is None:  # revoked or rotated meanwhile
            raise NotFound(RESOURCE_NOT_FOUND)
        detail = {"grace_period_seconds": grace, "old_secret_works_until": isoformat(until)}
        await self._audit.record(
            audit.KEY_ROTATED, actor=actor, key=successor,
            detail={**detail, "previous": old.hash},
        )  # fmt: skip
        await self._audit.record(
            audit.KEY_ROTATED, actor=actor, key=old, detail={**detail, "successor": successor.hash}
        )
        return Rotated(secret, successor, old.hash, until)
