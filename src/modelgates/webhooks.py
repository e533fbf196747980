"""Budget alerts on the wire, free of I/O: the event's JSON, its Standard Webhooks
signature, when a failed delivery is tried again, and which webhook URLs a user may set.

The body of every delivery of one alert is the same bytes (fixed when the alert is
fanned out), and its ``webhook-id`` is the alert's id, so a receiver that saw an
attempt succeed before the server could record it (at-least-once delivery, the
Standard Webhooks model) recognises the retry::

    {"type": "budget.threshold_crossed", "timestamp": "2026-11-29T10:30:00.123456Z",
     "data": {"alert_id": "msg_…", "scope": "key_limit" | "user_budget",
              "threshold": 80, "limit_usd": 10.0, "usage_usd": 8.01,
              "window": {"reset": "daily" | "weekly" | "monthly" | null,
                         "start": "…Z" | null, "end": "…Z" | null},
              "key": {"hash": "…", "label": "…"}, "user": {"id": "user_…", "email": "…"},
              "generation_id": "gen-…"}}
"""

from __future__ import annotations

import base64
import ipaddress
import secrets
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import msgspec
from standardwebhooks import Webhook

from modelgates.models import BudgetAlert
from modelgates.money import to_usd
from modelgates.timestamps import isoformat
from modelgates.windows import Reset, next_reset

EVENT_TYPE = "budget.threshold_crossed"
MAX_URL_LENGTH = 2000
MAX_RETRY_DELAY = timedelta(hours=6)


def new_secret() -> str:
    """A fresh signing secret: ``whsec_`` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def alert_payload(alert: BudgetAlert, *, user_email: str, key_label: str | None) -> str:
    """The JSON body of the alert's deliveries (the module docstring)."""
    reset: Reset | None = None if alert.period == "total" else alert.period
    start = alert.window_start
    data: dict[str, Any] = {
        "alert_id": alert.id,
        "scope": alert.scope,
        "threshold": alert.threshold,
        "limit_usd": to_usd(alert.limit),
        "usage_usd": to_usd(alert.usage),
        "window": {
            "reset": reset,
            "start": isoformat(start),
            "end": isoformat(next_reset(start, reset)) if start and reset else None,
        },
        "key": {"hash": alert.key_hash, "label": key_label},
        "user": {"id": alert.user_id, "email": user_email},
        "generation_id": alert.generation_id,
    }
    event = {"type": EVENT_TYPE, "timestamp": isoformat(alert.created_at), "data": data}
    return msgspec.json.encode(event).decode()


def signed_headers(secret: str, message_id: str, body: str, now: datetime) -> dict[str, str]:
    """The Standard Webhooks headers of one attempt (signed over id, ``now``, body)."""
    signature = Webhook(secret).sign(message_id, now, body)
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }


def retry_delay(failures: int, base_seconds: float) -> timedelta:
    """The wait after the ``failures``-th failed try: ``base`` doubled each time after the
    first, never more than :data:`MAX_RETRY_DELAY`."""
    seconds = base_seconds * 2 ** min(failures - 1, 40)
    return min(timedelta(seconds=seconds), MAX_RETRY_DELAY)


def check_webhook_url(url: str, *, restricted: bool) -> str:
    """``url`` stripped if it can receive alerts, else ``ValueError`` saying why.

    Any ``http(s)`` URL with a host passes unless ``restricted`` (a URL a user set, with
    ``MODELGATES_ALERT_PRIVATE_WEBHOOKS`` off): then it must be ``https`` and its host
    neither ``localhost`` nor a loopback, private, link-local or reserved address, so
    users cannot point the server at its own network. (A public name that resolves to
    a private address is not caught here.)"""
    url = url.strip()
    if not url or len(url) > MAX_URL_LENGTH:
        raise ValueError(f"a webhook URL must be 1 to {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError as exc:
        raise ValueError("a webhook URL must be an absolute http(s) URL") from exc
    if parts.scheme not in {"http", "https"} or not host:
        raise ValueError("a webhook URL must be an absolute http(s) URL")
    if parts.username is not None or parts.password is not None:
        raise ValueError("a webhook URL must not carry a user name or password")
    if parts.fragment:
        raise ValueError("a webhook URL must not have a fragment")
    if not restricted:
        return url
    if parts.scheme != "https":
        raise ValueError("a webhook URL must use https")
    if host == "localhost" or host.endswith(".localhost"):
        raise ValueError("a webhook URL must not point at this machine")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return url
    if not address.is_global:
        raise ValueError("a webhook URL must not point at a private or local address")
    return url
