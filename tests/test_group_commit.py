"""Group commit: concurrent admissions and settlements share commits, and decide what
they would decide one after another (spend ≤ limit, usage == the records), on both
stores; on PostgreSQL a failed batch is retried request by request, and an admission
whose caller went away leaves no reservation behind."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
import httpx
import pytest

from modelgates.admission import Ask
from modelgates.container import Services
from modelgates.store import Store
from modelgates.store.postgres import PostgresStore
from tests.conftest import Account
from tests.test_metering import bearer, chat, ledger, limited, nanos

ASK = Ask(fixed=0, per_million=1_000_000, tokens=1000, cap=1000)
"""1,000 nano-dollars: 1,000 tokens at one nano-dollar each."""


async def test_a_hot_key_under_concurrent_requests_never_overspends(
    gateway_client: httpx.AsyncClient, services: Services, account: Account, store: Store
) -> None:
    key = await limited(services, account, 0.0005)  # 500,000: about 15 requests of 32,000
    batches_before = store._meter.batches if isinstance(store, PostgresStore) else 0
    responses = await asyncio.gather(
        *(
            gateway_client.post(
                "/api/v1/chat/completions", headers=bearer(key), json=chat(max_tokens=10)
            )
            for _ in range(60)
        )
    )
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 403}
    admitted = [r for r in responses if r.status_code == 200]
    spent = sum(nanos(r.json()["usage"]["cost"]) for r in admitted)
    assert 0 < spent <= 500_000
    assert len(admitted) == 500_000 // 32_000  # as many as one after another would admit
    assert await ledger(services, key) == (spent, spent, 0)
    if isinstance(store, PostgresStore):
        # 60 admissions and every settlement: shared commits, not one each.
        assert store._meter.batches - batches_before < 60 + len(admitted)


ON_POSTGRES = pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
"""PostgreSQL's group commit only (SQLite's writer batches writes on its own)."""


@pytest.fixture
def postgres(store: Store) -> PostgresStore:
    assert isinstance(store, PostgresStore)
    return store


@ON_POSTGRES
async def test_a_failing_batch_is_retried_one_by_one(
    postgres: PostgresStore, services: Services, account: Account
) -> None:
    key = await services.keys.authenticate(f"Bearer {await limited(services, account, 1.0)}")
    now = services.clock()
    later = now + timedelta(minutes=15)
    # The same reservation id twice fails the batch; one by one, only the second fails.
    first, twin, other = await asyncio.gather(
        postgres.reserve(key.hash, "gen-twin", ASK, now, later),
        postgres.reserve(key.hash, "gen-twin", ASK, now, later),
        postgres.reserve(key.hash, "gen-other", ASK, now, later),
        return_exceptions=True,
    )
    assert not isinstance(first, BaseException) and first.amount == 1000
    assert isinstance(twin, asyncpg.UniqueViolationError)
    assert not isinstance(other, BaseException) and other.amount == 1000
    audit = await postgres.usage_audit(key.hash, now)
    assert (audit.reserved, audit.reservations) == (2000, 2)


@ON_POSTGRES
async def test_an_admission_whose_caller_left_holds_no_budget(
    postgres: PostgresStore, services: Services, account: Account
) -> None:
    key = await services.keys.authenticate(f"Bearer {await limited(services, account, 1.0)}")
    now = services.clock()
    later = now + timedelta(minutes=15)
    kept = asyncio.ensure_future(postgres.reserve(key.hash, "gen-kept", ASK, now, later))
    left = asyncio.ensure_future(postgres.reserve(key.hash, "gen-left", ASK, now, later))
    await asyncio.sleep(0)  # both queued, their batch on its way
    left.cancel()
    assert (await kept).amount == 1000
    await postgres._meter.close()
    for _ in range(100):  # the drop runs beside the batch: wait for it, boundedly
        audit = await postgres.usage_audit(key.hash, now)
        if audit.reservations == 1:
            break
        await asyncio.sleep(0.02)
    assert (audit.reserved, audit.reservations) == (1000, 1)
