"""The budget alerts' outbox on both stores: alerts recorded by the settlement in the
charge's transaction, once per threshold and window; fan-out, leases and attempts."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from modelgates import tokens
from modelgates.models import AlertChannel, AttemptOutcome, BudgetAlert, User
from modelgates.store import Store, open_store
from tests.test_store import add_user, make_key, make_record

THRESHOLDS = (50, 80, 100)
Destination = tuple[str, AlertChannel, str]
TUESDAY = datetime(2026, 11, 24, 10, 30, tzinfo=UTC)


async def fired(store: Store, user: User) -> list[BudgetAlert]:
    """Every alert of the user, fanned out (with no destination) so they can be listed."""
    found = await store.unsent_alerts(1000)
    for item in found:
        hook: Destination = ("dlv_" + item.alert.id, "webhook", "https://example.com/hook")
        await store.fan_out(item.alert.id, "{}", [hook], TUESDAY)
    deliveries = await store.list_deliveries(offset=0, limit=1000, user_id=user.id)
    return sorted((d.alert for d in deliveries), key=lambda a: (a.created_at, a.threshold))


async def test_thresholds_fire_once_per_window_and_again_in_the_next(store: Store) -> None:
    user = await add_user(store, TUESDAY)
    key = make_key(user, TUESDAY, limit=1000, limit_reset="daily")
    await store.create_key(key)
    for cost, expected in ((400, 0), (200, 1), (100, 0), (100, 1), (200, 1), (0, 0)):
        assert await store.settle("r", make_record(key, cost, TUESDAY), THRESHOLDS) == expected
    alerts = await fired(store, user)
    assert [(a.threshold, a.usage) for a in alerts] == [(50, 600), (80, 800), (100, 1000)]

    # The next day's window: one charge crossing 50 and 80 fires both, once.
    wednesday = TUESDAY + timedelta(days=1)
    assert await store.settle("r", make_record(key, 850, wednesday), THRESHOLDS) == 2
    assert await store.settle("r", make_record(key, 10, wednesday), THRESHOLDS) == 0
    alerts = await fired(store, user)
    next_day = [a for a in alerts if a.created_at == wednesday]
    assert [(a.threshold, a.period, a.window_start) for a in next_day] == [
        (50, "daily", datetime(2026, 11, 25, tzinfo=UTC)),
        (80, "daily", datetime(2026, 11, 25, tzinfo=UTC)),
    ]
    assert all(a.scope == "key_limit" and a.subject == key.hash for a in alerts)
    assert {a.limit for a in alerts} == {1000}


async def test_a_lifetime_limit_fires_once_ever(store: Store) -> None:
    user = await add_user(store, TUESDAY)
    key = make_key(user, TUESDAY, limit=100)
    await store.create_key(key)
    assert await store.settle("r", make_record(key, 60, TUESDAY), THRESHOLDS) == 1
    later = TUESDAY + timedelta(days=40)
    assert await store.settle("r", make_record(key, 1, later), THRESHOLDS) == 0
    (alert,) = await fired(store, user)
    assert (alert.period, alert.window_start, alert.threshold) == ("total", None, 50)


async def test_user_budgets_fire_for_the_user_across_their_keys(store: Store) -> None:
    user = await add_user(store, TUESDAY)
    await store.update_user(user.id, TUESDAY, limit=1000, limit_reset="monthly")
    first, second = make_key(user, TUESDAY), make_key(user, TUESDAY)
    await store.create_key(first)
    await store.create_key(second)
    assert await store.settle("r", make_record(first, 300, TUESDAY), THRESHOLDS) == 0
    assert await store.settle("r", make_record(second, 300, TUESDAY), THRESHOLDS) == 1
    (alert,) = await fired(store, user)
    assert (alert.scope, alert.subject, alert.key_hash) == ("user_budget", user.id, second.hash)
    assert (alert.usage, alert.limit, alert.period) == (600, 1000, "monthly")
    assert alert.window_start == datetime(2026, 11, 1, tzinfo=UTC)
    # Without thresholds nothing is recorded, and the charge still counts.
    assert await store.settle("r", make_record(first, 400, TUESDAY), ()) == 0
    fresh = await store.get_user(user.id)
    assert fresh is not None and fresh.usage.total == 1000


async def test_a_rotated_keys_charge_alerts_on_its_successor(store: Store) -> None:
    """A request admitted before a rotation settles after it: charged to the successor,
    whose limit the alert names."""
    user = await add_user(store, TUESDAY)
    old = make_key(user, TUESDAY, limit=1000, limit_reset="daily")
    await store.create_key(old)
    new_hash = tokens.sha256_hex("successor")
    assert await store.rotate_key(old.hash, new_hash, TUESDAY, TUESDAY) is not None

    assert await store.settle("r", make_record(old, 600, TUESDAY, "late"), THRESHOLDS) == 1

    (alert,) = await fired(store, user)
    assert (alert.scope, alert.subject, alert.key_hash) == ("key_limit", new_hash, new_hash)
    assert (alert.threshold, alert.usage, alert.generation_id) == (50, 600, "late")
    record = await store.get_generation("late")
    assert record is not None and record.key_hash == new_hash


async def test_thresholds_already_passed_when_a_limit_is_lowered_fire_with_the_next_charge(
    store: Store,
) -> None:
    """A threshold fires when the window's spend has reached it and it has not fired in
    that window yet, not only when a charge crosses it."""
    user = await add_user(store, TUESDAY)
    key = make_key(user, TUESDAY, limit=10_000, limit_reset="daily")
    await store.create_key(key)
    assert await store.settle("r", make_record(key, 900, TUESDAY), THRESHOLDS) == 0
    await store.update_key(key.hash, TUESDAY, limit=1000)

    assert await store.settle("r", make_record(key, 1, TUESDAY), THRESHOLDS) == 2
    assert await store.settle("r", make_record(key, 1, TUESDAY), THRESHOLDS) == 0

    alerts = await fired(store, user)
    assert [(a.threshold, a.usage, a.limit) for a in alerts] == [(50, 901, 1000), (80, 901, 1000)]


async def test_concurrent_settlements_from_two_processes_fire_each_threshold_once(
    store: Store, database_url: str
) -> None:
    user = await add_user(store, TUESDAY)
    key = make_key(user, TUESDAY, limit=10_000, limit_reset="weekly")
    await store.create_key(key)
    other = await open_store(database_url, pool_size=4)
    try:
        charges = [
            s.settle("r", make_record(key, 100, TUESDAY), THRESHOLDS)
            for _ in range(60)
            for s in (store, other)
        ]
        counts = await asyncio.gather(*charges)
    finally:
        await other.close()
    assert sum(counts) == 3
    assert sorted(a.threshold for a in await fired(store, user)) == [50, 80, 100]


async def test_claims_lease_deliveries_and_attempts_are_recorded(store: Store) -> None:
    user = await add_user(store, TUESDAY)
    key = make_key(user, TUESDAY, limit=100)
    await store.create_key(key)
    await store.settle("r", make_record(key, 50, TUESDAY), THRESHOLDS)
    (item,) = await store.unsent_alerts(10)
    assert item.user_email == user.email and item.key_label == key.label
    destinations: list[Destination] = [
        ("dlv_a", "webhook", "https://a.example/h"),
        ("dlv_b", "email", user.email),
    ]
    await store.fan_out(item.alert.id, '{"x": 1}', destinations, TUESDAY)
    await store.fan_out(item.alert.id, '{"x": 2}', destinations, TUESDAY)
    assert await store.unsent_alerts(10) == []

    lease = TUESDAY + timedelta(seconds=30)
    claimed = await store.claim_deliveries(TUESDAY, lease, "one", 10)
    assert sorted(d.id for d, _ in claimed) == ["dlv_a", "dlv_b"]
    assert {payload for _, payload in claimed} == {'{"x": 1}'}
    # Leased: nobody else gets them until the lease ends.
    assert await store.claim_deliveries(TUESDAY, lease, "two", 10) == []

    retry_at = TUESDAY + timedelta(seconds=10)
    failed = AttemptOutcome(500, "HTTP 500", False, retry_at)
    assert await store.finish_attempt("dlv_a", "one", failed, TUESDAY)
    assert not await store.finish_attempt("dlv_a", "one", failed, TUESDAY)  # lease gone
    done = AttemptOutcome(None, None, True, None)
    assert await store.finish_attempt("dlv_b", "one", done, TUESDAY)

    assert await store.claim_deliveries(TUESDAY, lease, "two", 10) == []  # not due yet
    again = await store.claim_deliveries(retry_at, retry_at + timedelta(seconds=30), "two", 10)
    assert [(d.id, d.attempts, d.last_http_status) for d, _ in again] == [("dlv_a", 1, 500)]
    delivered_at = retry_at + timedelta(seconds=1)
    ok = AttemptOutcome(200, None, True, None)
    assert await store.finish_attempt("dlv_a", "two", ok, delivered_at)

    listed = {d.id: d for d in await store.list_deliveries(offset=0, limit=10)}
    assert listed["dlv_a"].status == "delivered" and listed["dlv_a"].attempts == 2
    assert listed["dlv_a"].delivered_at == delivered_at
    assert listed["dlv_b"].status == "delivered" and listed["dlv_b"].channel == "email"
    attempts = await store.list_attempts("dlv_a")
    assert [(a.number, a.http_status, a.error) for a in attempts] == [
        (1, 500, "HTTP 500"),
        (2, 200, None),
    ]
    # Delivered ones are never claimed again.
    far = TUESDAY + timedelta(days=1)
    assert await store.claim_deliveries(far, far + timedelta(seconds=30), "three", 10) == []


async def test_a_crashed_claim_is_claimed_again_once_its_lease_ends(store: Store) -> None:
    user = await add_user(store, TUESDAY)
    key = make_key(user, TUESDAY, limit=100)
    await store.create_key(key)
    await store.settle("r", make_record(key, 100, TUESDAY), THRESHOLDS)
    alerts = await store.unsent_alerts(10)
    assert len(alerts) == 3
    for number, item in enumerate(alerts):
        hook: Destination = (f"dlv_{number}", "webhook", "https://h")
        await store.fan_out(item.alert.id, "{}", [hook], TUESDAY)
    lease = TUESDAY + timedelta(seconds=30)
    assert len(await store.claim_deliveries(TUESDAY, lease, "dead", 2)) == 2
    longer = lease + timedelta(seconds=60)
    (alive,) = await store.claim_deliveries(TUESDAY, longer, "alive", 10)
    assert len(await store.claim_deliveries(lease, lease + timedelta(seconds=30), "next", 10)) == 2
    # A failure recorded as final leaves the delivery failed, never claimed again.
    gave_up = AttemptOutcome(None, "ConnectError", False, None)
    finished = [await store.finish_attempt(f"dlv_{n}", "next", gave_up, lease) for n in range(3)]
    assert finished == [f"dlv_{n}" != alive[0].id for n in range(3)]
    statuses = sorted(d.status for d in await store.list_deliveries(offset=0, limit=10))
    assert statuses == ["failed", "failed", "pending"]


async def test_the_users_webhook_is_set_replaced_and_removed(store: Store) -> None:
    user = await add_user(store, TUESDAY)
    assert await store.get_alert_webhook(user.id) is None
    await store.set_alert_webhook(user.id, "https://a.example/1", TUESDAY)
    await store.set_alert_webhook(user.id, "https://a.example/2", TUESDAY)
    assert await store.get_alert_webhook(user.id) == "https://a.example/2"
    await store.set_alert_webhook(user.id, None, TUESDAY)
    assert await store.get_alert_webhook(user.id) is None
