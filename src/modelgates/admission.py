"""Admission arithmetic: does a request's worst case fit every budget it draws on? No I/O.

A request *asks* for a fixed amount (its prompt at the dearest input price, plus
any per-request price) and output tokens at a price. Each budget it draws on (the
key's own limit, the limit of the key that minted it, the budget of the key's user)
has some credit
``remaining`` = limit − spend in the window − other live reservations. The request
is admitted only if its whole worst case fits every one of them, so that spend
can never pass a limit, however many requests run at once::

    amount(t)  = fixed + ceil(t × per_million / 1e6)        (nano-dollars, t output tokens)
    afford(R)  = the largest t with amount(t) ≤ R           (−1 when not even t = 0 fits)

* The request named its output bound ``t`` (``max_tokens`` × outputs): admitted
  iff ``t ≤ afford(R)`` for every budget; the reservation is ``amount(t)``.
* It named none: it is granted ``t = min(cap, afford(R) over all budgets)`` output
  tokens (the caller sets ``max_tokens`` to that), admitted iff ``t ≥ 1``.

The stores run this decision while holding the budgets' locks (the user's first,
then the keys'): SQLite calls :func:`decide`; PostgreSQL's ``modelgates_reserve``
(migration 0010) is the same arithmetic in PL/pgSQL. Both are tested against the
same cases.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from modelgates.gateway.usage import MAX_TOKENS
from modelgates.models import Refusal
from modelgates.money import MAX_CHARGE_NANOS, ceil_div

TOKENS_PER_PRICE_UNIT = 1_000_000

Scope = Literal["key_limit", "parent_key", "user_budget"]
PRECEDENCE: dict[Scope, int] = {"key_limit": 0, "parent_key": 1, "user_budget": 2}
"""Which refusal answers when several budgets refuse: the key's own limit (403), then
the minting key's (403), then the user's budget (402)."""
LimitKind = Literal["daily", "weekly", "monthly", "total"]


@dataclass(frozen=True, slots=True)
class Ask:
    """A request's worst case, as the budgets see it."""

    fixed: int
    """Nano-dollars owed whatever the output: prompt worst case plus request price."""
    per_million: int
    """Nano-dollars per million output tokens (price × outputs per request)."""
    tokens: int | None
    """Output tokens the request may produce (its own ``max_tokens``), or ``None``."""
    cap: int
    """Most output tokens to grant when ``tokens`` is ``None``."""

    def amount(self, tokens: int) -> int:
        """Nano-dollars to reserve for ``tokens`` output tokens (at most MAX_CHARGE_NANOS)."""
        worst = self.fixed + ceil_div(tokens * self.per_million, TOKENS_PER_PRICE_UNIT)
        return min(worst, MAX_CHARGE_NANOS)

    def affordable(self, remaining: int) -> int:
        """The most output tokens whose amount fits ``remaining``; −1 if none does."""
        if self.fixed > remaining:
            return -1
        if self.per_million == 0:
            return MAX_TOKENS
        return min(MAX_TOKENS, (remaining - self.fixed) * TOKENS_PER_PRICE_UNIT // self.per_million)


@dataclass(frozen=True, slots=True)
class Budget:
    """One limit a request draws on, as locked for the decision."""

    scope: Scope
    kind: LimitKind
    remaining: int
    """Limit minus window spend minus other live reservations (may be negative)."""


@dataclass(frozen=True, slots=True)
class Decision:
    amount: int = 0
    granted_tokens: int | None = None
    refusal: Refusal | None = None


def decide(budgets: list[Budget], ask: Ask) -> Decision:
    """Admit ``ask`` against every budget, or name the one that refuses.

    Where several refuse, the keys' limits answer before the user's budget (they are
    the ones the key's holder can see and change), in :data:`PRECEDENCE`; the
    affordable count is that budget's.
    """
    affordable = [(budget, ask.affordable(budget.remaining)) for budget in budgets]
    needed = min(1, ask.cap) if ask.tokens is None else ask.tokens
    refusing = [(budget, tokens) for budget, tokens in affordable if tokens < needed]
    if refusing:
        budget, tokens = min(refusing, key=lambda pair: PRECEDENCE[pair[0].scope])
        return Decision(refusal=Refusal(budget.scope, budget.kind, max(0, tokens)))
    if ask.tokens is not None:
        return Decision(amount=ask.amount(ask.tokens))
    granted = min([ask.cap, *(tokens for _, tokens in affordable)])
    return Decision(amount=ask.amount(granted), granted_tokens=granted)
