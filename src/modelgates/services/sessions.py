"""Signed-in sessions of the pages, kept in the database.

The browser holds a random token (the ``mg_session`` cookie, 256 bits); the
store keeps only its SHA-256, so a leaked database cannot be replayed as a
cookie. Each session carries its own CSRF secret for the forms. Sessions live
``session_ttl_seconds`` from log-in (absolute, no sliding renewal); log-in
always starts a new one (the id is rotated) and log-out deletes it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from modelgates import tokens
from modelgates.models import User, WebSession
from modelgates.services import Clock, system_clock
from modelgates.store import Store


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A live session and its user."""

    session: WebSession
    user: User


@dataclass(frozen=True, slots=True)
class Started:
    """A new session: the token for the cookie (never stored) and its record."""

    token: str
    session: WebSession


class SessionService:
    """Starts, resolves and ends page sessions."""

    def __init__(self, store: Store, *, ttl_seconds: int, clock: Clock = system_clock) -> None:
        self._store = store
        self._ttl = timedelta(seconds=ttl_seconds)
        self._clock = clock

    async def start(self, user: User, *, replacing: str | None = None) -> Started:
        """A fresh session for ``user``; the session of token ``replacing`` ends."""
        if replacing:
            await self._store.delete_session(tokens.sha256_hex(replacing))
        now = self._clock()
        await self._store.delete_expired_sessions(now)
        token = secrets.token_urlsafe(32)
        session = WebSession(
            token_hash=tokens.sha256_hex(token),
            user_id=user.id,
            csrf_secret=secrets.token_urlsafe(32),
            created_at=now,
            expires_at=now + self._ttl,
        )
        await self._store.create_session(session)
        return Started(token=token, session=session)

    async def resolve(self, token: str | None) -> SignedIn | None:
        """The live session of ``token`` and its user, or ``None`` (also when the user is
        disabled: their sessions end with it)."""
        if not token or len(token) > 128:
            return None
        session = await self._store.get_session(tokens.sha256_hex(token))
        if session is None or self._clock() >= session.expires_at:
            return None
        user = await self._store.get_user(session.user_id)
        if user is None or user.disabled:
            return None
        return SignedIn(session=session, user=user)

    async def end(self, token: str | None) -> bool:
        """End the session of ``token`` server-side; ``False`` if there was none."""
        if not token or len(token) > 128:
            return False
        return await self._store.delete_session(tokens.sha256_hex(token))
