"""``GET /api/v1/models``: the configured models and their prices."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from modelgates.api.responses import JSONResponse
from modelgates.api.state import services
from modelgates.catalog import ModelRoute
from modelgates.money import NANOS_PER_USD

TOKENS_PER_PRICE_UNIT = 1_000_000


async def list_models(request: Request) -> Response:
    gateway = services(request).gateway
    return JSONResponse(
        {"object": "list", "data": [model_object(route) for route in gateway.models.values()]}
    )


def model_object(route: ModelRoute) -> dict[str, Any]:
    return {
        "id": route.id,
        "object": "model",
        "created": 0,
        "owned_by": route.provider.name,
        "name": route.id,
        "context_length": route.context_length,
        "pricing": pricing(route),
    }


def pricing(route: ModelRoute) -> dict[str, str]:
    """OpenRouter's pricing strings: USD per token (and per request), as charged."""
    price = route.price

    def per_token(nanos_per_million: int) -> str:
        return _usd(nanos_per_million / TOKENS_PER_PRICE_UNIT)

    return {
        "prompt": per_token(price.prompt),
        "completion": per_token(price.completion),
        "request": _usd(price.request),
        "image": "0",
        "input_cache_read": per_token(price.cache_read_price),
        "input_cache_write": per_token(price.cache_write_price),
        "internal_reasoning": per_token(price.reasoning_price),
    }


def _usd(nanos: float) -> str:
    return f"{nanos / NANOS_PER_USD:.12g}"
