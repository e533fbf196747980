"""``GET /api/v1/activity``: the caller's user's spend per UTC day, model and endpoint,
in OpenRouter's shape (management keys only, as there).

Unlike OpenRouter, which shows completed days only, today is included: its row
grows with each charge.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from modelgates.api.responses import JSONResponse
from modelgates.api.state import services
from modelgates.errors import BadRequest
from modelgates.money import to_usd
from modelgates.services.activity import ActivityRow

_PARAMETERS = ("date", "api_key_hash")


async def get_activity(request: Request) -> Response:
    svc = services(request)
    caller = await svc.keys.authenticate_management(request.headers.get("authorization"))
    for name in _PARAMETERS:
        if len(request.query_params.getlist(name)) > 1:
            raise BadRequest(f"{name} may be given once", field=name)
    found = await svc.activity.for_api(
        caller, request.query_params.get("date"), request.query_params.get("api_key_hash")
    )
    return JSONResponse({"data": [activity_item(row) for row in found]})


def activity_item(row: ActivityRow) -> dict[str, Any]:
    """OpenRouter's ``ActivityItem`` for ``row`` (BYOK is not offered: its usage is 0)."""
    return {
        "date": row.day.isoformat(),
        "model": row.model,
        "model_permaslug": row.model,
        "endpoint_id": row.endpoint_id,
        "provider_name": row.provider_name,
        "usage": to_usd(row.cost),
        "byok_usage_inference": 0.0,
        "requests": row.requests,
        "prompt_tokens": row.prompt_tokens,
        "completion_tokens": row.completion_tokens,
        "reasoning_tokens": row.reasoning_tokens,
        "cached_tokens": row.cached_tokens,
    }
