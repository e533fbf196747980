"""Stored responses (the Responses API's ``store: true``) in the store and the purge,
on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from modelgates.container import Services
from modelgates.models import ApiKey, StoredResponse
from modelgates.purge import purge_once
from modelgates.store import Store
from tests.support.clock import FakeClock
from tests.test_store import add_user, make_key

CONVERSATION: list[Any] = [
    {"type": "message", "role": "user", "content": 'naïve ☃ \u0000 quote" back\\slash'},
    {"type": "function_call_output", "call_id": "call_1", "output": "42"},
]


def stored(key: ApiKey, response_id: str, created_at: datetime) -> StoredResponse:
    return StoredResponse(
        id=response_id,
        user_id=key.user_id,
        key_hash=key.hash,
        created_at=created_at,
        input=CONVERSATION,
        response={"id": response_id, "object": "response", "output": [], "usage": None},
    )


async def a_key(store: Store, now: datetime) -> ApiKey:
    key = make_key(await add_user(store, now), now)
    await store.create_key(key)
    return key


async def test_a_response_is_kept_for_its_user_only(store: Store, clock: FakeClock) -> None:
    now = clock.now
    mine, theirs = await a_key(store, now), await a_key(store, now)
    kept = stored(mine, "gen-1-mine", now)
    await store.save_response(kept)
    await store.save_response(kept)  # a second save changes nothing

    assert await store.get_response("gen-1-mine", mine.user_id) == kept
    assert await store.get_response("gen-1-mine", theirs.user_id) is None
    assert await store.get_response("gen-unknown", mine.user_id) is None

    assert await store.delete_response("gen-1-mine", theirs.user_id) is False
    assert await store.get_response("gen-1-mine", mine.user_id) == kept
    assert await store.delete_response("gen-1-mine", mine.user_id) is True
    assert await store.get_response("gen-1-mine", mine.user_id) is None
    assert await store.delete_response("gen-1-mine", mine.user_id) is False


async def test_stored_responses_go_after_their_retention(
    services: Services, clock: FakeClock
) -> None:
    store = services.store
    now = clock.now
    key = await a_key(store, now)
    days = services.settings.response_retention_days
    await store.save_response(stored(key, "gen-old", now - timedelta(days=days, seconds=1)))
    await store.save_response(stored(key, "gen-new", now - timedelta(days=days - 1)))

    purged = await purge_once(services, batch=1, pause=0)

    assert purged.responses == 1
    assert await store.get_response("gen-old", key.user_id) is None
    assert await store.get_response("gen-new", key.user_id) is not None
    assert await store.purge_responses(now, 10) == 1
    assert await store.get_response("gen-new", key.user_id) is None
