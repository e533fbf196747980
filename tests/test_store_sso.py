"""The single sign-on part of the Store contract, on SQLite and PostgreSQL:
provider identities, admins, and sign-ins in flight (taken exactly once)."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from modelgates import tokens
from modelgates.errors import DuplicateEmail, DuplicateIdentity
from modelgates.models import PendingSignIn, ProviderIdentity
from modelgates.store import Store
from tests.test_store import make_user

ISSUER = "https://idp.example.com/realms/team"


@pytest.fixture
def now() -> datetime:
    return datetime(2026, 11, 29, 10, 30, 0, 123_457, tzinfo=UTC)


def identity(subject: str | None = None) -> ProviderIdentity:
    return ProviderIdentity(ISSUER, subject or secrets.token_hex(8))


def sign_in(now: datetime, *, ttl: int = 600) -> PendingSignIn:
    return PendingSignIn(
        state_hash=tokens.sha256_hex(secrets.token_urlsafe(32)),
        browser_hash=tokens.sha256_hex(secrets.token_urlsafe(32)),
        next_path="/auth?callback_url=https%3A%2F%2Fapp.example%2Fcb&state=x",
        created_at=now,
        expires_at=now + timedelta(seconds=ttl),
    )


async def test_user_with_identity_round_trip(store: Store, now: datetime) -> None:
    user = replace(make_user(now), password_hash="")
    person = identity()
    await store.create_user(user, person)
    found = await store.get_user_by_identity(person)
    assert found == user
    assert not found.has_password and not found.is_admin
    assert await store.get_user_by_identity(ProviderIdentity(ISSUER, "someone-else")) is None
    # The subject is scoped by its issuer.
    elsewhere = ProviderIdentity("https://other.example", person.subject)
    assert await store.get_user_by_identity(elsewhere) is None


async def test_duplicate_email_or_identity_writes_nothing(store: Store, now: datetime) -> None:
    first = make_user(now)
    person = identity()
    await store.create_user(first, person)
    taken_email = replace(make_user(now), email=first.email)
    with pytest.raises(DuplicateEmail):
        await store.create_user(taken_email, identity())
    assert await store.get_user(taken_email.id) is None
    taken_identity = make_user(now)
    with pytest.raises(DuplicateIdentity):
        await store.create_user(taken_identity, person)
    assert await store.get_user(taken_identity.id) is None  # the user row was undone too
    assert await store.get_user_by_identity(person) == first


async def test_link_identity_once(store: Store, now: datetime) -> None:
    user, other = make_user(now), make_user(now)
    await store.create_user(user)
    await store.create_user(other)
    person = identity()
    assert await store.link_identity(person, user.id, now)
    assert not await store.link_identity(person, other.id, now)
    found = await store.get_user_by_identity(person)
    assert found is not None and found.id == user.id
    # One user may have several identities (e.g. a new sub after an account move).
    assert await store.link_identity(identity(), user.id, now)


async def test_set_user_admin(store: Store, now: datetime) -> None:
    user = make_user(now)
    await store.create_user(user)
    await store.set_user_admin(user.id, True)
    found = await store.get_user(user.id)
    assert found is not None and found.is_admin
    await store.set_user_admin(user.id, False)
    found = await store.get_user_by_email(user.email)
    assert found is not None and not found.is_admin


async def test_sign_in_is_taken_exactly_once(store: Store, now: datetime) -> None:
    pending = sign_in(now)
    await store.create_sign_in(pending)
    taken = await asyncio.gather(*(store.take_sign_in(pending.state_hash, now) for _ in range(8)))
    assert [t for t in taken if t is not None] == [pending]
    assert await store.take_sign_in(pending.state_hash, now) is None
    assert await store.take_sign_in(tokens.sha256_hex("unknown"), now) is None


async def test_expired_sign_in_is_not_taken_and_is_purged(store: Store, now: datetime) -> None:
    expired = sign_in(now, ttl=60)
    await store.create_sign_in(expired)
    assert await store.take_sign_in(expired.state_hash, now + timedelta(seconds=60)) is None
    old, live = sign_in(now, ttl=60), sign_in(now, ttl=600)
    for pending in (old, live):
        await store.create_sign_in(pending)
    assert await store.purge_sign_ins(now + timedelta(seconds=61), 100) == 1
    assert await store.take_sign_in(old.state_hash, now) is None
    assert await store.take_sign_in(live.state_hash, now) == live
