"""Budget alerts: where they go, and the outbox's steps between a charge and a delivery.

The settlement records an alert in the charge's own transaction (Store.settle), so
an alert is never lost and never recorded twice for one threshold and window. From
there the delivery task (:mod:`modelgates.alert_delivery`) drives it through these
steps, each one transaction and safe to repeat from any process:

1. fan out: the alert's payload is fixed and one pending delivery is added per
   destination configured then (``MODELGATES_ALERT_WEBHOOK_URL``, the user's own
   webhook, the user's e-mail when ``MODELGATES_SMTP_HOST`` is set);
2. claim: due deliveries are leased to one process for :meth:`AlertService.lease`;
3. finish: the try is recorded; a failed one is retried with exponential backoff up
   to ``MODELGATES_ALERT_MAX_ATTEMPTS`` tries, then marked ``failed``.

A process killed during a try leaves its lease to run out; the delivery is then tried
again with the same ``webhook-id`` (at-least-once, as Standard Webhooks intends). A
delivery recorded as delivered is never sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import uuid
from datetime import timedelta

from modelgates.errors import BadRequest
from modelgates.models import (
    AlertAttempt,
    AlertChannel,
    AlertDelivery,
    AttemptOutcome,
    User,
)
from modelgates.services import Clock, system_clock
from modelgates.services.audit import USER_ALERT_WEBHOOK_CHANGED, AuditLog
from modelgates.settings import Settings
from modelgates.store import Store
from modelgates.webhooks import alert_payload, check_webhook_url, retry_delay

FAN_OUT_BATCH = 100
CLAIM_BATCH = 20
MAX_ERROR_LENGTH = 500


class AlertService:
    """Webhook destinations, and the outbox steps the delivery task runs."""

    def __init__(
        self, store: Store, settings: Settings, audit: AuditLog, *, clock: Clock = system_clock
    ) -> None:
        self._store = store
        self._settings = settings
        self._audit = audit
        self._clock = clock
        self._wake = asyncio.Event()

    @property
    def lease(self) -> timedelta:
        """How long a claimed delivery is one process's: two timeouts and a margin."""
        return timedelta(seconds=2 * self._settings.alert_webhook_timeout_seconds + 5)

    # destinations -----------------------------------------------------------
    async def webhook_of(self, user_id: str) -> str | None:
        return await self._store.get_alert_webhook(user_id)

    async def set_webhook(
        self, user: User, url: str | None, *, actor: str, by_operator: bool
    ) -> str | None:
        """Set the user's webhook URL (``None`` or blank: remove it); 400 naming the field
        ``webhook_url`` for a URL it may not use (:func:`check_webhook_url`: a user's own
        is restricted unless ``MODELGATES_ALERT_PRIVATE_WEBHOOKS``)."""
        if url is not None and url.strip():
            restricted = not by_operator and not self._settings.alert_private_webhooks
            try:
                url = check_webhook_url(url, restricted=restricted)
            except ValueError as exc:
                raise BadRequest(str(exc), field="webhook_url") from exc
        else:
            url = None
        await self._store.set_alert_webhook(user.id, url, self._clock())
        await self._audit.record(
            USER_ALERT_WEBHOOK_CHANGED,
            actor=actor,
            user_id=user.id,
            detail={"set": url is not None},
        )
        return url

    # what the operator sees -------------------------------------------------
    async def deliveries(
        self, *, offset: int = 0, limit: int = 50, user_id: str | None = None
    ) -> list[AlertDelivery]:
        return await self._store.list_deliveries(offset=offset, limit=limit, user_id=user_id)

    async def attempts(self, delivery_id: str) -> list[AlertAttempt]:
        return await self._store.list_attempts(delivery_id)

    # the outbox's steps -----------------------------------------------------
    def wake(self) -> None:
        """Tell the delivery task that a charge has just recorded alerts."""
        self._wake.set()

    async def wait(self, seconds: float) -> None:
        """Sleep up to ``seconds``, less if :meth:`wake` is called."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    async def fan_out(self) -> int:
        """Step 1 for every alert not yet fanned out; how many alerts."""
        settings = self._settings
        pending = await self._store.unsent_alerts(FAN_OUT_BATCH)
        for item in pending:
            destinations: list[tuple[str, AlertChannel, str]] = []
            if settings.alert_webhook_url:
                destinations.append(_delivery("webhook", settings.alert_webhook_url))
            if item.user_webhook and item.user_webhook != settings.alert_webhook_url:
                destinations.append(_delivery("webhook", item.user_webhook))
            if settings.smtp_host:
                destinations.append(_delivery("email", item.user_email))
            payload = item.alert.payload or alert_payload(
                item.alert, user_email=item.user_email, key_label=item.key_label
            )
            await self._store.fan_out(item.alert.id, payload, destinations, self._clock())
        return len(pending)

    async def claim(self) -> tuple[str, list[tuple[AlertDelivery, str]]]:
        """Step 2: a lease token and the due deliveries (with payloads) leased to it."""
        token = secrets.token_hex(16)
        now = self._clock()
        claimed = await self._store.claim_deliveries(now, now + self.lease, token, CLAIM_BATCH)
        return token, claimed

    async def finish(
        self,
        delivery: AlertDelivery,
        token: str,
        *,
        http_status: int | None = None,
        error: str | None = None,
    ) -> AttemptOutcome:
        """Step 3: record a try (delivered when there is no ``error``)."""
        now = self._clock()
        failures = delivery.attempts + 1
        if error is None:
            outcome = AttemptOutcome(http_status, None, True, None)
        elif failures >= self._settings.alert_max_attempts:
            outcome = AttemptOutcome(http_status, error[:MAX_ERROR_LENGTH], False, None)
        else:
            delay = retry_delay(failures, self._settings.alert_retry_base_seconds)
            outcome = AttemptOutcome(http_status, error[:MAX_ERROR_LENGTH], False, now + delay)
        await self._store.finish_attempt(delivery.id, token, outcome, now)
        return outcome


def _delivery(channel: AlertChannel, destination: str) -> tuple[str, AlertChannel, str]:
    return "dlv_" + uuid.uuid4().hex, channel, destination
