"""The admin pages, ``/admin/...``: what the admin API offers, in the browser, for signed-in
admins only (a member gets 403, a visitor the log-in page).

``/admin`` lists and searches users (budget, spend this window, keys, last use) beside
the server's spend per day; ``/admin/users/{id}`` shows one user with forms to set the
budget, disable or enable them and change their role; ``/admin/keys`` every key;
``/admin/audit`` the audit trail. Every form carries the session's CSRF token and
answers with a 303 back to the user's page; the rules are
:class:`~modelgates.services.admin.UserAdmin`'s, as for the CLI and the API.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from modelgates.api.state import services
from modelgates.errors import BadRequest, Forbidden
from modelgates.key_state import LABELS, key_state
from modelgates.models import ApiKey, User
from modelgates.services import audit
from modelgates.services.admin import Change
from modelgates.services.budgets import user_remaining, user_spend
from modelgates.services.sessions import SignedIn
from modelgates.web import security
from modelgates.web.pages import (
    FIELD_LABELS,
    RESETS,
    base_context,
    page,
    parse_limit,
    parse_reset,
    see_other,
    to_login,
)
from modelgates.web.security import PageError
from modelgates.web.templates import render

SPEND_DAYS = 30


async def _admin(request: Request) -> SignedIn | Response:
    """The signed-in admin, the log-in page for a visitor, or 403 for a member."""
    who = await security.signed_in(request)
    if who is None:
        return to_login(request)
    await _require_admin(request, who)
    return who


async def _require_admin(request: Request, who: SignedIn) -> None:
    try:
        await services(request).admin.require_admin(who.user.id)
    except Forbidden as exc:
        raise PageError(403, "Admins only", "These pages are for the server's admins.") from exc


async def _admin_form(request: Request) -> tuple[SignedIn, dict[str, str]]:
    """A posted form's fields and its admin: 403 without the session's CSRF token or for
    a member."""
    form = await security.read_form(request)
    who = security.check_session_csrf(form, await security.signed_in(request))
    await _require_admin(request, who)
    return who, form


def _key_rows(keys: list[ApiKey], request: Request) -> list[dict[str, Any]]:
    now = services(request).clock()
    return [
        {
            "hash": key.hash,
            "label": key.label,
            "user_id": key.user_id,
            "status": LABELS[key_state(key, now)],
            "limit": key.limit,
            "reset": key.limit_reset or "none",
            "usage": key.usage.in_window(now, key.limit_reset),
            "lifetime": key.usage.total,
            "last_used_at": key.last_used_at,
            "management": key.is_management,
        }
        for key in keys
    ]


@page
async def users_page(request: Request) -> Response:
    who = await _admin(request)
    if isinstance(who, Response):
        return who
    svc = services(request)
    search = request.query_params.get("search", "").strip()[:320]
    now = svc.clock()
    rows = [
        {
            "user": s.user,
            "spent": user_spend(s.user, now),
            "remaining": user_remaining(s.user, now),
            "keys": s.keys,
            "last_used_at": s.last_used_at,
        }
        for s in await svc.admin.users(search=search or None)
    ]
    spend = await svc.admin.spend_per_day(SPEND_DAYS)
    return render(
        "admin_users.html",
        {**base_context(who), "rows": rows, "search": search, "spend": spend,
         "spend_days": SPEND_DAYS},
    )  # fmt: skip


async def _user_page(
    request: Request, who: SignedIn, user: User, *, error: str | None = None, status: int = 200
) -> Response:
    svc = services(request)
    now = svc.clock()
    summary = await svc.admin.summary(user)
    return render(
        "admin_user.html",
        {
            **base_context(who),
            "user": user,
            "summary": summary,
            "spent": user_spend(user, now),
            "remaining": user_remaining(user, now),
            "keys": _key_rows(await svc.admin.keys_of(user), request),
            "events": await svc.admin.events(user_id=user.id, limit=50),
            "resets": RESETS,
            "error": error,
            "is_self": user.id == who.user.id,
        },
        status=status,
    )


@page
async def user_page(request: Request) -> Response:
    who = await _admin(request)
    if isinstance(who, Response):
        return who
    user = await services(request).admin.get(str(request.path_params["user_id"]))
    return await _user_page(request, who, user)


async def _change(request: Request, who: SignedIn, change: Change) -> Response:
    svc = services(request)
    user = await svc.admin.get(str(request.path_params["user_id"]))
    try:
        await svc.admin.update(user, change, actor=audit.user_actor(who.user.id), by=who.user)
    except BadRequest as exc:
        label = FIELD_LABELS.get(exc.field or "", "Change")
        return await _user_page(request, who, user, error=f"{label}: {exc.message}", status=400)
    return see_other(f"/admin/users/{user.id}")


@page
async def user_budget(request: Request) -> Response:
    who, form = await _admin_form(request)
    limit_text = form.get("limit", "").strip()[:32]
    reset_text = form.get("reset", "").strip()[:16]
    try:
        limit = parse_limit(limit_text, "limit")
        reset = parse_reset(reset_text, "limit_reset")
    except BadRequest as exc:
        user = await services(request).admin.get(str(request.path_params["user_id"]))
        label = FIELD_LABELS.get(exc.field or "", "Budget")
        return await _user_page(request, who, user, error=f"{label}: {exc.message}", status=400)
    return await _change(request, who, Change(limit_usd=limit, limit_reset=reset))


@page
async def user_status(request: Request) -> Response:
    who, form = await _admin_form(request)
    action = form.get("action")
    if action not in ("disable", "enable"):
        raise PageError(400, "Bad request", "Choose Disable or Enable.")
    return await _change(request, who, Change(disabled=action == "disable"))


@page
async def user_role(request: Request) -> Response:
    who, form = await _admin_form(request)
    role = form.get("role")
    if role not in ("admin", "member"):
        raise PageError(400, "Bad request", "Choose admin or member.")
    return await _change(request, who, Change(is_admin=role == "admin"))


@page
async def keys_page(request: Request) -> Response:
    who = await _admin(request)
    if isinstance(who, Response):
        return who
    keys = await services(request).admin.every_key()
    return render("admin_keys.html", {**base_context(who), "keys": _key_rows(keys, request)})


@page
async def audit_page(request: Request) -> Response:
    who = await _admin(request)
    if isinstance(who, Response):
        return who
    user_id = request.query_params.get("user_id", "").strip()[:200] or None
    key_hash = request.query_params.get("key_hash", "").strip().lower()[:64] or None
    events = await services(request).admin.events(user_id=user_id, key_hash=key_hash, limit=200)
    return render(
        "admin_audit.html",
        {**base_context(who), "events": events, "user_id": user_id, "key_hash": key_hash},
    )


@page
async def alerts_page(request: Request) -> Response:
    """Budget alert deliveries and how their tries went (status, HTTP, error, next try)."""
    who = await _admin(request)
    if isinstance(who, Response):
        return who
    user_id = request.query_params.get("user_id", "").strip()[:200] or None
    found = await services(request).alerts.deliveries(limit=200, user_id=user_id)
    return render(
        "admin_alerts.html", {**base_context(who), "deliveries": found, "user_id": user_id}
    )
