"""Metering against budgets: reserve a request's worst case before forwarding, charge after.

Life cycle of one metered request (Unkey-style credits, LiteLLM-style reservation)::

    admit  ──► reservation row (amount = worst case, expires_at = now + TTL)
      │            │
      │            ├─ settle:  delete reservation + insert generation record + add cost
      │            │           to the key's counters (one transaction); the cost is
      │            │           never more than the reservation
      │            ├─ release: delete reservation, no charge (the upstream served nothing)
      │            └─ crash:   the row expires and stops counting; nothing is charged
      └─ refuse when window spend + live reservations + this worst case > limit, for
         the key's own limit or the limit of the key that minted it (403), or the
         budget of the key's user (402; a key's refusal answers first)

Invariant: admission is serialised per budget (row locks, the user's first / the
SQLite write lock) and counts every live reservation plus the request's own worst
case, and a charge never exceeds its reservation, so spend never exceeds a limit or a
budget, under any concurrency, across processes. ``usage == sum(generations)`` holds
for every key and every user because the record and the counter updates (the key's
and its user's) share one transaction.

A key without a budget (no limit of its own, not minted by another key, its user
without a budget) is admitted without a reservation: nothing can refuse it, so the
write would only cost time. Should a limit or a user budget be set meanwhile, the
requests already in flight are not counted against it until they settle. Whether the
key or its user has a budget is read with the key, through the key cache
(:mod:`modelgates.keycache`), so a budget set on any worker applies within 1 s (on
SQLite from the next request). A key that has one is admitted on its row and its user's,
read again under their locks, never on the key it was given: a change of a budget, or
a user's disabling, applies to it at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from modelgates import metrics
from modelgates.admission import Ask
from modelgates.errors import Forbidden, PaymentRequired, Unauthorized
from modelgates.models import ApiKey, Generation
from modelgates.money import MAX_CHARGE_NANOS
from modelgates.pricing import limit_message
from modelgates.services import Clock, system_clock
from modelgates.services.keys import INVALID_KEY, USER_DISABLED
from modelgates.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Ticket:
    """An admitted request: its reservation, and the most it may be charged."""

    id: str
    """The reservation's id: the generation id of the request."""
    key: ApiKey
    reserved: int
    """Nano-dollars held (0 for a key without a budget)."""
    bound: int
    """Nano-dollars the charge is capped at: the reservation (without one, the most any
    one request may cost)."""
    granted_tokens: int | None
    """Output tokens granted to a request that named no bound (its ``max_tokens``)."""
    admitted_at: datetime


class MeteringService:
    """Admission and settlement of metered requests against their budgets."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Clock = system_clock,
        ttl_seconds: float = 900.0,
        alert_thresholds: Sequence[int] = (),
        on_alerts: Callable[[], None] | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._ttl = timedelta(seconds=ttl_seconds)
        self._thresholds = tuple(alert_thresholds)
        self._on_alerts = on_alerts

    async def admit(self, key: ApiKey, ask: Ask, generation_id: str) -> Ticket:
        """Reserve the worst case of ``ask`` on every budget of ``key``, or raise 403
        naming the key's limit, or 402 naming the user's budget (and what the request
        could still afford)."""
        now = self._clock()
        if key.limit is None and key.parent_key_hash is None and not key.user_budgeted:
            # Nothing to refuse, nothing reserved (module docstring): only the bounds of
            # sound usage and of one charge apply.
            return Ticket(generation_id, key, 0, MAX_CHARGE_NANOS, None, now)
        admission = await self._store.reserve(key.hash, generation_id, ask, now, now + self._ttl)
        if admission.key is None:
            raise Unauthorized(INVALID_KEY)
        if admission.user_disabled:
            raise Unauthorized(USER_DISABLED)
        if admission.refused is not None:
            refusal = admission.refused
            metadata: dict[str, object] = {"limit": refusal.kind, "budget": refusal.scope}
            if ask.tokens is not None:
                metadata["requested_tokens"] = ask.tokens
                metadata["affordable_tokens"] = refusal.affordable_tokens
            refused = PaymentRequired if refusal.scope == "user_budget" else Forbidden
            raise refused(limit_message(refusal, ask.tokens), metadata=metadata)
        return Ticket(
            generation_id, admission.key, admission.amount, admission.amount,
            admission.granted_tokens, now,
        )  # fmt: skip

    def capped(self, ticket: Ticket, cost: int) -> tuple[int, bool]:
        """The amount to charge for ``cost``, and whether the cap cut it: a charge never
        exceeds the request's reservation (or worst case). A cut is counted and logged."""
        if cost <= ticket.bound:
            return cost, False
        metrics.USAGE_EXCEEDED_RESERVATION.inc()
        log.warning(
            "generation %s: upstream usage costs %d nano-dollars, more than the %d reserved;"
            " charged the reservation",
            ticket.id, cost, ticket.bound,
        )  # fmt: skip
        return ticket.bound, True

    async def settle(self, ticket: Ticket, record: Generation) -> None:
        """Charge ``record.cost`` (already capped), write the record, drop the reservation,
        and record the budget alerts the charge fired (same transaction)."""
        fired = await self._store.settle(ticket.id, record, self._thresholds)
        metrics.SPEND_CHARGED.inc(record.cost)
        if fired and self._on_alerts is not None:
            self._on_alerts()

    async def release(self, ticket: Ticket) -> None:
        """Drop the reservation without charging."""
        if ticket.reserved:
            await self._store.release(ticket.id)
