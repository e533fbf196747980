"""``POST /api/v1/keys/{hash}/rotate``: a new secret for one of the management key's user's
keys, with its settings, usage and records kept (:mod:`modelgates.services.rotation`).
The body is optional: ``{"grace_period_seconds": N}`` keeps the old secret working for N
seconds (default 0, at most 30 days)."""

from __future__ import annotations

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from modelgates.api.body import decode_json, is_json_content_type, read_body
from modelgates.api.key_views import key_object
from modelgates.api.responses import JSONResponse
from modelgates.api.state import services
from modelgates.errors import BadRequest
from modelgates.services import audit
from modelgates.timestamps import isoformat


class RotateKeyBody(msgspec.Struct, forbid_unknown_fields=False):
    """Request body of ``rotate-key``; unknown fields are ignored."""

    grace_period_seconds: int = 0


async def rotate_key(request: Request) -> Response:
    svc = services(request)
    caller = await svc.keys.authenticate_management(request.headers.get("authorization"))
    if not is_json_content_type(request.headers.get("content-type")):
        raise BadRequest("Content-Type must be application/json")
    raw = await read_body(request, svc.settings.max_body_bytes)
    body = decode_json(raw, RotateKeyBody) if raw.strip() else RotateKeyBody()
    rotated = await svc.rotation.rotate(
        caller.user_id,
        request.path_params["hash"],
        grace_seconds=body.grace_period_seconds,
        actor=audit.key_actor(caller),
    )
    user = await svc.users.get(caller.user_id)
    return JSONResponse(
        {
            "data": key_object(rotated.record, user, svc.clock()),
            "key": rotated.secret,
            "previous": {
                "hash": rotated.previous_hash,
                "works_until": isoformat(rotated.grace_until),
            },
        }
    )
