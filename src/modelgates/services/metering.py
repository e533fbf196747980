"""Metering: reserve a request's worst case before forwarding, settle its real cost after.

Life cycle of one metered request (Unkey-style credits, LiteLLM-style reservation)::

    admit  ──► reservation row (amount = worst case, expires_at = now + TTL)
      │            │
      │            ├─ settle:  delete reservation + insert charge + add cost to counters
      │            │           (one transaction; the charge is the real or estimated cost)
      │            ├─ release: delete reservation, no charge (the upstream served nothing)
      │            └─ crash:   the row expires and stops counting; nothing is charged
      └─ refuse (403) when window spend + live reservations ≥ limit

Invariant: admission is serialised per key (row lock / SQLite write lock) and
counts every live reservation, so while spend + reservations stays under the
limit each admitted request is covered by its own reservation; only the last
one admitted before the limit is reached can push spend past it, by at most
its own cost. ``usage == sum(charges)`` holds because the charge row and the
counter update share one transaction.

A key without a limit (as authenticated for this request) is admitted without a
reservation: nothing can refuse it, so the write would only cost time. Should a
limit be set on it meanwhile, the requests already in flight are not counted
against that limit until they settle.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from modelgates import metrics
from modelgates.errors import Forbidden, Unauthorized
from modelgates.models import ApiKey, Charge
from modelgates.pricing import Price, limit_message
from modelgates.services import Clock, system_clock
from modelgates.services.keys import INVALID_KEY
from modelgates.store import Store


@dataclass(frozen=True, slots=True)
class Ticket:
    """An admitted request: its reservation and what it will be charged by."""

    id: str
    key_hash: str
    model: str
    price: Price
    reserved: int


class MeteringService:
    """Admission and settlement of metered requests against key limits."""

    def __init__(
        self, store: Store, *, clock: Clock = system_clock, ttl_seconds: float = 900.0
    ) -> None:
        self._store = store
        self._clock = clock
        self._ttl = timedelta(seconds=ttl_seconds)

    async def admit(self, key: ApiKey, model: str, price: Price, amount: int) -> Ticket:
        """Reserve ``amount`` nano-dollars on ``key`` or raise 403 naming the limit."""
        ticket = Ticket(uuid.uuid4().hex, key.hash, model, price, amount)
        if key.limit is None:
            return ticket  # nothing to refuse, so nothing to reserve (module docstring)
        now = self._clock()
        admission = await self._store.reserve(key.hash, ticket.id, amount, now, now + self._ttl)
        if admission.key is None:
            raise Unauthorized(INVALID_KEY)
        if admission.refused is not None:
            raise Forbidden(limit_message(admission.refused))
        return ticket

    async def settle(
        self, ticket: Ticket, prompt_tokens: int, completion_tokens: int, *, estimated: bool
    ) -> int:
        """Charge the request's cost (returned, nano-dollars) and drop its reservation."""
        prompt_tokens = max(0, prompt_tokens)
        completion_tokens = max(0, completion_tokens)
        cost = ticket.price.cost(prompt_tokens, completion_tokens)
        await self._store.settle(
            ticket.id,
            Charge(
                id=ticket.id,
                key_hash=ticket.key_hash,
                model=ticket.model,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                cost=cost,
                estimated=estimated,
                created_at=self._clock(),
            ),
        )
        metrics.SPEND_CHARGED.inc(cost)
        return cost

    async def release(self, ticket: Ticket) -> None:
        """Drop the reservation without charging."""
        await self._store.release(ticket.id)
