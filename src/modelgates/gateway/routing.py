"""Which endpoints a request tries, in which order. No I/O.

A model lists one endpoint or several (:mod:`modelgates.catalog`); a request may add
other models (OpenRouter's ``models``) and shape the endpoint order (OpenRouter's
``provider`` object). The plan is every endpoint of every model, model by model:

- ``provider.only`` keeps the endpoints of the providers it names, ``ignore`` drops
  those it names;
- ``provider.order`` puts the providers it names first, in its order; with
  ``allow_fallbacks: false`` no other provider is tried;
- ``provider.sort: "price"`` orders each model's endpoints cheapest first;
- otherwise the catalogue's order holds, except that consecutive endpoints with a
  ``weight`` form one group whose order is drawn by weight (each request: the first
  is picked with probability ``weight / sum``, then the next among the rest, …), so
  the group shares the load;
- ``allow_fallbacks: false`` without ``order`` keeps only each model's first endpoint.

Endpoints in cool-down (:mod:`modelgates.gateway.health`) are moved behind the others.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from modelgates.catalog import ModelRoute
from modelgates.errors import BadRequest

MAX_PROVIDERS = 64
"""Most providers one list of ``provider`` may name."""
SORTS = ("price",)


@dataclass(frozen=True, slots=True)
class ProviderPreferences:
    """OpenRouter's ``provider`` object, as far as the gateway applies it."""

    order: tuple[str, ...] = ()
    only: tuple[str, ...] | None = None
    ignore: tuple[str, ...] = ()
    allow_fallbacks: bool = True
    sort: str | None = None


def preferences(body: dict[str, Any]) -> ProviderPreferences | None:
    """The body's ``provider`` object (``None`` when absent), or 400 naming the field.
    Fields the gateway does not apply (``data_collection``, ``quantizations``…) are
    accepted and ignored, as OpenRouter's SDKs send some of them by default."""
    raw = body.get("provider")
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise BadRequest("provider must be an object", field="provider")
    sort = raw.get("sort")
    if sort is not None and sort not in SORTS:
        raise BadRequest(f"provider.sort must be one of: {', '.join(SORTS)}", field="provider")
    allow = raw.get("allow_fallbacks", True)
    if allow is None:
        allow = True
    if not isinstance(allow, bool):
        raise BadRequest("provider.allow_fallbacks must be a boolean", field="provider")
    only = raw.get("only")
    return ProviderPreferences(
        order=_names(raw.get("order"), "order") or (),
        only=None if only is None else _names(only, "only"),
        ignore=_names(raw.get("ignore"), "ignore") or (),
        allow_fallbacks=allow,
        sort=sort,
    )


def _names(value: object, name: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or len(value) > MAX_PROVIDERS
        or not all(isinstance(item, str) and item for item in value)
    ):
        raise BadRequest(
            f"provider.{name} must be a list of at most {MAX_PROVIDERS} provider names",
            field="provider",
        )
    return tuple(value)


def plan(
    models: Sequence[ModelRoute],
    prefs: ProviderPreferences | None,
    *,
    pick: Callable[[], float] = random.random,
) -> list[ModelRoute]:
    """Every endpoint to try, in order (module docstring); ``pick`` draws the weighted
    orders (a number in [0, 1))."""
    ordered: list[ModelRoute] = []
    for model in models:
        endpoints = [e for e in model.candidates if _kept(e, prefs)]
        if prefs is not None and prefs.sort == "price":
            endpoints.sort(key=_price_key)
        else:
            endpoints = _weighted(endpoints, pick)
        if prefs is not None and prefs.order:
            rank = {name: index for index, name in enumerate(prefs.order)}
            named = sorted(
                (e for e in endpoints if e.provider.name in rank),
                key=lambda e: rank[e.provider.name],
            )
            rest = [e for e in endpoints if e.provider.name not in rank]
            endpoints = named if not prefs.allow_fallbacks else named + rest
        elif prefs is not None and not prefs.allow_fallbacks:
            endpoints = endpoints[:1]
        ordered.extend(endpoints)
    return ordered


def _kept(endpoint: ModelRoute, prefs: ProviderPreferences | None) -> bool:
    if prefs is None:
        return True
    name = endpoint.provider.name
    return (prefs.only is None or name in prefs.only) and name not in prefs.ignore


def _price_key(endpoint: ModelRoute) -> tuple[int, int, int]:
    price = endpoint.price
    return (price.prompt + price.completion, price.request, price.prompt)


def _weighted(endpoints: list[ModelRoute], pick: Callable[[], float]) -> list[ModelRoute]:
    """``endpoints`` with each run of weighted ones in an order drawn by weight."""
    if all(e.weight is None for e in endpoints):
        return endpoints
    out: list[ModelRoute] = []
    group: list[ModelRoute] = []
    for endpoint in [*endpoints, None]:
        if endpoint is not None and endpoint.weight is not None:
            group.append(endpoint)
            continue
        while group:
            total = sum(e.weight or 0 for e in group)
            point = pick() * total
            for index, member in enumerate(group):
                point -= member.weight or 0
                if point < 0 or index == len(group) - 1:
                    out.append(group.pop(index))
                    break
        if endpoint is not None:
            out.append(endpoint)
    return out
