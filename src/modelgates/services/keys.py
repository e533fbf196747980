"""API keys: creation, bearer authentication, ownership, updates and revocation (the
rules; the API's views of a key are in :mod:`modelgates.api.key_views`)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime

from msgspec import UNSET, UnsetType

from modelgates import allowlist, metrics, tokens
from modelgates.allowlist import Allowlist
from modelgates.display import display_string_problem
from modelgates.errors import BadRequest, Forbidden, NotFound, Unauthorized
from modelgates.key_state import key_state
from modelgates.models import ApiKey, User
from modelgates.money import MAX_LIMIT_USD, to_nanos, to_usd
from modelgates.services import Clock, audit, system_clock
from modelgates.services.audit import AuditLog
from modelgates.store import Store
from modelgates.windows import NO_SPEND, Reset, WindowSpend

MAX_LABEL_LENGTH = 100

MISSING_AUTH = "Missing Authentication header"
INVALID_KEY = "Invalid API key"
KEY_EXPIRED = "Key expired"
KEY_DISABLED = "Key disabled"
KEY_REVOKED = "Key revoked"
USER_DISABLED = "User disabled"
MANAGEMENT_ONLY = "Only management keys can perform this operation"
RESOURCE_NOT_FOUND = "Resource not found"
PAGE_SIZE = 100

KEY_HASH = re.compile(r"[0-9a-f]{64}")


def check_limit(limit: float | None, *, field: str = "limit") -> int | None:
    """A USD limit as nano-dollars: finite, ≥ 0 and at most ``MAX_LIMIT_USD``."""
    if limit is None:
        return None
    if not math.isfinite(limit) or limit < 0:
        raise BadRequest(f"{field} must be a finite number >= 0", field=field)
    if limit > MAX_LIMIT_USD:
        raise BadRequest(f"{field} must be at most {MAX_LIMIT_USD:.0f}", field=field)
    return to_nanos(limit)


def check_label(label: str | None, *, field: str) -> str | None:
    """1–100 characters after trimming, safe to show (:mod:`modelgates.display`);
    ``None`` stays ``None``."""
    if label is None:
        return None
    trimmed = label.strip()
    if not 1 <= len(trimmed) <= MAX_LABEL_LENGTH:
        raise BadRequest(f"{field} must be 1-{MAX_LABEL_LENGTH} characters", field=field)
    problem = display_string_problem(trimmed)
    if problem is not None:
        raise BadRequest(f"{field} {problem}", field=field)
    return trimmed


def bearer_token(authorization: str | None) -> str:
    """The key from an ``Authorization: Bearer <key>`` header, or 401."""
    if not authorization or not authorization.strip():
        raise Unauthorized(MISSING_AUTH)
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(MISSING_AUTH)
    return token.strip()


@dataclass(frozen=True, slots=True)
class NewKey:
    """A freshly created key: the secret (shown once) and its stored record."""

    secret: str
    record: ApiKey


class KeyService:
    """Creates, authenticates, lists and revokes keys."""

    def __init__(self, store: Store, audit: AuditLog, *, clock: Clock = system_clock) -> None:
        self._store = store
        self._audit = audit
        self._clock = clock

    def mint(
        self,
        *,
        user_id: str,
        name: str | None,
        label: str | None = None,
        limit: int | None = None,
        limit_reset: Reset | None = None,
        expires_at: datetime | None = None,
        app_id: int | None = None,
        is_management: bool = False,
        issued_by_code: bool = False,
        parent_key_hash: str | None = None,
        allowed_models: Allowlist = None,
    ) -> NewKey:
        """Generate a key and its record without storing it (the exchange stores both
        the key and the code's consumption in one transaction)."""
        secret = tokens.generate_api_key()
        display = label or name or tokens.masked(secret)
        record = ApiKey(
            hash=tokens.sha256_hex(secret),
            user_id=user_id,
            name=name or display,
            label=display,
            created_at=self._clock(),
            app_id=app_id,
            limit=limit,
            limit_reset=limit_reset,
            expires_at=expires_at,
            is_management=is_management,
            issued_by_code=issued_by_code,
            parent_key_hash=parent_key_hash,
            allowed_models=allowed_models,
        )
        return NewKey(secret=secret, record=record)

    async def create(
        self,
        user: User,
        *,
        name: str | None = None,
        limit_usd: float | None = None,
        limit_reset: Reset | None = None,
        expires_at: datetime | None = None,
        is_management: bool = False,
        actor: str | None = None,
        allowed_models: Allowlist = None,
    ) -> NewKey:
        """Create and store a personal (or management) key for ``user``.

        ``actor`` is who asked, for the audit trail (default: the user);
        ``allowed_models`` is checked already (:func:`modelgates.allowlist.parse`).
        """
        nanos = check_limit(limit_usd)
        if limit_reset is not None and nanos is None:
            raise BadRequest("limit_reset requires a limit", field="limit_reset")
        if expires_at is not None and expires_at <= self._clock():
            raise BadRequest("expires_at must be in the future", field="expires_at")
        new = self.mint(
            user_id=user.id,
            name=check_label(name, field="name"),
            limit=nanos,
            limit_reset=limit_reset,
            expires_at=expires_at,
            is_management=is_management,
            allowed_models=allowed_models,
        )
        await self._store.create_key(new.record)
        await self._audit.record(
            audit.KEY_CREATED,
            actor=actor or audit.user_actor(user.id),
            key=new.record,
            detail={"name": new.record.name, "limit": limit_usd, "limit_reset": limit_reset,
                    "management": is_management,
                    "allowed_models": allowlist.listed(allowed_models)},
        )  # fmt: skip
        return new

    async def authenticate(self, authorization: str | None, *, cached: bool = False) -> ApiKey:
        """The active key named by a bearer header (the successor of a rotated key, within
        its grace period); 401 with the reason otherwise, also when its user is disabled.

        Read from the store, so a change made through any worker applies at once;
        ``cached`` (the metered routes) reads it through the key cache
        (:meth:`Store.get_key_cached`) instead: a change applies within 1 s, and the
        key's usage counters may be older (what shows them must not ask for it)."""
        token = bearer_token(authorization)
        if not tokens.looks_like_api_key(token):
            raise Unauthorized(INVALID_KEY)
        read = self._store.get_key_cached if cached else self._store.get_key
        key = await read(tokens.sha256_hex(token))
        if key is None:
            raise Unauthorized(INVALID_KEY)
        now = self._clock()
        if key.rotated_to is not None and key.grace_until is not None and now < key.grace_until:
            # The old secret of a rotated key, within its grace period: its successor.
            key = await read(key.rotated_to) or key
        state = key_state(key, now)
        if state == "revoked":
            raise Unauthorized(KEY_REVOKED)
        if state == "disabled":
            raise Unauthorized(KEY_DISABLED)
        if state == "expired":
            await self._audit.record(audit.EXPIRED_USE_REFUSED, actor=audit.key_actor(key), key=key)
            raise Unauthorized(KEY_EXPIRED)
        if key.user_disabled:
            raise Unauthorized(USER_DISABLED)
        return key

    async def budgets(self, key: ApiKey) -> Budgets:
        """The spend and keys behind ``key``'s budgets (for ``/key``), and its user when
        they have a budget."""
        parent = None
        if key.parent_key_hash is not None:
            parent = await self._store.get_key(key.parent_key_hash)
            if parent is not None and parent.limit is None:
                parent = None
        asked = [k.hash for k in (key, parent) if k is not None and k.limit is not None]
        minted = await self._store.minted_spend(asked, self._clock()) if asked else {}
        user = await self._store.get_user(key.user_id) if key.user_budgeted else None
        return Budgets(
            minted.get(key.hash, NO_SPEND),
            parent,
            NO_SPEND if parent is None else minted.get(parent.hash, NO_SPEND),
            user,
        )

    async def minted_spend(self, keys: list[ApiKey]) -> dict[str, WindowSpend]:
        """What the keys minted from each of ``keys`` spent (for key objects)."""
        asked = [key.hash for key in keys if key.limit is not None and not key.issued_by_code]
        return await self._store.minted_spend(asked, self._clock()) if asked else {}

    async def authenticate_management(self, authorization: str | None) -> ApiKey:
        """Like :meth:`authenticate`, then 403 unless the key is a management key."""
        key = await self.authenticate(authorization)
        if not key.is_management:
            raise Forbidden(MANAGEMENT_ONLY)
        return key

    async def get_owned(self, caller: ApiKey, key_hash: str) -> ApiKey:
        """The unrevoked key ``key_hash`` of the caller's user; 404 for anything else
        (malformed, unknown, revoked, or another user's: all look alike)."""
        return await self.owned_by(caller.user_id, key_hash)

    async def owned_by(self, user_id: str, key_hash: str) -> ApiKey:
        """The unrevoked key ``key_hash`` of the user ``user_id``; 404 as :meth:`get_owned`."""
        if not KEY_HASH.fullmatch(key_hash):
            raise NotFound(RESOURCE_NOT_FOUND)
        key = await self._store.get_key(key_hash)
        if key is None or key.revoked_at is not None or key.user_id != user_id:
            raise NotFound(RESOURCE_NOT_FOUND)
        return key

    async def list_page(
        self, caller: ApiKey, *, offset: int = 0, include_disabled: bool = False
    ) -> list[ApiKey]:
        """One page (``PAGE_SIZE``) of the caller's user's unrevoked keys, newest first."""
        return await self._store.list_keys(
            caller.user_id, include_disabled=include_disabled, offset=offset, limit=PAGE_SIZE
        )

    async def update_owned(
        self,
        caller: ApiKey,
        key_hash: str,
        *,
        name: str | UnsetType = UNSET,
        disabled: bool | UnsetType = UNSET,
        limit_usd: float | UnsetType | None = UNSET,
        limit_reset: Reset | UnsetType | None = UNSET,
        allowed_models: Allowlist | UnsetType = UNSET,
    ) -> ApiKey:
        """Change the given fields of one of the caller's user's keys.

        A limit cleared to ``null`` clears its reset interval too; setting a reset
        interval while the resulting limit is ``null`` is a 400. Every field is
        checked before anything changes. ``allowed_models`` (checked already) set on
        a sub-key is kept within its parent's (:meth:`Store.update_key`).
        """
        checked_name: str | UnsetType = UNSET
        if not isinstance(name, UnsetType):
            checked_name = check_label(name, field="name") or ""
        nanos = UNSET if isinstance(limit_usd, UnsetType) else check_limit(limit_usd)
        key = await self.get_owned(caller, key_hash)
        resulting_limit = key.limit if isinstance(nanos, UnsetType) else nanos
        if resulting_limit is None:
            if not isinstance(limit_reset, UnsetType) and limit_reset is not None:
                raise BadRequest("limit_reset requires a limit", field="limit_reset")
            if key.limit_reset is not None:
                limit_reset = None
        change = await self._store.update_key(
            key.hash,
            self._clock(),
            name=checked_name,
            disabled=disabled,
            limit=nanos,
            limit_reset=limit_reset,
            allowed_models=allowed_models,
        )
        if change is None or change.key.user_id != caller.user_id:
            raise NotFound(RESOURCE_NOT_FOUND)
        await self._record_changes(key, change.key, actor=audit.key_actor(caller))
        await self._record_minted_revoked(change.key, change.revoked_minted)
        return change.key

    async def _record_changes(self, before: ApiKey, after: ApiKey, *, actor: str) -> None:
        """One audit event per kind of change an update made."""
        if (before.limit, before.limit_reset) != (after.limit, after.limit_reset):
            detail = {
                "old_limit": None if before.limit is None else to_usd(before.limit),
                "new_limit": None if after.limit is None else to_usd(after.limit),
                "old_limit_reset": before.limit_reset,
                "new_limit_reset": after.limit_reset,
            }
            await self._audit.record(audit.KEY_LIMIT_CHANGED, actor=actor, key=after, detail=detail)
        if before.disabled != after.disabled:
            event = audit.KEY_DISABLED if after.disabled else audit.KEY_ENABLED
            await self._audit.record(event, actor=actor, key=after)
        if before.name != after.name:
            names = {"old_name": before.name, "new_name": after.name}
            await self._audit.record(audit.KEY_RENAMED, actor=actor, key=after, detail=names)
        if before.allowed_models != after.allowed_models:
            lists = {
                "old_allowed_models": allowlist.listed(before.allowed_models),
                "new_allowed_models": allowlist.listed(after.allowed_models),
            }
            await self._audit.record(audit.KEY_MODELS_CHANGED, actor=actor, key=after, detail=lists)

    async def revoke_owned(self, caller: ApiKey, key_hash: str) -> None:
        """Revoke one of the caller's user's keys for good; 404 as :meth:`get_owned`."""
        key = await self.get_owned(caller, key_hash)
        await self.revoke(key.hash, actor=audit.key_actor(caller))

    async def revoke_for_user(self, user: User, key_hash: str) -> None:
        """Revoke one of ``user``'s keys for good, as the user (the key page); 404 as
        :meth:`get_owned`."""
        key = await self.owned_by(user.id, key_hash)
        await self.revoke(key.hash, actor=audit.user_actor(user.id))

    async def list_for(self, user: User, *, include_disabled: bool = True) -> list[ApiKey]:
        """All of the user's unrevoked keys, newest first (pages of 100 internally)."""
        found: list[ApiKey] = []
        while True:
            page = await self._store.list_keys(
                user.id, include_disabled=include_disabled, offset=len(found), limit=100
            )
            found.extend(page)
            if len(page) < 100:
                return found

    async def revoke(self, key_hash: str, *, actor: str = audit.SYSTEM) -> None:
        """Revoke a key for good; 404 if there is no such unrevoked key."""
        key_hash = key_hash.strip().lower()
        minted = await self._store.revoke_key(key_hash, self._clock())
        if minted is None:
            raise NotFound("No active key with this hash")
        metrics.KEYS_REVOKED.inc()
        key = await self._store.get_key(key_hash)
        await self._audit.record(audit.KEY_REVOKED, actor=actor, key=key, key_hash=key_hash)
        if key is not None:
            await self._record_minted_revoked(key, tuple(minted))

    async def _record_minted_revoked(self, parent: ApiKey, minted: tuple[str, ...]) -> None:
        """One ``key.revoked`` event per key revoked because the key that minted it was
        revoked or disabled (the store revoked them in the same transaction)."""
        for key_hash in minted:
            metrics.KEYS_REVOKED.inc()
            await self._audit.record(
                audit.KEY_REVOKED,
                actor=audit.key_actor(parent),
                user_id=parent.user_id,
                key_hash=key_hash,
                detail={"reason": "minting key revoked or disabled", "parent": parent.hash},
            )


@dataclass(frozen=True, slots=True)
class Budgets:
    """What a key's budgets need beyond the key: its sub-keys' spend, and the key that
    minted it (with that key's sub-keys' spend)."""

    minted: WindowSpend = NO_SPEND
    parent: ApiKey | None = None
    parent_minted: WindowSpend = NO_SPEND
    user: User | None = None
    """The key's user, when they have a budget."""
