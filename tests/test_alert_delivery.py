"""Budget alerts delivered by the outbox's task (:mod:`modelgates.alert_delivery`) on
both stores: to a real local webhook receiver, signed per Standard Webhooks (checked
with the ``standardwebhooks`` package), retried with backoff, given up after the last
try, and by e-mail through a real local SMTP server (aiosmtpd). Time is the services'
FakeClock; each round is run by hand (``deliver_once``)."""

from __future__ import annotations

import email
import email.policy
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

import httpx
import msgspec
import pytest
from aiosmtpd.controller import Controller
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from modelgates.alert_delivery import deliver_once
from modelgates.container import Services
from modelgates.errors import BadRequest
from modelgates.models import User
from modelgates.settings import Settings
from modelgates.store import Store
from modelgates.webhooks import EVENT_TYPE, new_secret, retry_delay
from tests.support.clock import FakeClock
from tests.support.server import free_port
from tests.support.webhook_receiver import Receiver, receiving
from tests.test_store import make_key, make_record

SECRET = new_secret()
BASE = 2.0


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as running:
        yield running


@pytest.fixture
def settings(receiver: Receiver) -> Settings:
    return Settings(
        alert_webhook_url=receiver.url,
        alert_webhook_secret=SECRET,
        alert_retry_base_seconds=BASE,
        alert_max_attempts=3,
        alert_private_webhooks=True,
    )


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as client:
        yield client


async def budgeted_user(services: Services, limit: int = 1000) -> tuple[User, Any]:
    user = await services.users.create("ada@example.com", "correct horse battery")
    key = make_key(user, services.clock(), limit=limit, limit_reset="daily")
    await services.store.create_key(key)
    return user, key


async def charge(services: Services, key: Any, cost: int) -> int:
    thresholds = services.settings.alert_threshold_list()
    return await services.store.settle("r", make_record(key, cost, services.clock()), thresholds)


def verified(received: Any) -> dict[str, Any]:
    """The event, after ``standardwebhooks`` checked its signature (raises if wrong)."""
    event: dict[str, Any] = Webhook(SECRET).verify(received.body, received.headers)
    return event


async def test_a_charge_crossing_two_thresholds_delivers_two_signed_events(
    services: Services, receiver: Receiver, http: httpx.AsyncClient
) -> None:
    user, key = await budgeted_user(services)
    assert await charge(services, key, 850) == 2
    assert await deliver_once(services, http) == 2
    events = sorted((verified(r) for r in receiver.received), key=lambda e: e["data"]["threshold"])
    assert [e["data"]["threshold"] for e in events] == [50, 80]
    first = events[0]
    assert first["type"] == EVENT_TYPE
    day = services.clock().replace(hour=0, minute=0, second=0, microsecond=0)
    assert first["data"]["window"] == {
        "reset": "daily",
        "start": day.isoformat().replace("+00:00", "Z"),
        "end": (day + timedelta(days=1)).isoformat().replace("+00:00", "Z"),
    }
    assert first["data"]["scope"] == "key_limit"
    assert first["data"]["key"] == {"hash": key.hash, "label": key.label}
    assert first["data"]["user"] == {"id": user.id, "email": user.email}
    assert (first["data"]["limit_usd"], first["data"]["usage_usd"]) == (1e-6, 8.5e-7)
    ids = {r.headers["webhook-id"] for r in receiver.received}
    assert len(ids) == 2 and all(i.startswith("msg_") for i in ids)
    # Nothing more: delivered deliveries are never sent again.
    services.clock.advance(3600)  # type: ignore[attr-defined]
    assert await deliver_once(services, http) == 0
    assert len(receiver.received) == 2


