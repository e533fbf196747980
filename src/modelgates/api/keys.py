"""``GET /api/v1/key`` (alias ``/api/v1/auth/key``): the calling key's own data."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from modelgates.api.key_views import current_key_data
from modelgates.api.responses import JSONResponse
from modelgates.api.state import services


async def current_key(request: Request) -> Response:
    svc = services(request)
    key = await svc.keys.authenticate(request.headers.get("authorization"))
    workspace_id = await svc.users.workspace_id(key.user_id)
    budgets = await svc.keys.budgets(key)
    return JSONResponse({"data": current_key_data(key, workspace_id, svc.clock(), budgets)})
