"""The catalogue routes: ``/models`` (and ``/count``, ``/user``, ``/{author}/{slug}/endpoints``),
``/embeddings/models`` and ``/providers``, in OpenRouter's shapes
(:mod:`modelgates.api.model_objects`).

Lists are filtered by ``output_modalities`` (comma-separated, or ``all``; default
``text``, as OpenRouter does; ``embeddings`` on ``/embeddings/models``) and
``supported_parameters`` (models that take all of them), and paged by ``offset`` and
``limit`` (OpenRouter's SDKs) or by ``after_id`` / ``before_id`` (Anthropic's). Every
list but ``/models/user`` is public, as OpenRouter's are.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from modelgates import allowlist
from modelgates.api.metered import MANAGEMENT_KEY
from modelgates.api.model_objects import (
    endpoints_object,
    model_object,
    provider_object,
)
from modelgates.api.responses import JSONResponse
from modelgates.api.state import services
from modelgates.catalog import ModelRoute
from modelgates.errors import BadRequest, Forbidden, NotFound
from modelgates.model_card import OUTPUT_MODALITIES

DEFAULT_LIMIT = 500
MAX_LIMIT = 1000
MAX_OFFSET = 2**31 - 1
LISTED_OUTPUTS = (*OUTPUT_MODALITIES, "rerank", "speech", "transcription")
"""What ``output_modalities`` may name (OpenRouter's values); ``all`` names every one."""
_DIGITS = re.compile(r"[0-9]{1,10}")
MODEL_NOT_FOUND = "Model not found"


async def list_models(request: Request) -> Response:
    return JSONResponse(_page(request, _filtered(request, _routes(request))))


async def count_models(request: Request) -> Response:
    return JSONResponse({"data": {"count": len(_filtered(request, _routes(request)))}})


async def list_user_models(request: Request) -> Response:
    """The models the calling key may use: the catalogue within its allowlist."""
    svc = services(request)
    key = await svc.keys.authenticate(request.headers.get("authorization"))
    if key.is_management:
        raise Forbidden(MANAGEMENT_KEY)
    usable = [route for route in _routes(request) if allowlist.allows(key.allowed_models, route.id)]
    return JSONResponse(_page(request, _filtered(request, usable)))


async def list_embeddings_models(request: Request) -> Response:
    return JSONResponse(_page(request, _filtered(request, _routes(request), ("embeddings",))))


async def model_endpoints(request: Request) -> Response:
    model_id = f"{request.path_params['author']}/{request.path_params['slug']}"
    route = services(request).gateway.models.get(model_id)
    if route is None:
        raise NotFound(MODEL_NOT_FOUND)
    return JSONResponse({"data": endpoints_object(route)})


async def list_providers(request: Request) -> Response:
    providers = services(request).gateway.providers.values()
    return JSONResponse({"data": [provider_object(provider) for provider in providers]})


def _routes(request: Request) -> list[ModelRoute]:
    return list(services(request).gateway.models.values())


def _names(request: Request, name: str) -> list[str] | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    return [part.strip() for part in raw.split(",") if part.strip()]


def _filtered(
    request: Request, routes: Iterable[ModelRoute], outputs: tuple[str, ...] = ("text",)
) -> list[ModelRoute]:
    """The routes whose card matches the query's ``output_modalities`` (default
    ``outputs``) and ``supported_parameters``."""
    asked = _names(request, "output_modalities")
    if asked is not None:
        for value in asked:
            if value != "all" and value not in LISTED_OUTPUTS:
                raise BadRequest(
                    f"output_modalities: {value[:50]!r} is not one of {', '.join(LISTED_OUTPUTS)}"
                    " or all",
                    field="output_modalities",
                )
        outputs = () if "all" in asked or not asked else tuple(asked)
    needed = _names(request, "supported_parameters") or []
    return [
        route
        for route in routes
        if (not outputs or any(out in outputs for out in route.about.output_modalities))
        and all(name in route.about.supported_parameters for name in needed)
    ]


def _number(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not _DIGITS.fullmatch(raw) or not low <= int(raw) <= high:
        raise BadRequest(f"{name} must be an integer from {low} to {high}", field=name)
    return int(raw)


def _cursor(request: Request, name: str, ids: list[str]) -> int | None:
    """The position of the model the cursor names (``after_id``/``before_id``)."""
    model_id = request.query_params.get(name)
    if model_id is None:
        return None
    try:
        return ids.index(model_id)
    except ValueError:
        raise BadRequest(f"{name} names no listed model", field=name) from None


def _page(request: Request, routes: list[ModelRoute]) -> dict[str, Any]:
    """One page of ``routes`` with OpenRouter's ``total_count`` and ``links.next`` and
    Anthropic's ``has_more``, ``first_id`` and ``last_id``."""
    offset = _number(request, "offset", 0, 0, MAX_OFFSET)
    limit = _number(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    ids = [route.id for route in routes]
    after = _cursor(request, "after_id", ids)
    before = _cursor(request, "before_id", ids)
    rest = routes[(after + 1 if after is not None else 0) : before]
    if before is not None:  # the page just before the cursor
        page = rest[max(0, len(rest) - limit) :]
        more = len(rest) > limit
        following = None
    else:
        page = rest[offset : offset + limit]
        more = offset + limit < len(rest)
        following = offset + len(page)
    next_url = None
    if more and following is not None:
        next_url = str(request.url.include_query_params(offset=following, limit=limit))
    data = [model_object(route) for route in page]
    return {
        "object": "list",
        "data": data,
        "total_count": len(routes),
        "links": {"next": next_url},
        "has_more": more,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }
