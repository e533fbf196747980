"""The front page, ``/``: what this server is and a sign-in for visitors; for a
signed-in user their keys, this window's spend against their budget, quick starts
with this server's URL filled in, and the models they may use."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from modelgates.api.meta import public_base_url
from modelgates.api.state import services
from modelgates.key_state import LABELS as STATE_LABELS
from modelgates.key_state import key_state
from modelgates.services.budgets import user_remaining, user_spend
from modelgates.web import security
from modelgates.web.pages import base_context, page
from modelgates.web.quickstarts import KEY_VARIABLE, quick_starts
from modelgates.web.templates import render

EXAMPLE_MODEL = "openai/gpt-4o-mini"
"""The model the quick starts name when the catalogue is empty."""


@page
async def front_page(request: Request) -> Response:
    svc = services(request)
    base = public_base_url(request)
    who = await security.signed_in(request)
    if who is None:
        return render(
            "home.html",
            {**base_context(None), "nav": "home", "base_url": base, "signed_in": False},
        )
    now = svc.clock()
    user = who.user
    keys = [
        {
            "label": key.label,
            "usage": key.usage.in_window(now, key.limit_reset),
            "limit": key.limit,
            "reset": key.limit_reset or "none",
            "status": STATE_LABELS[key_state(key, now)],
        }
        for key in await svc.keys.list_for(user)
    ]
    models = list(svc.gateway.models.values())
    model = models[0].id if models else EXAMPLE_MODEL
    return render(
        "home.html",
        {
            **base_context(who),
            "nav": "home",
            "signed_in": True,
            "base_url": base,
            "keys": keys,
            "budget": user.limit,
            "budget_reset": user.limit_reset,
            "spent": user_spend(user, now),
            "remaining": user_remaining(user, now),
            "quick_starts": quick_starts(base, model),
            "key_variable": KEY_VARIABLE,
            "models": models,
        },
    )
