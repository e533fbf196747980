"""Single sign-on use cases: sign-ins in flight, and the account a provider identity gets.

A sign-in is bound to the browser that started it. The browser holds a random
secret (the ``mg_oidc`` cookie); the store keeps only the SHA-256 of it and of
the ``state`` sent to the provider. The PKCE verifier and the nonce are derived
from the secret and the state (HMAC-SHA256), so they are never stored either: a
callback carried to another browser, replayed, or forged cannot be completed.

Accounts (:meth:`SignOnService.account_for`): a known (issuer, ``sub``) is its
user; else a user with the same verified e-mail is linked; else one is created
just in time, with no password. Refused people get no account at all.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta

from modelgates import tokens
from modelgates.errors import DuplicateEmail, DuplicateIdentity
from modelgates.models import PendingSignIn, User
from modelgates.oidc import Claims
from modelgates.services import Clock, system_clock
from modelgates.store import Store
from modelgates.windows import Reset

SIGN_IN_TTL_SECONDS = 600
"""How long a person has at the provider to sign in (like an authorization code)."""


def _derived(browser_secret: str, state: str, purpose: str) -> str:
    digest = hmac.new(
        browser_secret.encode("ascii"), f"{purpose}:{state}".encode("ascii"), hashlib.sha256
    ).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass(frozen=True, slots=True)
class SignInSecrets:
    """What the authorization request carries for one sign-in (RFC 7636; Core §3.1.2.1)."""

    state: str
    nonce: str
    code_verifier: str

    @classmethod
    def derive(cls, browser_secret: str, state: str) -> SignInSecrets:
        return cls(
            state=state,
            nonce=_derived(browser_secret, state, "nonce"),
            code_verifier=_derived(browser_secret, state, "pkce"),
        )


class SignInNotFound(Exception):
    """The callback's state is unknown, used, expired or from another browser."""


class SignOnService:
    """Starts and completes sign-ins, and finds or makes the account."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Clock = system_clock,
        default_budget: tuple[int | None, Reset | None] = (None, None),
    ) -> None:
        self._store = store
        self._clock = clock
        self._default_budget = default_budget

    @staticmethod
    def browser_secret(current: str | None) -> str:
        """The browser's sign-in secret: its cookie's if well formed, else a new one."""
        if current and len(current) == 43 and current.replace("-", "").replace("_", "").isalnum():
            return current
        return secrets.token_urlsafe(32)

    async def start(self, browser_secret: str, next_path: str) -> SignInSecrets:
        """A new sign-in of this browser that will land on ``next_path``."""
        started = SignInSecrets.derive(browser_secret, secrets.token_urlsafe(32))
        now = self._clock()
        await self._store.create_sign_in(
            PendingSignIn(
                state_hash=tokens.sha256_hex(started.state),
                browser_hash=tokens.sha256_hex(browser_secret),
                next_path=next_path,
                created_at=now,
                expires_at=now + timedelta(seconds=SIGN_IN_TTL_SECONDS),
            )
        )
        return started

    async def finish(
        self, state: str, browser_secret: str | None
    ) -> tuple[PendingSignIn, SignInSecrets]:
        """Take the sign-in of ``state`` (once); it must belong to this browser."""
        if not state or len(state) > 128:
            raise SignInNotFound
        taken = await self._store.take_sign_in(tokens.sha256_hex(state), self._clock())
        if taken is None or not browser_secret:
            raise SignInNotFound
        if not hmac.compare_digest(tokens.sha256_hex(browser_secret), taken.browser_hash):
            raise SignInNotFound
        return taken, SignInSecrets.derive(browser_secret, state)

    async def account_for(self, claims: Claims, *, is_admin: bool | None) -> User:
        """The user of a person who passed the rules (:func:`modelgates.oidc.refusal`);
        ``is_admin`` (when not ``None``) is written if it changed."""
        user = await self._find_or_create(claims)
        if is_admin is not None and user.is_admin != is_admin:
            await self._store.set_user_admin(user.id, is_admin)
            user = await self._store.get_user(user.id) or user
        return user

    async def _find_or_create(self, claims: Claims) -> User:
        assert claims.email is not None
        # Two first sign-ins of one person may race: the loser finds the winner's rows.
        for _ in range(2):
            user = await self._store.get_user_by_identity(claims.identity)
            if user is not None:
                return user
            user = await self._store.get_user_by_email(claims.email)
            now = self._clock()
            if user is not None:
                if await self._store.link_identity(claims.identity, user.id, now):
                    return user
                continue  # linked meanwhile by a concurrent sign-in: found next round
            user = User(
                id="user_" + secrets.token_urlsafe(18),
                email=claims.email,
                password_hash="",
                workspace_id=str(uuid.uuid4()),
                created_at=now,
                limit=self._default_budget[0],
                limit_reset=self._default_budget[1],
            )
            try:
                await self._store.create_user(user, claims.identity)
            except (DuplicateEmail, DuplicateIdentity):
                continue
            return user
        raise DuplicateIdentity(claims.identity.subject)
