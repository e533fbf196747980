"""The management API, ``/api/v1/keys``: a management key lists, creates, reads,
updates and revokes the keys of its own user (OpenRouter's ``apiKeys`` operations)."""

from __future__ import annotations

import re
from typing import Literal

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from modelgates import allowlist
from modelgates.api.body import read_json
from modelgates.api.key_views import key_object
from modelgates.api.responses import JSONResponse
from modelgates.api.state import services
from modelgates.container import Services
from modelgates.errors import BadRequest
from modelgates.models import ApiKey
from modelgates.services import audit
from modelgates.services.auth_codes import parse_rfc3339
from modelgates.windows import NO_SPEND

MAX_OFFSET = 2**31 - 1
_DIGITS = re.compile(r"[0-9]{1,10}")

ResetInterval = Literal["daily", "weekly", "monthly"]


class CreateKeyBody(msgspec.Struct, forbid_unknown_fields=False):
    """Request body of ``create-keys``; unknown fields are ignored."""

    name: str
    limit: float | None = None
    limit_reset: ResetInterval | None = None
    expires_at: str | None = None
    allowed_models: list[str] | None = None


class UpdateKeyBody(msgspec.Struct, forbid_unknown_fields=False):
    """Request body of ``update-keys``: only the fields present change."""

    name: str | msgspec.UnsetType = msgspec.UNSET
    disabled: bool | msgspec.UnsetType = msgspec.UNSET
    limit: float | msgspec.UnsetType | None = msgspec.UNSET
    limit_reset: ResetInterval | msgspec.UnsetType | None = msgspec.UNSET
    allowed_models: list[str] | msgspec.UnsetType | None = msgspec.UNSET


def _offset(request: Request) -> int:
    raw = request.query_params.get("offset")
    if raw is None:
        return 0
    if not _DIGITS.fullmatch(raw) or int(raw) > MAX_OFFSET:
        raise BadRequest(f"offset must be an integer from 0 to {MAX_OFFSET}", field="offset")
    return int(raw)


def _include_disabled(request: Request) -> bool:
    raw = request.query_params.get("include_disabled")
    if raw is None:
        return False
    if raw not in ("true", "false"):
        raise BadRequest('include_disabled must be "true" or "false"', field="include_disabled")
    return raw == "true"


async def list_keys(request: Request) -> Response:
    svc = services(request)
    caller = await svc.keys.authenticate_management(request.headers.get("authorization"))
    offset = _offset(request)
    include_disabled = _include_disabled(request)
    page = await svc.keys.list_page(caller, offset=offset, include_disabled=include_disabled)
    user = await svc.users.get(caller.user_id)
    now = svc.clock()
    minted = await svc.keys.minted_spend(page)
    return JSONResponse(
        {"data": [key_object(key, user, now, minted.get(key.hash, NO_SPEND)) for key in page]}
    )


async def create_key(request: Request) -> Response:
    svc = services(request)
    caller = await svc.keys.authenticate_management(request.headers.get("authorization"))
    body = await read_json(request, CreateKeyBody, svc.settings.max_body_bytes)
    expires_at = (
        None if body.expires_at is None else parse_rfc3339(body.expires_at, field="expires_at")
    )
    allowed = allowlist.parse(body.allowed_models)
    user = await svc.users.get(caller.user_id)
    if user is None:  # a key outlived its user: nothing to create keys for
        raise BadRequest("The key's user no longer exists")
    new = await svc.keys.create(
        user,
        name=body.name,
        limit_usd=body.limit,
        limit_reset=body.limit_reset,
        expires_at=expires_at,
        actor=audit.key_actor(caller),
        allowed_models=allowed,
    )
    return JSONResponse(
        {"data": key_object(new.record, user, svc.clock()), "key": new.secret}, status_code=201
    )


async def get_key(request: Request) -> Response:
    svc = services(request)
    caller = await svc.keys.authenticate_management(request.headers.get("authorization"))
    key = await svc.keys.get_owned(caller, request.path_params["hash"])
    return await _key_answer(svc, caller, key)


async def update_key(request: Request) -> Response:
    svc = services(request)
    caller = await svc.keys.authenticate_management(request.headers.get("authorization"))
    body = await read_json(request, UpdateKeyBody, svc.settings.max_body_bytes)
    allowed = (
        body.allowed_models
        if isinstance(body.allowed_models, msgspec.UnsetType)
        else allowlist.parse(body.allowed_models)
    )
    key = await svc.keys.update_owned(
        caller,
        request.path_params["hash"],
        name=body.name,
        disabled=body.disabled,
        limit_usd=body.limit,
        limit_reset=body.limit_reset,
        allowed_models=allowed,
    )
    return await _key_answer(svc, caller, key)


async def _key_answer(svc: Services, caller: ApiKey, key: ApiKey) -> Response:
    user = await svc.users.get(caller.user_id)
    minted = await svc.keys.minted_spend([key])
    return JSONResponse(
        {"data": key_object(key, user, svc.clock(), minted.get(key.hash, NO_SPEND))}
    )


async def delete_key(request: Request) -> Response:
    svc = services(request)
    caller = await svc.keys.authenticate_management(request.headers.get("authorization"))
    await svc.keys.revoke_owned(caller, request.path_params["hash"])
    return JSONResponse({"deleted": True})
