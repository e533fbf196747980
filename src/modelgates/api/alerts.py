"""Budget alerts in the admin API: ``GET /api/v1/admin/alerts`` (deliveries and how their
tries went) and ``GET``/``PUT /api/v1/admin/users/{user_id}/alert-webhook`` (the URL a
user's alerts also go to). Admins' management keys only, as the rest of ``/admin``."""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from modelgates.api.admin import MAX_OFFSET, admin_caller, number_param
from modelgates.api.body import read_json
from modelgates.api.responses import JSONResponse
from modelgates.models import AlertDelivery
from modelgates.money import to_usd
from modelgates.services import audit
from modelgates.timestamps import isoformat


class WebhookBody(msgspec.Struct, forbid_unknown_fields=False):
    """Request body of ``admin-set-alert-webhook``: ``null`` removes the URL."""

    url: str | None


def delivery_view(delivery: AlertDelivery) -> dict[str, Any]:
    alert = delivery.alert
    return {
        "id": delivery.id,
        "alert": {
            "id": alert.id,
            "scope": alert.scope,
            "subject": alert.subject,
            "user_id": alert.user_id,
            "key_hash": alert.key_hash,
            "threshold": alert.threshold,
            "reset": None if alert.period == "total" else alert.period,
            "window_start": isoformat(alert.window_start),
            "limit": to_usd(alert.limit),
            "usage": to_usd(alert.usage),
            "created_at": isoformat(alert.created_at),
        },
        "channel": delivery.channel,
        "destination": delivery.destination,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "last_http_status": delivery.last_http_status,
        "last_error": delivery.last_error,
        "next_attempt_at": isoformat(delivery.next_attempt_at),
        "delivered_at": isoformat(delivery.delivered_at),
        "created_at": isoformat(delivery.created_at),
    }


async def list_deliveries(request: Request) -> Response:
    svc, _, _ = await admin_caller(request)
    offset = number_param(request, "offset", 0, 0, MAX_OFFSET)
    limit = number_param(request, "limit", 50, 1, 500)
    user_id = request.query_params.get("user_id") or None
    found = await svc.alerts.deliveries(offset=offset, limit=limit, user_id=user_id)
    return JSONResponse({"data": [delivery_view(d) for d in found]})


async def get_webhook(request: Request) -> Response:
    svc, _, _ = await admin_caller(request)
    user = await svc.admin.get(request.path_params["user_id"])
    return JSONResponse({"data": {"user_id": user.id, "url": await svc.alerts.webhook_of(user.id)}})


async def set_webhook(request: Request) -> Response:
    svc, key, _ = await admin_caller(request)
    body = await read_json(request, WebhookBody, svc.settings.max_body_bytes)
    user = await svc.admin.get(request.path_params["user_id"])
    url = await svc.alerts.set_webhook(user, body.url, actor=audit.key_actor(key), by_operator=True)
    return JSONResponse({"data": {"user_id": user.id, "url": url}})
