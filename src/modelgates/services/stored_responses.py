"""Responses kept for the Responses API (``store: true``): who may read one, and what a
later request continues from it.

A stored response belongs to the user of the key that made it: any key of that user
may continue it (``previous_response_id``), read it or delete it; to everyone else,
it does not exist (404, like an unknown, deleted or purged one). It holds the whole
conversation it answered, so continuing it is one read, whatever the chain's length.
"""

from __future__ import annotations

import logging
from typing import Any

from modelgates.errors import BadRequest, NotFound
from modelgates.models import ApiKey, StoredResponse
from modelgates.services import Clock, system_clock
from modelgates.store import Store

log = logging.getLogger(__name__)

RESPONSE_NOT_FOUND = "Response not found"
MAX_ID_LENGTH = 200


def input_items(value: object) -> list[Any]:
    """A request's ``input`` as items: a string is one user message, absence is none."""
    if value is None:
        return []
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value}]
    return list(value) if isinstance(value, list) else []


class StoredResponses:
    """Keeps, reads and deletes stored responses on behalf of a key."""

    def __init__(self, store: Store, *, clock: Clock = system_clock) -> None:
        self._store = store
        self._clock = clock

    async def get_for(
        self, caller: ApiKey, response_id: object, *, field: str = "id"
    ) -> StoredResponse:
        """The stored response if it is the caller's user's; else 404 naming ``field``."""
        if not isinstance(response_id, str):
            raise BadRequest(f"{field} must be a string", field=field)
        found = None
        if 0 < len(response_id) <= MAX_ID_LENGTH and "\x00" not in response_id:
            found = await self._store.get_response(response_id, caller.user_id)
        if found is None:
            raise NotFound(RESPONSE_NOT_FOUND, metadata={"field": field})
        return found

    async def history(self, caller: ApiKey, response_id: object) -> list[Any]:
        """What a request naming ``previous_response_id`` continues: the stored
        conversation, then the stored response's output items."""
        stored = await self.get_for(caller, response_id, field="previous_response_id")
        output = stored.response.get("output")
        return [*stored.input, *(output if isinstance(output, list) else [])]

    async def delete_for(self, caller: ApiKey, response_id: str) -> None:
        """Delete the caller's user's stored response, or 404."""
        deleted = (
            len(response_id) <= MAX_ID_LENGTH
            and "\x00" not in response_id
            and await self._store.delete_response(response_id, caller.user_id)
        )
        if not deleted:
            raise NotFound(RESPONSE_NOT_FOUND)

    async def keep(self, caller: ApiKey, conversation: list[Any], response: dict[str, Any]) -> None:
        """Store ``response`` (its ``id`` is the generation id) with the conversation it
        answered. The request is paid for by now, so a database failure here is logged,
        never the client's error: the answer is still delivered, only unstored."""
        stored = StoredResponse(
            id=str(response.get("id")),
            user_id=caller.user_id,
            key_hash=caller.hash,
            created_at=self._clock(),
            input=conversation,
            response=response,
        )
        try:
            await self._store.save_response(stored)
        except Exception:
            log.exception("response %s was answered but could not be stored", stored.id)
