"""Generation records: who may read one, and how long they are kept."""

from __future__ import annotations

from modelgates.errors import BadRequest, NotFound
from modelgates.models import ApiKey, Generation
from modelgates.store import Store

GENERATION_NOT_FOUND = "Generation not found"
MAX_ID_LENGTH = 200


class GenerationService:
    """Reads generation records on behalf of a key."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def get_for(self, caller: ApiKey, generation_id: str | None) -> Generation:
        """The record ``generation_id`` if it belongs to the caller's user (any of the
        user's keys may read it, management keys included); 404 for anything else
        (unknown, purged or another user's: all look alike), 400 without an id."""
        if not generation_id:
            raise BadRequest("id is required", field="id")
        if len(generation_id) > MAX_ID_LENGTH:
            raise NotFound(GENERATION_NOT_FOUND)
        record = await self._store.get_generation(generation_id)
        if record is None or record.user_id != caller.user_id:
            raise NotFound(GENERATION_NOT_FOUND)
        return record
