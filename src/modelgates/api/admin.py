"""The admin API, ``/api/v1/admin/...``: what an operator sees and changes, for management
keys of admin users (any other key gets 403). Users (list, search, show, budget, role,
disable and enable), every key, the audit trail and the server's spend per day; the rules
are :class:`~modelgates.services.admin.UserAdmin`'s, shared with the CLI and the pages."""

from __future__ import annotations

import re
from typing import Any, Literal

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from modelgates.api.body import read_json
from modelgates.api.key_views import key_object
from modelgates.api.responses import JSONResponse
from modelgates.api.state import services
from modelgates.container import Services
from modelgates.errors import BadRequest
from modelgates.key_state import key_state
from modelgates.models import ApiKey, AuditEvent, User
from modelgates.money import to_usd
from modelgates.services import audit
from modelgates.services.admin import MAX_SPEND_DAYS, Change, user_view
from modelgates.timestamps import isoformat
from modelgates.windows import NO_SPEND

MAX_OFFSET = 2**31 - 1
MAX_EVENTS = 1000
_DIGITS = re.compile(r"[0-9]{1,10}")

ResetInterval = Literal["daily", "weekly", "monthly"]
Role = Literal["admin", "member"]


class UpdateUserBody(msgspec.Struct, forbid_unknown_fields=False):
    """Request body of ``admin-update-user``: only the fields present change."""

    limit: float | msgspec.UnsetType | None = msgspec.UNSET
    limit_reset: ResetInterval | msgspec.UnsetType | None = msgspec.UNSET
    disabled: bool | msgspec.UnsetType = msgspec.UNSET
    role: Role | msgspec.UnsetType = msgspec.UNSET


def number_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not _DIGITS.fullmatch(raw) or not low <= int(raw) <= high:
        raise BadRequest(f"{name} must be an integer from {low} to {high}", field=name)
    return int(raw)


async def admin_caller(request: Request) -> tuple[Services, ApiKey, User]:
    """The services, the caller's management key and its admin user; 401 or 403 else."""
    svc = services(request)
    key = await svc.keys.authenticate_management(request.headers.get("authorization"))
    return svc, key, await svc.admin.require_admin(key.user_id)


def key_view(key: ApiKey, svc: Services, minted: Any = NO_SPEND) -> dict[str, Any]:
    """A key as the admin API lists it: the management ``Key`` object, its owner and state."""
    now = svc.clock()
    return {**key_object(key, None, now, minted), "user_id": key.user_id,
            "status": key_state(key, now, minted)}  # fmt: skip


async def _key_views(svc: Services, keys: list[ApiKey]) -> list[dict[str, Any]]:
    minted = await svc.keys.minted_spend(keys)
    return [key_view(key, svc, minted.get(key.hash, NO_SPEND)) for key in keys]


def event_view(event: AuditEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "at": isoformat(event.at),
        "event": event.event,
        "actor": event.actor,
        "user_id": event.user_id,
        "key_hash": event.key_hash,
        "detail": event.detail,
    }


async def list_users(request: Request) -> Response:
    svc, _, _ = await admin_caller(request)
    search = request.query_params.get("search")
    offset = number_param(request, "offset", 0, 0, MAX_OFFSET)
    found = await svc.admin.users(search=search, offset=offset)
    now = svc.clock()
    return JSONResponse({"data": [user_view(summary, now) for summary in found]})


async def _user_answer(svc: Services, user: User) -> Response:
    summary = await svc.admin.summary(user)
    keys = await svc.admin.keys_of(user)
    view = user_view(summary, svc.clock())
    return JSONResponse({"data": {**view, "api_keys": await _key_views(svc, keys)}})


async def get_user(request: Request) -> Response:
    svc, _, _ = await admin_caller(request)
    return await _user_answer(svc, await svc.admin.get(request.path_params["user_id"]))


async def update_user(request: Request) -> Response:
    svc, key, admin = await admin_caller(request)
    body = await read_json(request, UpdateUserBody, svc.settings.max_body_bytes)
    user = await svc.admin.get(request.path_params["user_id"])
    change = Change(
        limit_usd=body.limit,
        limit_reset=body.limit_reset,
        disabled=body.disabled,
        is_admin=msgspec.UNSET
        if isinstance(body.role, msgspec.UnsetType)
        else body.role == "admin",
    )
    updated = await svc.admin.update(user, change, actor=audit.key_actor(key), by=admin)
    return await _user_answer(svc, updated)


async def list_keys(request: Request) -> Response:
    svc, _, _ = await admin_caller(request)
    offset = number_param(request, "offset", 0, 0, MAX_OFFSET)
    return JSONResponse({"data": await _key_views(svc, await svc.admin.every_key(offset=offset))})


async def list_events(request: Request) -> Response:
    svc, _, _ = await admin_caller(request)
    limit = number_param(request, "limit", 100, 1, MAX_EVENTS)
    user_id = request.query_params.get("user_id") or None
    key_hash = (request.query_params.get("key_hash") or "").strip().lower() or None
    events = await svc.admin.events(user_id=user_id, key_hash=key_hash, limit=limit)
    return JSONResponse({"data": [event_view(event) for event in events]})


async def spend_per_day(request: Request) -> Response:
    svc, _, _ = await admin_caller(request)
    days = number_param(request, "days", 30, 1, MAX_SPEND_DAYS)
    found = await svc.admin.spend_per_day(days)
    return JSONResponse(
        {"data": [{"date": d.day.isoformat(), "spend": to_usd(d.cost), "requests": d.requests}
                  for d in found]}
    )  # fmt: skip
