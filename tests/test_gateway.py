"""The OpenAI-compatible gateway in-process, against the fake upstream, on SQLite and PostgreSQL.

Prices in the test config: 1 USD per million prompt tokens and 2 USD per million
completion tokens, i.e. 1000 and 2000 nano-dollars a token. The fake upstream
counts prompt tokens as words and answers ``max_tokens`` completion tokens.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from modelgates.admission import Ask
from modelgates.app import build_app
from modelgates.container import Services
from modelgates.gateway.sse import lines as _lines
from modelgates.models import ApiKey, Generation
from modelgates.money import NANOS_PER_USD
from modelgates.services.metering import Ticket
from modelgates.settings import Settings
from modelgates.store import Store
from modelgates.windows import Reset
from tests.conftest import UPSTREAM_KEY, Account
from tests.support.clock import FakeClock
from tests.support.upstream import Upstream

PROMPT = "one two three four"
MAX_TOKENS = 10
COST = 4 * 1000 + MAX_TOKENS * 2000  # nano-dollars per request of `chat()`
PROMPT_ESTIMATE = -(-len(b'[{"role":"user","content":"one two three four"}]') // 4)
WORST = PROMPT_ESTIMATE * 1000 + MAX_TOKENS * 2000
"""The worst case admission counts for one `chat()` request: its prompt estimate (12
tokens) plus max_tokens, at the model's prices."""
THREE_REQUESTS = 2 * COST + WORST
"""A limit that admits exactly three `chat()` requests one after another."""
WEDNESDAY = datetime(2026, 11, 25, 10, tzinfo=UTC)


def chat_body(model: str = "test/echo", **extra: Any) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": MAX_TOKENS,
        **extra,
    }


def flat(amount: int) -> Ask:
    """An ask of exactly ``amount`` nano-dollars."""
    return Ask(fixed=amount, per_million=0, tokens=0, cap=0)


def record_of(ticket: Ticket, key: ApiKey, cost: int) -> Generation:
    return Generation(
        id=ticket.id, key_hash=key.hash, user_id=key.user_id, app_id=None, model="test/echo",
        provider="fake", upstream_model="echo", api_type="chat", created_at=ticket.admitted_at,
        cost=cost, reserved=ticket.reserved,
    )  # fmt: skip


def nanos(usd: float) -> int:
    return round(usd * NANOS_PER_USD)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error", "user_id"}, body
    assert body["error"]["code"] == response.status_code
    error: dict[str, Any] = body["error"]
    return error


async def usage_of(services: Services, key: str) -> int:
    record = await services.keys.authenticate(f"Bearer {key}")
    return record.usage.total


async def audit_of(services: Services, key: str) -> Any:
    record = await services.keys.authenticate(f"Bearer {key}")
    return await services.store.usage_audit(record.hash, services.clock())


# --- metering ---------------------------------------------------------------


