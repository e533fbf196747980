"""Cost arithmetic for metered requests, free of I/O.

Prices are configured in USD per million tokens and held as integer
nano-dollars per million tokens, so a cost is one exact integer division:

    cost_nanos = ceil((prompt_tokens × prompt_price + completion_tokens × completion_price)
                      / 1_000_000)

rounded up once, on the sum (a request is never cheaper than its tokens).

Estimates, used where the upstream reports no usage or a stream was cut short:

* prompt tokens ≈ ceil(UTF-8 bytes of the JSON-encoded prompt field / 4)
  (``messages``, ``prompt`` or ``input``);
* completion tokens ≈ ceil(UTF-8 bytes of generated text / 4).

The reservation taken before forwarding is the request's worst case: the
prompt estimate plus ``max_tokens`` at the completion price, or the
configured ``max_request_cost`` when the request sets no ``max_tokens``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from modelgates.models import ApiKey
from modelgates.money import to_nanos

TOKENS_PER_PRICE_UNIT = 1_000_000
BYTES_PER_TOKEN = 4

LimitKind = Literal["daily", "weekly", "monthly", "total"]


@dataclass(frozen=True, slots=True)
class Price:
    """A model's price, as integer nano-dollars per million tokens."""

    prompt: int
    completion: int

    @classmethod
    def per_million_usd(cls, prompt: float, completion: float) -> Price:
        return cls(prompt=to_nanos(prompt), completion=to_nanos(completion))

    def cost(self, prompt_tokens: int, completion_tokens: int) -> int:
        """Exact cost in nano-dollars, rounded up."""
        total = prompt_tokens * self.prompt + completion_tokens * self.completion
        return -(-total // TOKENS_PER_PRICE_UNIT)


def estimate_tokens(byte_count: int) -> int:
    """ceil(bytes / 4): the documented token estimate for text we could not meter."""
    return -(-max(0, byte_count) // BYTES_PER_TOKEN)


def reservation(
    price: Price, prompt_estimate: int, max_tokens: int | None, max_request_cost: int
) -> int:
    """Worst-case cost to hold before forwarding (nano-dollars)."""
    if max_tokens is None:
        return max(max_request_cost, price.cost(prompt_estimate, 0))
    return price.cost(prompt_estimate, max_tokens)


def exceeded_limit(key: ApiKey, reserved: int, now: datetime) -> LimitKind | None:
    """Which limit refuses a new request, given ``reserved`` nano-dollars in flight.

    A request is admitted while window spend plus live reservations is below
    the limit, so at most the last admitted request can overshoot it.
    """
    if key.limit is None:
        return None
    if key.usage.in_window(now, key.limit_reset) + reserved < key.limit:
        return None
    return key.limit_reset or "total"


def limit_message(kind: LimitKind) -> str:
    return f"Key limit exceeded ({kind} limit)"
