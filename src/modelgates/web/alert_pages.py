"""The signed-in user's budget alerts, ``/alerts``: the webhook URL their alerts also go to,
and their recent alerts' deliveries."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from modelgates.api.state import services
from modelgates.errors import BadRequest
from modelgates.services import audit
from modelgates.services.sessions import SignedIn
from modelgates.web import security
from modelgates.web.pages import base_context, page, to_login
from modelgates.web.templates import render


async def _alerts_page(
    request: Request,
    who: SignedIn,
    *,
    url: str | None = None,
    saved: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    svc = services(request)
    current = url if url is not None else (await svc.alerts.webhook_of(who.user.id)) or ""
    thresholds = ", ".join(f"{t} %" for t in svc.settings.alert_threshold_list()) or "no threshold"
    return render(
        "alerts.html",
        {
            **base_context(who),
            "nav": "alerts",
            "webhook_url": current,
            "thresholds": thresholds,
            "email": svc.settings.smtp_host is not None,
            "deliveries": await svc.alerts.deliveries(limit=20, user_id=who.user.id),
            "saved": saved,
            "error": error,
        },
        status=status,
    )


@page
async def alerts_page(request: Request) -> Response:
    who = await security.signed_in(request)
    if who is None:
        return to_login(request)
    return await _alerts_page(request, who)


@page
async def alerts_save(request: Request) -> Response:
    form = await security.read_form(request)
    who = security.check_session_csrf(form, await security.signed_in(request))
    url = form.get("webhook_url", "")[:4000]
    try:
        saved = await services(request).alerts.set_webhook(
            who.user, url, actor=audit.user_actor(who.user.id), by_operator=False
        )
    except BadRequest as exc:
        return await _alerts_page(
            request, who, url=url, error=f"Webhook URL: {exc.message}", status=400
        )
    return await _alerts_page(request, who, saved="Webhook saved." if saved else "Webhook removed.")