async def test_chat_is_proxied_and_charged(
    gateway_client: httpx.AsyncClient,
    services: Services,
    account: Account,
    fake_upstream: Upstream,
) -> None:
    before = len(fake_upstream.requests)
    response = await gateway_client.post(
        "/api/v1/chat/completions", headers=account.auth, json=chat_body(temperature=0.5)
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["choices"][0]["message"]["content"] == "tok " * MAX_TOKENS
    assert body["usage"]["prompt_tokens"] == 4
    assert body["usage"]["completion_tokens"] == MAX_TOKENS
    assert nanos(body["usage"]["cost"]) == COST
    assert "estimated" not in body["usage"]

    (sent,) = fake_upstream.requests[before:]
    assert sent.path == "/v1/chat/completions"
    assert sent.body["model"] == "echo"
    assert sent.body["temperature"] == 0.5
    assert sent.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert account.key not in str(sent.headers)

    assert await usage_of(services, account.key) == COST
    audit = await audit_of(services, account.key)
    assert (audit.charged, audit.charges, audit.reserved) == (COST, 1, 0)


async def test_completions_and_embeddings(
    gateway_client: httpx.AsyncClient, services: Services, account: Account
) -> None:
    completion = await gateway_client.post(
        "/api/v1/completions",
        headers=account.auth,
        json={"model": "test/echo", "prompt": "say three words", "max_tokens": 2},
    )
    assert completion.status_code == 200, completion.text
    assert completion.json()["choices"][0]["text"] == "tok tok "
    assert nanos(completion.json()["usage"]["cost"]) == 3 * 1000 + 2 * 2000

    embedded = await gateway_client.post(
        "/api/v1/embeddings",
        headers=account.auth,
        json={"model": "test/echo", "input": ["a b", "c d e"]},
    )
    assert embedded.status_code == 200, embedded.text
    assert len(embedded.json()["data"]) == 2
    assert nanos(embedded.json()["usage"]["cost"]) == 5 * 1000
    assert await usage_of(services, account.key) == 7000 + 5000


async def test_missing_usage_is_charged_by_estimate(
    gateway_client: httpx.AsyncClient, services: Services, account: Account
) -> None:
    response = await gateway_client.post(
        "/api/v1/chat/completions", headers=account.auth, json=chat_body("test/no-usage")
    )
    assert response.status_code == 200, response.text
    usage = response.json()["usage"]
    assert usage["estimated"] is True
    # completion: ceil(len("tok " * 10) / 4) = 10; prompt: ceil(bytes of messages JSON / 4)
    messages = b'[{"role":"user","content":"one two three four"}]'
    prompt = -(-len(messages) // 4)
    assert usage["prompt_tokens"] == prompt
    assert usage["completion_tokens"] == 10
    assert nanos(usage["cost"]) == prompt * 1000 + 10 * 2000
    audit = await audit_of(services, account.key)
    assert audit.charged == nanos(usage["cost"]) == await usage_of(services, account.key)


async def test_models_lists_the_configured_models(gateway_client: httpx.AsyncClient) -> None:
    response = await gateway_client.get("/api/v1/models")
    assert response.status_code == 200
    ids = {model["id"] for model in response.json()["data"]}
    assert {"test/echo", "test/slow", "down/echo"} <= ids
    echo = next(m for m in response.json()["data"] if m["id"] == "test/echo")
    assert echo["context_length"] == 4096
    assert float(echo["pricing"]["prompt"]) == pytest.approx(1e-6)


# --- enforcement ------------------------------------------------------------


async def test_missing_and_invalid_keys_are_401(gateway_client: httpx.AsyncClient) -> None:
    missing = await gateway_client.post("/api/v1/chat/completions", json=chat_body())
    assert missing.status_code == 401
    assert error_of(missing)["message"] == "Missing Authentication header"
    invalid = await gateway_client.post(
        "/api/v1/chat/completions", headers=bearer("sk-mg-v1-" + "0" * 64), json=chat_body()
    )
    assert invalid.status_code == 401
    assert error_of(invalid)["message"] == "Invalid API key"


async def test_expired_disabled_and_management_keys(
    gateway_client: httpx.AsyncClient, services: Services, account: Account, clock: FakeClock
) -> None:
    expiring = await services.keys.create(
        account.user, name="soon", expires_at=clock() + timedelta(hours=1)
    )
    disabled = services.keys.mint(user_id=account.user.id, name="off")
    await services.store.create_key(replace(disabled.record, disabled=True))
    management = await services.keys.create(account.user, name="admin", is_management=True)
    clock.advance(3600)

    for key, status, message in [
        (expiring.secret, 401, "Key expired"),
        (disabled.secret, 401, "Key disabled"),
        (management.secret, 403, "Management keys cannot be used for model requests"),
    ]:
        response = await gateway_client.post(
            "/api/v1/chat/completions", headers=bearer(key), json=chat_body()
        )
        assert response.status_code == status, response.text
        assert error_of(response)["message"] == message


async def test_unknown_or_missing_model_is_400(
    gateway_client: httpx.AsyncClient, account: Account
) -> None:
    unknown = await gateway_client.post(
        "/api/v1/chat/completions", headers=account.auth, json=chat_body("nope/none")
    )
    assert unknown.status_code == 400
    assert error_of(unknown)["metadata"]["field"] == "model"
    assert error_of(unknown)["message"] == "Unknown model: nope/none"
    missing = await gateway_client.post(
        "/api/v1/embeddings", headers=account.auth, json={"input": "x"}
    )
    assert missing.status_code == 400
    assert error_of(missing)["metadata"]["field"] == "model"
    bad_tokens = await gateway_client.post(
        "/api/v1/chat/completions", headers=account.auth, json=chat_body(max_tokens="5")
    )
    assert bad_tokens.status_code == 400
    assert error_of(bad_tokens)["metadata"]["field"] == "max_tokens"
    not_json = await gateway_client.post(
        "/api/v1/chat/completions", headers=account.auth, content=b"{nope"
    )
    assert not_json.status_code == 400


@pytest.mark.parametrize("model", ["test/fail", "down/echo"])
async def test_upstream_down_is_502_and_free(
    gateway_client: httpx.AsyncClient, services: Services, account: Account, model: str
) -> None:
    response = await gateway_client.post(
        "/api/v1/chat/completions", headers=account.auth, json=chat_body(model)
    )
    assert response.status_code == 502, response.text
    assert error_of(response)["message"] == "Upstream unavailable"
    audit = await audit_of(services, account.key)
    assert (audit.charged, audit.charges, audit.reservations) == (0, 0, 0)


async def test_upstream_4xx_keeps_its_status(
    gateway_client: httpx.AsyncClient, services: Services, account: Account
) -> None:
    response = await gateway_client.post(
        "/api/v1/chat/completions", headers=account.auth, json=chat_body("test/reject")
    )
    assert response.status_code == 400, response.text
    error = error_of(response)
    assert error["message"] == "Upstream rejected the request"
    assert error["metadata"]["upstream_message"] == "context too long"
    assert error["metadata"]["upstream_status"] == 400
    audit = await audit_of(services, account.key)
    assert (audit.charged, audit.reservations) == (0, 0)


async def test_no_config_is_503_and_models_empty(
    store: Store, clock: FakeClock, account: Account
) -> None:
    app = build_app(Settings(), store=store, clock=clock)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as http,
    ):
        models = await http.get("/api/v1/models")
        assert models.status_code == 200
        assert models.json()["data"] == []
        for path in ("chat/completions", "completions", "embeddings"):
            response = await http.post(f"/api/v1/{path}", headers=account.auth, json=chat_body())
            assert response.status_code == 503, response.text
            assert "No upstream is configured" in error_of(response)["message"]


# --- limits with a controlled clock -------------------------------------------


async def limited_key(services: Services, account: Account, reset: Reset | None) -> str:
    new = await services.keys.create(
        account.user,
        name=f"limited-{reset}",
        limit_usd=THREE_REQUESTS / NANOS_PER_USD,
        limit_reset=reset,
    )
    return new.secret


async def spend_until_refused(http: httpx.AsyncClient, key: str) -> tuple[int, str]:
    """Send requests until one is refused; return (admitted count, refusal message)."""
    for admitted in range(10):
        response = await http.post(
            "/api/v1/chat/completions", headers=bearer(key), json=chat_body()
        )
        if response.status_code != 200:
            assert response.status_code == 403, response.text
            return admitted, error_of(response)["message"]
    raise AssertionError("never refused")


@pytest.mark.parametrize(
    ("reset", "later"),
    [
        ("daily", datetime(2026, 11, 26, 0, 0, tzinfo=UTC)),
        ("weekly", datetime(2026, 11, 30, 0, 0, tzinfo=UTC)),
        ("monthly", datetime(2026, 12, 1, 0, 0, tzinfo=UTC)),
    ],
)
async def test_window_limit_stops_and_resets_at_the_boundary(
    gateway_client: httpx.AsyncClient,
    services: Services,
    account: Account,
    clock: FakeClock,
    reset: Reset,
    later: datetime,
) -> None:
    clock.set(WEDNESDAY)
    key = await limited_key(services, account, reset)
    admitted, message = await spend_until_refused(gateway_client, key)
    assert admitted == 3
    assert message == f"Key limit exceeded ({reset} limit)"

    clock.set(later - timedelta(microseconds=1))
    still = await gateway_client.post(
        "/api/v1/chat/completions", headers=bearer(key), json=chat_body()
    )
    assert still.status_code == 403
    clock.set(later)
    admitted, message = await spend_until_refused(gateway_client, key)
    assert admitted == 3
    assert await usage_of(services, key) == 6 * COST


async def test_lifetime_limit_never_recovers(
    gateway_client: httpx.AsyncClient, services: Services, account: Account, clock: FakeClock
) -> None:
    clock.set(WEDNESDAY)
    key = await limited_key(services, account, None)
    admitted, message = await spend_until_refused(gateway_client, key)
    assert (admitted, message) == (3, "Key limit exceeded (total limit)")
    clock.advance(400 * 86_400)
    refused = await gateway_client.post(
        "/api/v1/chat/completions", headers=bearer(key), json=chat_body()
    )
    assert refused.status_code == 403
    assert error_of(refused)["message"] == "Key limit exceeded (total limit)"


async def test_key_view_reflects_gateway_spend(
    gateway_client: httpx.AsyncClient, services: Services, account: Account, clock: FakeClock
) -> None:
    clock.set(WEDNESDAY)
    key = await limited_key(services, account, "daily")
    await gateway_client.post("/api/v1/chat/completions", headers=bearer(key), json=chat_body())
    data = (await gateway_client.get("/api/v1/key", headers=bearer(key))).json()["data"]
    assert nanos(data["usage"]) == nanos(data["usage_daily"]) == COST
    assert nanos(data["limit_remaining"]) == THREE_REQUESTS - COST


async def test_expired_reservations_stop_counting(
    services: Services, account: Account, clock: FakeClock
) -> None:
    """A crashed process's reservation blocks the key only until it expires."""
    clock.set(WEDNESDAY)
    key = await services.keys.authenticate(
        f"Bearer {await limited_key(services, account, 'daily')}"
    )
    now = clock()
    admission = await services.store.reserve(
        key.hash, "crashed", flat(3 * COST), now, now + timedelta(seconds=60)
    )
    assert admission.admitted
    blocked = await services.store.reserve(key.hash, "next", flat(COST), now, now + timedelta(60))
    assert blocked.refused is not None and blocked.refused.kind == "daily"
    later = now + timedelta(seconds=61)
    freed = await services.store.reserve(key.hash, "next", flat(COST), later, later + timedelta(60))
    assert freed.admitted
    assert freed.amount == COST


async def test_only_keys_with_a_limit_hold_a_reservation_in_flight(
    services: Services, account: Account, clock: FakeClock
) -> None:
    """An unlimited key has nothing to refuse: its admission writes nothing, and its
    settlement still charges it in full."""
    clock.set(WEDNESDAY)
    unlimited = await services.keys.authenticate(f"Bearer {account.key}")
    limited = await services.keys.authenticate(
        f"Bearer {await limited_key(services, account, 'daily')}"
    )
    assert unlimited.limit is None and limited.limit is not None
    free = await services.metering.admit(unlimited, flat(COST), "gen-free")
    held = await services.metering.admit(limited, flat(COST), "gen-held")
    assert (free.reserved, held.reserved) == (0, COST)
    assert (await services.store.usage_audit(unlimited.hash, clock())).reservations == 0
    assert (await services.store.usage_audit(limited.hash, clock())).reservations == 1
    for ticket, key in ((free, unlimited), (held, limited)):
        await services.metering.settle(ticket, record_of(ticket, key, 2_000))
        audit = await services.store.usage_audit(key.hash, clock())
        assert (audit.charged, audit.charges, audit.reservations) == (2_000, 1, 0)


# --- the concurrency invariant, in one process --------------------------------


async def test_concurrent_requests_never_overspend(
    gateway_client: httpx.AsyncClient, services: Services, account: Account, clock: FakeClock
) -> None:
    clock.set(WEDNESDAY)
    limit = 50 * COST
    new = await services.keys.create(account.user, name="race", limit_usd=limit / NANOS_PER_USD)
    responses = await asyncio.gather(
        *(
            gateway_client.post(
                "/api/v1/chat/completions", headers=bearer(new.secret), json=chat_body()
            )
            for _ in range(200)
        )
    )
    admitted = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code != 200]
    assert {r.status_code for r in refused} <= {403}
    assert all(
        error_of(r)["message"].startswith("Key limit exceeded (total limit)") for r in refused
    )
    spent = sum(nanos(r.json()["usage"]["cost"]) for r in admitted)
    assert spent <= limit
    assert len(admitted) >= 1
    audit = await audit_of(services, new.secret)
    assert await usage_of(services, new.secret) == spent == audit.charged
    assert audit.charges == len(admitted)
    assert audit.reservations == 0


async def test_sse_lines_split_on_any_line_end_across_chunks() -> None:
    """The relay's line splitter: CRLF, LF and CR ends, lines cut across chunks, and a
    line longer than aiohttp's ``readline`` limit (128 KiB) arrive whole."""
    long = "data: " + "x" * 300_000

    async def chunks() -> AsyncIterator[bytes]:
        for chunk in (b"data: a\r", b"\n\r\ndata: b\rdata: ", b"c\n\n", long.encode(), b"\nend"):
            yield chunk

    lines = [line async for line in _lines(chunks())]
    assert lines == ["data: a", "", "data: b", "data: c", "", long, "end"]
