"""Accounts: creation and password checks (argon2id)."""

from __future__ import annotations

import re
import secrets
import uuid

from argon2 import PasswordHasher

from modelgates.errors import BadRequest, DuplicateEmail
from modelgates.models import User
from modelgates.passwords import Passwords
from modelgates.services import Clock, system_clock
from modelgates.store import Store
from modelgates.windows import Reset

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024
WORKSPACE_CACHE_SIZE = 100_000
_EMAIL_PART = r"[^@\s\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]+"
_EMAIL = re.compile(rf"{_EMAIL_PART}@{_EMAIL_PART}\.{_EMAIL_PART}")
"""One ``@``, no spaces, no control characters (a NUL cannot even be stored on
PostgreSQL) and no bidirectional controls."""


def normalise_email(email: str) -> str:
    """E-mail addresses compare case-insensitively and without surrounding space."""
    return email.strip().lower()


class UserService:
    """Creates users and verifies their passwords."""

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
        """The budget (nano-dollars) and reset of a new user (a setting)."""
        self.passwords = Passwords()
        """argon2id, in worker threads: a check never runs on the event loop."""
        self._workspaces: dict[str, str] = {}

    async def create(self, email: str, password: str, *, is_admin: bool = False) -> User:
        """Create a user (with the default budget of new users); the password is kept only
        as an argon2id hash."""
        address = normalise_email(email)
        if len(address) > 254 or not _EMAIL.fullmatch(address):
            raise BadRequest("email must be a valid e-mail address", field="email")
        if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
            raise BadRequest(
                f"password must be {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters",
                field="password",
            )
        user = User(
            id="user_" + secrets.token_urlsafe(18),
            email=address,
            password_hash=await self.passwords.hash(password),
            workspace_id=str(uuid.uuid4()),
            created_at=self._clock(),
            is_admin=is_admin,
            limit=self._default_budget[0],
            limit_reset=self._default_budget[1],
        )
        try:
            await self._store.create_user(user)
        except DuplicateEmail as exc:  # the API's contract for a taken e-mail is a 400
            raise BadRequest(exc.message, field="email") from exc
        return user

    async def workspace_id(self, user_id: str) -> str | None:
        """The user's workspace id, cached: it is set at creation and never changes
        (``GET /key`` needs nothing else from the user row)."""
        found = self._workspaces.get(user_id)
        if found is None:
            user = await self._store.get_user(user_id)
            if user is None:
                return None
            if len(self._workspaces) >= WORKSPACE_CACHE_SIZE:
                self._workspaces.clear()
            found = self._workspaces[user_id] = user.workspace_id
        return found

    async def get(self, user_id: str) -> User | None:
        """The user with this id (a key's owner)."""
        return await self._store.get_user(user_id)

    async def get_by_email(self, email: str) -> User | None:
        """The user with this address; an address no user can have is not looked up."""
        address = normalise_email(email)
        if len(address) > 254 or not _EMAIL.fullmatch(address):
            return None
        return await self._store.get_user_by_email(address)

    async def authenticate(self, email: str, password: str) -> User | None:
        """The user if the password matches, else ``None`` (same cost either way).

        Raises :class:`~modelgates.passwords.PasswordChecksBusy` (429) when too many
        checks are already running or waiting. An account made by single sign-on has no
        password: it never matches; nor does a disabled user's.
        """
        user = await self.get_by_email(email)
        candidate = user.password_hash if user and user.has_password else _DUMMY_HASH
        if not await self.passwords.verify(candidate, password):
            return None
        if user is None or not user.has_password or user.disabled:
            return None
        return user


_DUMMY_HASH = PasswordHasher().hash("not-a-real-password")
"""Verified against when the e-mail is unknown, so timing does not reveal accounts."""
