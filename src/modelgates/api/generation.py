"""``GET /api/v1/generation?id=gen-…``: the record of one metered request, in OpenRouter's shape.

Its token counts and cost are exactly what the request's answer reported. The
record exists as soon as the answer has ended, so clients never need to retry.
"""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from modelgates.api.responses import JSONResponse
from modelgates.api.state import services
from modelgates.models import Generation
from modelgates.money import to_usd
from modelgates.timestamps import isoformat

_OPENROUTER_API_TYPE = {"embeddings": "embeddings"}
"""OpenRouter's coarse ``api_type``: every generating protocol is ``completions``."""


async def get_generation(request: Request) -> Response:
    svc = services(request)
    key = await svc.keys.authenticate(request.headers.get("authorization"))
    record = await svc.generations.get_for(key, request.query_params.get("id"))
    workspace_id = await svc.users.workspace_id(key.user_id)
    return JSONResponse({"data": generation_data(record, workspace_id)})


def generation_data(record: Generation, workspace_id: str | None) -> dict[str, Any]:
    """OpenRouter's ``GenerationResponseData`` for ``record``."""
    cost = to_usd(record.cost)
    return {
        "id": record.id,
        "upstream_id": record.upstream_id,
        "total_cost": cost,
        "usage": cost,
        "cache_discount": None,
        "upstream_inference_cost": None,
        "created_at": isoformat(record.created_at),
        "model": record.model,
        "app_id": record.app_id,
        "streamed": record.streamed,
        "cancelled": record.cancelled,
        "provider_name": record.provider,
        "latency": record.latency_ms,
        "moderation_latency": None,
        "generation_time": record.generation_time_ms,
        "finish_reason": record.finish_reason,
        "native_finish_reason": record.native_finish_reason,
        "tokens_prompt": record.prompt_tokens,
        "tokens_completion": record.completion_tokens,
        "native_tokens_prompt": record.native_tokens_prompt,
        "native_tokens_completion": record.native_tokens_completion,
        "native_tokens_reasoning": record.native_tokens_reasoning,
        "native_tokens_cached": record.native_tokens_cached,
        "native_tokens_completion_images": None,
        "num_media_prompt": None,
        "num_input_audio_prompt": None,
        "num_media_completion": None,
        "num_search_results": None,
        "num_fetches": None,
        "origin": record.origin or "",
        "http_referer": record.referer,
        "user_agent": record.user_agent,
        "is_byok": False,
        "external_user": record.external_user,
        "api_type": _OPENROUTER_API_TYPE.get(record.api_type, "completions"),
        "router": None,
        "session_id": record.session_id,
        "workspace_id": workspace_id,
        "data_region": "global",
        "preset_id": None,
        "provider_responses": provider_responses(record),
        "service_tier": None,
        "web_search_engine": None,
        # ModelGates' own details of the charge.
        "protocol": record.api_type,
        "estimated": record.estimated,
        "usage_exceeded_reservation": record.usage_exceeded_reservation,
        "tokens_reasoning": record.reasoning_tokens,
        "tokens_cached": record.cached_tokens,
        "tokens_cache_write": record.cache_write_tokens,
        "reserved": to_usd(record.reserved),
        "cost_details": {
            "prompt": to_usd(record.prompt_cost),
            "completion": to_usd(record.completion_cost),
            "request": to_usd(record.request_cost),
        },
    }


def provider_responses(record: Generation) -> list[dict[str, Any]] | None:
    """OpenRouter's ``provider_responses``: each endpoint a routed request tried, the
    serving one last (``None`` for a request with one endpoint to try)."""
    if record.attempts is None:
        return None
    try:
        attempts = msgspec.json.decode(record.attempts)
    except msgspec.DecodeError:
        return None
    return [
        {
            "provider_name": a.get("provider"),
            "model_permaslug": a.get("model"),
            "upstream_model": a.get("upstream_model"),
            "status": a.get("status") or (200 if a.get("outcome") == "success" else None),
            "outcome": a.get("outcome"),
            "latency": a.get("latency_ms"),
        }
        for a in attempts
        if isinstance(a, dict)
    ]
