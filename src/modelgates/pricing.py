"""What a request costs and the most it could cost, free of I/O.

Prices are configured in USD per million tokens (and USD per request) and held
as integer nano-dollars per million tokens, so a cost is one exact integer
division, rounded up once, on the sum (a request is never cheaper than its tokens)::

    cost = ceil((uncached_prompt × prompt + cached × cache_read + cache_written × cache_write
                 + (completion − reasoning) × completion + reasoning × reasoning) / 1e6)
           + request

Cache and reasoning prices default to the prompt and completion prices.

The worst case a request is admitted against (:meth:`Price.ask`): its prompt
estimate at the dearest input price, plus its output bound (``max_tokens`` ×
outputs) at the dearest output price, plus the per-request price.
"""

from __future__ import annotations

from dataclasses import dataclass

from modelgates.admission import TOKENS_PER_PRICE_UNIT, Ask, LimitKind
from modelgates.gateway.usage import Usage
from modelgates.models import Refusal
from modelgates.money import ceil_div, clamp_charge, to_nanos

BYTES_PER_TOKEN = 4


@dataclass(frozen=True, slots=True)
class Cost:
    """A charge in nano-dollars and its parts (``usage.cost_details``)."""

    total: int
    prompt: int
    completion: int
    request: int


@dataclass(frozen=True, slots=True)
class Price:
    """A model's price: nano-dollars per million tokens, and per request."""

    prompt: int
    completion: int
    cache_read: int | None = None
    cache_write: int | None = None
    reasoning: int | None = None
    request: int = 0

    @classmethod
    def per_million_usd(
        cls,
        prompt: float,
        completion: float,
        *,
        cache_read: float | None = None,
        cache_write: float | None = None,
        reasoning: float | None = None,
        request: float = 0.0,
    ) -> Price:
        def opt(usd: float | None) -> int | None:
            return None if usd is None else to_nanos(usd)

        return cls(
            prompt=to_nanos(prompt),
            completion=to_nanos(completion),
            cache_read=opt(cache_read),
            cache_write=opt(cache_write),
            reasoning=opt(reasoning),
            request=to_nanos(request),
        )

    @property
    def cache_read_price(self) -> int:
        return self.prompt if self.cache_read is None else self.cache_read

    @property
    def cache_write_price(self) -> int:
        return self.prompt if self.cache_write is None else self.cache_write

    @property
    def reasoning_price(self) -> int:
        return self.completion if self.reasoning is None else self.reasoning

    def cost(self, usage: Usage) -> Cost:
        """Exact cost of ``usage`` in nano-dollars, rounded up once on the sum (the
        prompt part is rounded up on its own, and the completion part is the rest)."""
        uncached = usage.prompt_tokens - usage.cached_tokens - usage.cache_write_tokens
        prompt = (
            uncached * self.prompt
            + usage.cached_tokens * self.cache_read_price
            + usage.cache_write_tokens * self.cache_write_price
        )
        completion = (
            usage.completion_tokens - usage.reasoning_tokens
        ) * self.completion + usage.reasoning_tokens * self.reasoning_price
        tokens_nanos = ceil_div(prompt + completion, TOKENS_PER_PRICE_UNIT)
        prompt_nanos = min(ceil_div(prompt, TOKENS_PER_PRICE_UNIT), tokens_nanos)
        total = clamp_charge(tokens_nanos + self.request)
        return Cost(total, prompt_nanos, tokens_nanos - prompt_nanos, self.request)

    def ask(self, prompt_tokens: int, outputs: int, tokens: int | None, cap: int) -> Ask:
        """The worst case of a request: ``prompt_tokens`` in, up to ``tokens`` (or, when
        ``None``, up to ``cap``) output tokens for each of ``outputs`` outputs."""
        dearest_in = max(self.prompt, self.cache_read_price, self.cache_write_price)
        dearest_out = max(self.completion, self.reasoning_price)
        fixed = ceil_div(prompt_tokens * dearest_in, TOKENS_PER_PRICE_UNIT) + self.request
        return Ask(fixed=fixed, per_million=dearest_out * outputs, tokens=tokens, cap=cap)


def estimate_tokens(byte_count: int) -> int:
    """ceil(bytes / 4): the documented token estimate for text we could not meter."""
    return ceil_div(max(0, byte_count), BYTES_PER_TOKEN)


def limit_message(refusal: Refusal, requested: int | None) -> str:
    """The message a refused request gets (403 for a key's limit, 402 for the user's
    budget): which limit, and what it could still afford.

    With nothing left: ``Key limit exceeded (daily limit)``, ``User budget exceeded
    (monthly limit)``. With some credit left but not enough for the request's own bound,
    OpenRouter's wording follows.
    """
    head = f"{_who(refusal)} ({refusal.kind} limit)"
    if requested is None or refusal.affordable_tokens < 1:
        return head
    return (
        f"{head}: this request requires more credits, or fewer max_tokens. You requested"
        f" up to {requested} tokens, but can only afford {refusal.affordable_tokens}."
    )


def _who(refusal: Refusal) -> str:
    if refusal.scope == "parent_key":
        return "Limit of the key that minted this key exceeded"
    if refusal.scope == "user_budget":
        return "User budget exceeded"
    return "Key limit exceeded"


__all__ = ["BYTES_PER_TOKEN", "Cost", "LimitKind", "Price", "estimate_tokens", "limit_message"]
