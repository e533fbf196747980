"""The admission arithmetic, prices and usage extraction: exhaustive properties, no I/O.

Whatever the budgets, the request and the upstream's report, what is admitted fits
every budget, what is charged fits what was admitted, and nothing raises.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from modelgates.admission import Ask, Budget, decide
from modelgates.catalog import ModelRoute, Provider
from modelgates.gateway import usage as usage_of
from modelgates.gateway.metered import Call, Caller, Demand, MeteredGateway
from modelgates.gateway.usage import MAX_TOKENS, Usage
from modelgates.gateway.wire import ANTHROPIC, CHAT, RESPONSES
from modelgates.models import ApiKey
from modelgates.money import MAX_CHARGE_NANOS
from modelgates.pricing import Price
from modelgates.services.metering import MeteringService, Ticket
from tests.support.clock import FakeClock

prices = st.integers(0, 10**15)  # nano-dollars per million tokens (up to $1e6)
counts = st.integers(0, MAX_TOKENS)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)


@st.composite
def asks(draw: st.DrawFn) -> Ask:
    return Ask(
        fixed=draw(st.integers(0, 10**13)),
        per_million=draw(prices),
        tokens=draw(st.none() | st.integers(0, 10**6)),
        cap=draw(st.integers(0, 10**6)),
    )


budgets = st.lists(
    st.builds(
        Budget,
        st.sampled_from(["key_limit", "parent_key"]),
        st.sampled_from(["daily", "weekly", "monthly", "total"]),
        st.integers(-(10**12), 10**15),
    ),
    max_size=2,
)


@given(budgets, asks())
def test_what_is_admitted_fits_every_budget(found: list[Budget], ask: Ask) -> None:
    decision = decide(found, ask)
    if decision.refusal is None:
        assert all(decision.amount <= budget.remaining for budget in found)
        tokens = ask.tokens if ask.tokens is not None else decision.granted_tokens
        assert tokens is not None
        assert decision.amount == ask.amount(tokens)
        if ask.tokens is None:
            assert decision.granted_tokens is not None
            assert decision.granted_tokens <= ask.cap
            assert decision.granted_tokens >= min(1, ask.cap)
    else:
        needed = ask.tokens if ask.tokens is not None else min(1, ask.cap)
        refusing = [b for b in found if ask.affordable(b.remaining) < needed]
        assert refusing
        if any(b.scope == "key_limit" for b in refusing):
            assert decision.refusal.scope == "key_limit"


@given(st.integers(-(10**12), 10**15), asks())
def test_affordable_is_the_most_that_fits(remaining: int, ask: Ask) -> None:
    tokens = ask.affordable(remaining)
    if tokens < 0:
        assert ask.fixed > remaining
        return
    assert ask.amount(tokens) <= remaining
    if ask.per_million and tokens < MAX_TOKENS and ask.amount(tokens + 1) < MAX_CHARGE_NANOS:
        assert ask.amount(tokens + 1) > remaining


@st.composite
def priced_usage(draw: st.DrawFn) -> tuple[Price, int, int, int, Usage]:
    price = Price(
        prompt=draw(prices),
        completion=draw(prices),
        cache_read=draw(st.none() | prices),
        cache_write=draw(st.none() | prices),
        reasoning=draw(st.none() | prices),
        request=draw(st.integers(0, 10**9)),
    )
    estimate = draw(st.integers(0, 10**6))
    outputs = draw(st.integers(1, 128))
    tokens = draw(st.integers(0, 10**5))
    prompt = draw(st.integers(0, estimate))
    completion = draw(st.integers(0, tokens * outputs))
    cached = draw(st.integers(0, prompt))
    written = draw(st.integers(0, prompt - cached))
    reasoning = draw(st.integers(0, completion))
    return price, estimate, outputs, tokens, Usage(prompt, completion, cached, written, reasoning)


@given(priced_usage())
def test_the_worst_case_covers_any_usage_within_the_requests_bounds(
    case: tuple[Price, int, int, int, Usage],
) -> None:
    price, estimate, outputs, tokens, usage = case
    cost = price.cost(usage)
    assert 0 <= cost.total <= price.ask(estimate, outputs, tokens, 0).amount(tokens)
    assert cost.prompt + cost.completion + cost.request == cost.total or (
        cost.total == MAX_CHARGE_NANOS
    )


@given(json_values)
def test_usage_readers_never_raise_and_return_only_sound_counts(value: Any) -> None:
    for reader in (usage_of.from_openai, usage_of.from_anthropic, usage_of.from_responses):
        found = reader(value)
        if found is not None:
            assert 0 <= found.cached_tokens + found.cache_write_tokens <= found.prompt_tokens
            assert 0 <= found.reasoning_tokens <= found.completion_tokens
            assert found.completion_tokens <= MAX_TOKENS


ROUTE = ModelRoute(
    id="a/m",
    provider=Provider("p", "http://127.0.0.1:9/v1"),
    upstream_model="m",
    price=Price.per_million_usd(1.0, 2.0),
    prompt_price_usd=1.0,
    completion_price_usd=2.0,
)
KEY = ApiKey(hash="h", user_id="u", name="k", label="k", created_at=FakeClock().now)


@given(
    st.sampled_from([CHAT, ANTHROPIC, RESPONSES]),
    st.lists(json_values, max_size=4),
    st.integers(0, 10**4),
    st.none() | st.integers(0, 10**4),
    st.integers(1, 16),
    st.integers(0, 10**9),
)
def test_any_report_settles_within_the_reservation(
    api: Any,
    reports: list[Any],
    prompt: int,
    max_tokens: int | None,
    outputs: int,
    reserved: int,
) -> None:
    """Whatever an upstream reports, in any protocol: it settles without raising, the
    charged usage is within the request's own bound, and the charge within its cap."""
    metering = MeteringService(store=None)  # type: ignore[arg-type]  # no I/O is reached
    gateway = MeteredGateway(metering, config=None)  # type: ignore[arg-type]
    meter = api.meter()
    for report in reports:
        meter.body({"usage": report, "choices": report, "content": report})
    demand = Demand(prompt, outputs=outputs, max_tokens=max_tokens)
    call = Call("chat", ROUTE, api, {}, demand, stream=False, caller=Caller(KEY))
    ticket = Ticket("gen-x", KEY, reserved, reserved, None, FakeClock().now)
    charged, estimated = gateway._charged_usage(call, ticket, meter)
    if max_tokens is not None:
        assert charged.completion_tokens <= max_tokens * outputs
    assert estimated or charged == meter.usage
    amount, _ = metering.capped(ticket, ROUTE.price.cost(charged).total)
    assert 0 <= amount <= reserved
