"""The background task that delivers budget alerts: webhooks (httpx) and e-mail (SMTP).

It runs in every server process (like :mod:`modelgates.purge`) and loops over the
outbox's steps (:mod:`modelgates.services.alerts`): fan out new alerts, claim the
due deliveries, try each, record the outcome. Claims are leases, so processes sharing
a database never try one delivery at once. It sleeps ``alert_poll_interval_seconds``
between rounds, or less when a charge has just recorded an alert.

A webhook try succeeds on any 2xx answer; anything else (another status, a timeout,
a refused connection) is a failure, retried later. The signing secret and SMTP
password are never logged: errors are recorded as the exception's type and message.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
from datetime import UTC, datetime
from email.message import EmailMessage

import httpx
import msgspec

from modelgates.container import Services
from modelgates.models import AlertDelivery
from modelgates.money import to_usd
from modelgates.settings import Settings
from modelgates.webhooks import signed_headers

log = logging.getLogger(__name__)

FIRST_RUN_DELAY_SECONDS = 1.0


async def deliver_once(services: Services, http: httpx.AsyncClient) -> int:
    """One round: fan out, claim, try every claimed delivery; how many were tried."""
    alerts = services.alerts
    await alerts.fan_out()
    token, claimed = await alerts.claim()
    await asyncio.gather(*(_try(services, http, token, d, payload) for d, payload in claimed))
    return len(claimed)


async def _try(
    services: Services, http: httpx.AsyncClient, token: str, delivery: AlertDelivery, payload: str
) -> None:
    settings = services.settings
    status: int | None = None
    error: str | None = None
    try:
        if delivery.channel == "webhook":
            status, error = await _post(settings, http, delivery, payload)
        else:
            await asyncio.to_thread(_send_mail, settings, delivery, payload)
    except Exception as exc:  # every failure is recorded and retried, none stops the task
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    outcome = await services.alerts.finish(delivery, token, http_status=status, error=error)
    if outcome.delivered:
        log.info("alert %s delivered to %s %s", delivery.alert.id, delivery.channel, delivery.id)
    else:
        log.warning(
            "alert %s: %s delivery %s failed (%s); %s",
            delivery.alert.id, delivery.channel, delivery.id, error,
            "next try at " + outcome.next_attempt_at.isoformat()
            if outcome.next_attempt_at else "no tries left",
        )  # fmt: skip


async def _post(
    settings: Settings,
    http: httpx.AsyncClient,
    delivery: AlertDelivery,
    payload: str,
) -> tuple[int | None, str | None]:
    secret = settings.alert_webhook_secret
    if secret is None:
        return None, "MODELGATES_ALERT_WEBHOOK_SECRET is not set: cannot sign"
    # The wall clock, not the services' clock: receivers compare webhook-timestamp with
    # theirs to refuse replays.
    headers = signed_headers(secret, delivery.alert.id, payload, datetime.now(UTC))
    answer = await http.post(delivery.destination, content=payload.encode(), headers=headers)
    if 200 <= answer.status_code < 300:
        return answer.status_code, None
    return answer.status_code, f"HTTP {answer.status_code}"


def _send_mail(settings: Settings, delivery: AlertDelivery, payload: str) -> None:
    """Send the alert to ``delivery.destination`` (blocking: run on a thread)."""
    assert settings.smtp_host is not None
    assert settings.smtp_from is not None
    alert = delivery.alert
    data = msgspec.json.decode(payload)["data"]
    subject = "your budget" if alert.scope == "user_budget" else "a key's limit"
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = delivery.destination
    message["Subject"] = f"ModelGates: {alert.threshold}% of {subject} used"
    message["Message-ID"] = f"<{alert.id}.{delivery.id}@modelgates>"
    window = data["window"]
    label = data["key"]["label"] or data["key"]["hash"][:12]
    message.set_content(
        f"{alert.threshold}% of {subject} is used: ${to_usd(alert.usage):.6f} of"
        f" ${to_usd(alert.limit):.6f}"
        + (f" in the {window['reset']} window from {window['start']} to {window['end']}."
           if window["reset"] else " (a lifetime limit).")
        + f"\nKey: {label}\nAlert: {alert.id}\n\nThe event as JSON:\n{payload}\n"
    )  # fmt: skip
    timeout = settings.alert_webhook_timeout_seconds
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=timeout) as smtp:
        if settings.smtp_starttls:
            smtp.starttls(context=ssl.create_default_context())
        if settings.smtp_username is not None:
            smtp.login(settings.smtp_username, settings.smtp_password or "")
        smtp.send_message(message)


async def _run_forever(services: Services, interval: float, first_delay: float) -> None:
    await asyncio.sleep(first_delay)
    timeout = services.settings.alert_webhook_timeout_seconds
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False) as http:
        while True:
            try:
                tried = await deliver_once(services, http)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("alert delivery failed; retrying in %s s", interval)
                tried = 0
            if not tried:
                await services.alerts.wait(interval)


def deliver_forever(
    services: Services, *, first_delay: float = FIRST_RUN_DELAY_SECONDS
) -> asyncio.Task[None] | None:
    """Start the delivery task (``None`` when ``alert_poll_interval_seconds`` is 0)."""
    interval = services.settings.alert_poll_interval_seconds
    if interval <= 0:
        return None
    return asyncio.create_task(
        _run_forever(services, interval, min(first_delay, interval)), name="modelgates-alerts"
    )
