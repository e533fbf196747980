"""The key list, ``/keys``: a signed-in user's keys, their state and spend, and the
forms to create, rotate and revoke one."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from modelgates import allowlist
from modelgates.api.state import services
from modelgates.errors import BadRequest, NotFound
from modelgates.key_state import LABELS as STATE_LABELS
from modelgates.key_state import key_state
from modelgates.models import App
from modelgates.services import audit
from modelgates.services.sessions import SignedIn
from modelgates.web import security
from modelgates.web.pages import (
    FIELD_LABELS,
    RESETS,
    base_context,
    page,
    parse_limit,
    parse_local_utc,
    parse_reset,
    see_other,
    to_login,
)
from modelgates.web.security import PageError
from modelgates.web.templates import render
from modelgates.windows import limit_remaining

GRACES = [(0, "stops now"), (3600, "works 1 more hour"), (86_400, "works 1 more day"),
          (604_800, "works 1 more week")]  # fmt: skip
"""The grace periods the key page offers a rotation (the old secret's remaining life)."""


async def _keys_page(
    request: Request,
    who: SignedIn,
    *,
    new_key: str | None = None,
    rotated: str | None = None,
    values: dict[str, str] | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    svc = services(request)
    now = svc.clock()
    apps: dict[int, App | None] = {}
    rows = []
    for key in await svc.keys.list_for(who.user):
        if key.app_id is not None and key.app_id not in apps:
            apps[key.app_id] = await svc.apps.get(key.app_id)
        app = apps.get(key.app_id) if key.app_id is not None else None
        remaining = limit_remaining(key.limit, key.usage, key.limit_reset, now)
        status_text = STATE_LABELS[key_state(key, now)]
        rows.append(
            {
                "hash": key.hash,
                "label": key.label,
                "app": app.name if app else "Personal key",
                "created_at": key.created_at,
                "expires_at": key.expires_at,
                "limit": key.limit,
                "reset": key.limit_reset or "none",
                "usage": key.usage.in_window(now, key.limit_reset),
                "remaining": remaining,
                "status": status_text,
                "models": key.allowed_models,
            }
        )
    return render(
        "keys.html",
        {
            **base_context(who),
            "nav": "keys",
            "keys": rows,
            "new_key": new_key,
            "rotated": rotated,
            "graces": GRACES,
            "values": values or {"name": "", "limit": "", "reset": "", "expires": "", "models": ""},
            "resets": RESETS,
            "error": error,
        },
        status=status,
    )


@page
async def keys_page(request: Request) -> Response:
    who = await security.signed_in(request)
    if who is None:
        return to_login(request)
    return await _keys_page(request, who)


@page
async def keys_create(request: Request) -> Response:
    form = await security.read_form(request)
    who = security.check_session_csrf(form, await security.signed_in(request))
    values = {
        name: form.get(name, "").strip()[:200] for name in ("name", "limit", "reset", "expires")
    }
    values["models"] = form.get("models", "").strip()[:10_000]
    try:
        new = await services(request).keys.create(
            who.user,
            name=values["name"] or None,
            limit_usd=parse_limit(values["limit"], "limit"),
            limit_reset=parse_reset(values["reset"], "limit_reset"),
            expires_at=parse_local_utc(values["expires"], "expires_at"),
            allowed_models=allowlist.parse_text(values["models"]),
        )
    except BadRequest as exc:
        label = FIELD_LABELS.get(exc.field or "", "Key")
        return await _keys_page(
            request, who, values=values, error=f"{label}: {exc.message}", status=400
        )
    return await _keys_page(request, who, new_key=new.secret)


@page
async def keys_revoke(request: Request) -> Response:
    form = await security.read_form(request)
    who = security.check_session_csrf(form, await security.signed_in(request))
    key_hash = str(request.path_params["key_hash"]).lower()
    try:
        await services(request).keys.revoke_for_user(who.user, key_hash)
    except NotFound as exc:
        raise PageError(404, "Key not found", "You have no active key with this id.") from exc
    return see_other("/keys")


@page
async def keys_rotate(request: Request) -> Response:
    form = await security.read_form(request)
    who = security.check_session_csrf(form, await security.signed_in(request))
    key_hash = str(request.path_params["key_hash"]).lower()
    graces = {str(seconds): text for seconds, text in GRACES}
    grace = form.get("grace", "0")
    if grace not in graces:
        raise PageError(400, "Bad request", "Choose how long the old secret keeps working.")
    try:
        rotated = await services(request).rotation.rotate(
            who.user.id, key_hash, grace_seconds=int(grace), actor=audit.user_actor(who.user.id)
        )
    except NotFound as exc:
        raise PageError(404, "Key not found", "You have no active key with this id.") from exc
    return await _keys_page(request, who, new_key=rotated.secret, rotated=graces[grace])
