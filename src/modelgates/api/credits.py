"""``GET /api/v1/credits``: the budget and spend of the management key's user (OpenRouter's
``getCredits``; an ordinary key gets 403, as there). The answer's shape, and what a user
without a budget reads, are :mod:`modelgates.services.budgets`'."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from modelgates.api.responses import JSONResponse
from modelgates.api.state import services
from modelgates.errors import Unauthorized
from modelgates.services.budgets import credits_data
from modelgates.services.keys import INVALID_KEY


async def get_credits(request: Request) -> Response:
    svc = services(request)
    key = await svc.keys.authenticate_management(request.headers.get("authorization"))
    user = await svc.store.get_user(key.user_id)
    if user is None:  # a key outlived its user
        raise Unauthorized(INVALID_KEY)
    return JSONResponse({"data": credits_data(user, svc.clock())})