async def test_a_tampered_body_fails_verification(
    services: Services, receiver: Receiver, http: httpx.AsyncClient
) -> None:
    _, key = await budgeted_user(services)
    await charge(services, key, 500)
    await deliver_once(services, http)
    (got,) = receiver.received
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(got.body.replace("50", "51"), got.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(got.body, got.headers)


async def test_a_500_is_retried_with_backoff_and_the_same_webhook_id(
    services: Services, receiver: Receiver, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    receiver.statuses[:] = [500, 503]
    _, key = await budgeted_user(services)
    await charge(services, key, 500)
    assert await deliver_once(services, http) == 1
    (delivery,) = await services.alerts.deliveries()
    assert (delivery.status, delivery.attempts, delivery.last_http_status) == ("pending", 1, 500)
    assert delivery.next_attempt_at == clock.now + retry_delay(1, BASE)

    clock.advance(BASE - 0.5)
    assert await deliver_once(services, http) == 0  # not due yet
    clock.advance(0.5)
    assert await deliver_once(services, http) == 1  # 503
    (delivery,) = await services.alerts.deliveries()
    assert delivery.next_attempt_at == clock.now + timedelta(seconds=2 * BASE)  # doubled
    clock.advance(2 * BASE)
    assert await deliver_once(services, http) == 1  # 200
    (delivery,) = await services.alerts.deliveries()
    assert (delivery.status, delivery.attempts, delivery.last_http_status) == ("delivered", 3, 200)
    attempts = await services.alerts.attempts(delivery.id)
    assert [(a.http_status, a.error) for a in attempts] == [
        (500, "HTTP 500"),
        (503, "HTTP 503"),
        (200, None),
    ]
    assert [r.answered for r in receiver.received] == [500, 503, 200]
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 1
    assert len({r.body for r in receiver.received}) == 1
    for got in receiver.received:
        verified(got)


async def test_after_the_last_attempt_a_delivery_is_failed(
    services: Services, receiver: Receiver, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    receiver.statuses[:] = [500] * 10
    _, key = await budgeted_user(services)
    await charge(services, key, 500)
    for _ in range(5):
        await deliver_once(services, http)
        clock.advance(3600)
    (delivery,) = await services.alerts.deliveries()
    assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == ("failed", 3, None)
    assert len(receiver.received) == 3


async def test_an_unreachable_receiver_is_an_error_recorded_and_retried(
    store: Store, clock: FakeClock, http: httpx.AsyncClient
) -> None:
    url = f"http://127.0.0.1:{free_port()}/hook"
    settings = Settings(alert_webhook_url=url, alert_webhook_secret=SECRET)
    services = Services.build(settings, store, clock=clock)
    _, key = await budgeted_user(services)
    await charge(services, key, 500)
    await deliver_once(services, http)
    (delivery,) = await services.alerts.deliveries()
    assert delivery.status == "pending" and delivery.last_http_status is None
    assert delivery.last_error is not None and delivery.last_error.startswith("ConnectError")
    assert SECRET not in delivery.last_error


async def test_the_users_own_webhook_gets_their_alerts_too(
    services: Services, receiver: Receiver, http: httpx.AsyncClient
) -> None:
    user, key = await budgeted_user(services)
    with receiving() as own:
        await services.alerts.set_webhook(user, own.url, actor="cli", by_operator=True)
        await charge(services, key, 500)
        assert await deliver_once(services, http) == 2
        (mine,) = own.received
        (global_,) = receiver.received
    assert verified(mine) == verified(global_)
    assert mine.headers["webhook-id"] == global_.headers["webhook-id"]


async def test_a_users_webhook_must_be_public_https_unless_allowed(
    store: Store, clock: FakeClock
) -> None:
    services = Services.build(Settings(), store, clock=clock)
    user = await services.users.create("bob@example.com", "correct horse battery")
    refused = (
        "http://example.com/h", "https://127.0.0.1/h", "https://10.1.2.3/h",
        "https://localhost/h", "https://u:p@example.com/h", "ftp://example.com/h",
    )  # fmt: skip
    for url in refused:
        with pytest.raises(BadRequest) as caught:
            await services.alerts.set_webhook(user, url, actor="user", by_operator=False)
        assert caught.value.field == "webhook_url"
    url = "https://hooks.example.com/ada"
    assert await services.alerts.set_webhook(user, url, actor="u", by_operator=False) == url
    assert await services.alerts.webhook_of(user.id) == url
    # The operator may point anywhere; a blank URL removes it.
    local = "http://127.0.0.1:9/h"
    assert await services.alerts.set_webhook(user, local, actor="cli", by_operator=True) == local
    assert await services.alerts.set_webhook(user, " ", actor="u", by_operator=False) is None
    assert await services.alerts.webhook_of(user.id) is None


class Inbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 OK"


async def test_alerts_are_emailed_through_a_real_smtp_server(
    store: Store, clock: FakeClock, http: httpx.AsyncClient
) -> None:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        settings = Settings(smtp_host="127.0.0.1", smtp_port=port, smtp_starttls=False,
                            smtp_from="gateway@example.com")  # fmt: skip
        services = Services.build(settings, store, clock=clock)
        user, key = await budgeted_user(services)
        await charge(services, key, 1000)
        assert await deliver_once(services, http) == 3
    finally:
        controller.stop()
    subjects = sorted(m["Subject"] for m in inbox.messages)
    assert subjects == [f"ModelGates: {t}% of a key's limit used" for t in (100, 50, 80)]
    assert {m["To"] for m in inbox.messages} == {user.email}
    body = inbox.messages[0].get_content().replace("\r\n", "\n")
    assert "is used: $0.000001 of $0.000001 in the daily window from" in body
    event = msgspec.json.decode(body.split("The event as JSON:\n", 1)[1])
    assert event["type"] == EVENT_TYPE
    statuses = {d.status for d in await services.alerts.deliveries()}
    assert statuses == {"delivered"}
