"""Metering as an attacker tries it: each way a limit was once talked past, on SQLite and
PostgreSQL, in-process against the fake upstream.

Prices (tests/support/upstream.py): 1000 nano-dollars a prompt token, 2000 a
completion token; the fake upstream counts prompt words and answers max_tokens a choice.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from modelgates import metrics
from modelgates.container import Services
from modelgates.money import NANOS_PER_USD
from tests.conftest import Account, make_account
from tests.support.clock import FakeClock
from tests.support.upstream import Upstream

WEDNESDAY = datetime(2026, 11, 25, 10, tzinfo=UTC)
MESSAGES = [{"role": "user", "content": "one two three four"}]
PROMPT_ESTIMATE = 12  # ceil(len(json(MESSAGES)) / 4)


def nanos(usd: float) -> int:
    return round(usd * NANOS_PER_USD)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def chat(**extra: Any) -> dict[str, Any]:
    return {"model": "test/echo", "messages": MESSAGES, **extra}


async def limited(services: Services, account: Account, usd: float, **extra: Any) -> str:
    new = await services.keys.create(account.user, name="limited", limit_usd=usd, **extra)
    return new.secret


async def ledger(services: Services, key: str) -> tuple[int, int, int]:
    """(usage, sum of generation records, live reservations) of a key."""
    record = await services.keys.authenticate(f"Bearer {key}")
    audit = await services.store.usage_audit(record.hash, services.clock())
    return record.usage.total, audit.charged, audit.reservations


def error_of(response: httpx.Response) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == response.status_code
    return error


# --- a key never mints a looser key ----------------------------------------------


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(32)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


async def mint(
    http: httpx.AsyncClient, parent: str, **terms: Any
) -> tuple[httpx.Response, str | None]:
    """A code asked for by ``parent`` and exchanged: (the code answer, the minted key)."""
    verifier, challenge = pkce_pair()
    asked = await http.post(
        "/api/v1/auth/keys/code",
        headers=bearer(parent),
        json={"callback_url": "https://app.example.com/cb", "code_challenge": challenge,
              "code_challenge_method": "S256", **terms},
    )  # fmt: skip
    if asked.status_code != 200:
        return asked, None
    exchanged = await http.post(
        "/api/v1/auth/keys",
        json={"code": asked.json()["data"]["id"], "code_verifier": verifier},
    )
    return asked, exchanged.json().get("key") if exchanged.status_code == 200 else None


async def test_a_minted_key_spends_from_its_parents_limit(
    gateway_client: httpx.AsyncClient, services: Services, account: Account, clock: FakeClock
) -> None:
    clock.set(WEDNESDAY)
    limit = 100_000  # a little over three requests of 24,000 (worst case 32,000)
    parent = await limited(services, account, limit / NANOS_PER_USD, limit_reset="daily")
    _, child = await mint(gateway_client, parent)  # asks for no limit of its own
    _, sibling = await mint(gateway_client, parent, limit=5)
    assert child is not None and sibling is not None

    statuses = []
    for key in [child, sibling] * 5:
        response = await gateway_client.post(
            "/api/v1/chat/completions", headers=bearer(key), json=chat(max_tokens=10)
        )
        statuses.append(response.status_code)
        if response.status_code == 403:
            assert error_of(response)["message"].startswith(
                "Limit of the key that minted this key exceeded (daily limit)"
            )
    assert statuses.count(200) == 3

    spent = sum([(await ledger(services, key))[0] for key in (child, sibling)])
    assert spent == 3 * 24_000 <= limit
    view = (await gateway_client.get("/api/v1/key", headers=bearer(child))).json()["data"]
    assert view["limit"] is None  # no limit of its own ...
    (budget,) = view["budgets"]  # ... but its parent's binds it
    assert budget["scope"] == "parent_key"
    assert nanos(budget["spend_usd"]) == spent
    assert view["effective_budget"] == budget
    parent_view = (await gateway_client.get("/api/v1/key", headers=bearer(parent))).json()["data"]
    assert nanos(parent_view["limit_remaining"]) == limit - spent
    assert nanos(parent_view["usage"]) == 0  # its own usage is its own records only

    # The parent cannot spend what its sub-keys spent either.
    refused = await gateway_client.post(
        "/api/v1/chat/completions", headers=bearer(parent), json=chat(max_tokens=10)
    )
    assert refused.status_code == 403


async def test_a_minted_key_expires_no_later_than_its_parent(
    gateway_client: httpx.AsyncClient, services: Services, account: Account, clock: FakeClock
) -> None:
    clock.set(WEDNESDAY)
    expires = WEDNESDAY + timedelta(days=2)
    parent = (
        await services.keys.create(account.user, name="bounded", limit_usd=1, expires_at=expires)
    ).secret
    later = (expires + timedelta(days=1)).isoformat()
    refused, _ = await mint(gateway_client, parent, expires_at=later)
    assert refused.status_code == 403
    assert error_of(refused)["metadata"]["field"] == "expires_at"

    _, inherits = await mint(gateway_client, parent)
    assert inherits is not None
    view = (await gateway_client.get("/api/v1/key", headers=bearer(inherits))).json()["data"]
    assert view["expires_at"] == "2026-11-27T10:00:00Z"

    sooner = (WEDNESDAY + timedelta(hours=1)).isoformat()
    accepted, within = await mint(gateway_client, parent, expires_at=sooner)
    assert accepted.status_code == 200 and within is not None


@pytest.mark.parametrize("how", ["revoke", "disable"])
async def test_revoking_or_disabling_a_key_cuts_off_what_it_minted(
    gateway_client: httpx.AsyncClient, services: Services, account: Account, how: str
) -> None:
    management = (await services.keys.create(account.user, name="m", is_management=True)).secret
    parent = await limited(services, account, 1.0)
    _, child = await mint(gateway_client, parent)
    assert child is not None
    verifier, challenge = pkce_pair()
    pending = await gateway_client.post(
        "/api/v1/auth/keys/code",
        headers=bearer(parent),
        json={"callback_url": "https://app.example.com/cb", "code_challenge": challenge,
              "code_challenge_method": "S256"},
    )  # fmt: skip
    assert pending.status_code == 200
    parent_hash = hashlib.sha256(parent.encode()).hexdigest()

    if how == "revoke":
        done = await gateway_client.delete(
            f"/api/v1/keys/{parent_hash}", headers=bearer(management)
        )
    else:
        done = await gateway_client.patch(
            f"/api/v1/keys/{parent_hash}", headers=bearer(management), json={"disabled": True}
        )
    assert done.status_code == 200, done.text

    used = await gateway_client.post(
        "/api/v1/chat/completions", headers=bearer(child), json=chat(max_tokens=1)
    )
    assert used.status_code == 401
    assert error_of(used)["message"] == "Key revoked"
    exchanged = await gateway_client.post(
        "/api/v1/auth/keys",
        json={"code": pending.json()["data"]["id"], "code_verifier": verifier},
    )
    assert exchanged.status_code == 403
    child_hash = hashlib.sha256(child.encode()).hexdigest()
    events = await services.audit.events(key_hash=child_hash)
    assert events[0].event == "key.revoked"
    assert events[0].detail is not None and events[0].detail["parent"] == parent_hash


async def test_an_unlimited_personal_key_mints_an_unbounded_key(
    gateway_client: httpx.AsyncClient, account: Account
) -> None:
    _, child = await mint(gateway_client, account.key)
    assert child is not None
    view = (await gateway_client.get("/api/v1/key", headers=bearer(child))).json()["data"]
    assert (view["limit"], view["expires_at"], view["budgets"]) == (None, None, [])


# --- streams settle on the last usage report -----------------------------------


def stream_events(text: str) -> list[str]:
    return [line[6:] for line in text.splitlines() if line.startswith("data: ")]


async def test_cumulative_stream_usage_is_charged_in_full(
    gateway_client: httpx.AsyncClient, services: Services, account: Account
) -> None:
    """vLLM's continuous usage reports a running total in every chunk: the charge is the
    last one, not the first (which once charged a 500-token answer as 20 tokens)."""
    body = chat(max_tokens=50, stream=True, stream_options={"continuous_usage_stats": True,
                                                            "include_usage": True})  # fmt: skip
    response = await gateway_client.post(
        "/api/v1/chat/completions", headers=account.auth, json=body
    )
    assert response.status_code == 200
    events = stream_events(response.text)
    assert events[-1] == "[DONE]"
    with_usage = [httpx.Response(200, content=e).json() for e in events[:-1] if '"usage"' in e]
    assert len(with_usage) == 1  # exactly one usage chunk, though asked and though cumulative
    usage = with_usage[0]["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (4, 50)
    assert nanos(usage["cost"]) == 4 * 1000 + 50 * 2000
    chunks = [httpx.Response(200, content=e).json() for e in events[:-1]]
    assert {c["id"] for c in chunks} == {with_usage[0]["id"]}
    assert {c["model"] for c in chunks} == {"test/echo"}
    assert (await ledger(services, account.key))[:2] == (nanos(usage["cost"]),) * 2


# --- the worst case counts every output ------------------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("chat/completions", chat(max_tokens=5, n=16)),
        ("completions", {"model": "test/echo", "prompt": ["a b c"] * 16, "max_tokens": 5}),
    ],
    ids=["n16", "batch16"],
)
async def test_many_outputs_never_overspend(
    gateway_client: httpx.AsyncClient,
    services: Services,
    account: Account,
    path: str,
    body: dict[str, Any],
) -> None:
    key = await limited(services, account, 0.001)  # about six requests of 16 outputs
    responses = await asyncio.gather(
        *(
            gateway_client.post(f"/api/v1/{path}", headers=bearer(key), json=body)
            for _ in range(100)
        )
    )
    admitted = [r for r in responses if r.status_code == 200]
    assert {r.status_code for r in responses} <= {200, 403}
    assert admitted, [r.text for r in responses][:2]
    spent = sum(nanos(r.json()["usage"]["cost"]) for r in admitted)
    assert spent <= 1_000_000
    assert admitted[0].json()["usage"]["completion_tokens"] == 16 * 5
    assert await ledger(services, key) == (spent, spent, 0)


async def test_a_request_beyond_the_budget_is_refused_with_what_it_can_afford(
    gateway_client: httpx.AsyncClient, services: Services, account: Account
) -> None:
    key = await limited(services, account, 1.0)
    response = await gateway_client.post(
        "/api/v1/chat/completions", headers=bearer(key), json=chat(max_tokens=10_000_000)
    )
    assert response.status_code == 403
    error = error_of(response)
    affordable = (10**9 - PROMPT_ESTIMATE * 1000) // 2000
    assert error["message"] == (
        "Key limit exceeded (total limit): this request requires more credits, or fewer"
        f" max_tokens. You requested up to 10000000 tokens, but can only afford {affordable}."
    )
    assert error["metadata"]["affordable_tokens"] == affordable
    assert await ledger(services, key) == (0, 0, 0)


async def test_without_max_tokens_the_gateway_grants_what_the_budget_affords(
    gateway_client: httpx.AsyncClient,
    services: Services,
    account: Account,
    fake_upstream: Upstream,
) -> None:
    key = await limited(services, account, 0.00005)  # 50,000: the prompt, then 19 tokens
    response = await gateway_client.post(
        "/api/v1/chat/completions", headers=bearer(key), json=chat()
    )
    assert response.status_code == 200, response.text
    granted = (50_000 - PROMPT_ESTIMATE * 1000) // 2000
    assert fake_upstream.requests[-1].body["max_tokens"] == granted
    assert response.json()["usage"]["completion_tokens"] == granted
    assert (await ledger(services, key))[0] <= 50_000

    # An unlimited key's body goes upstream as the client wrote it.
    await gateway_client.post("/api/v1/chat/completions", headers=account.auth, json=chat())
    assert "max_tokens" not in fake_upstream.requests[-1].body


# --- usage the upstream cannot be trusted with --------------------------------------


async def test_a_charge_never_exceeds_its_reservation(
    gateway_client: httpx.AsyncClient, services: Services, account: Account
) -> None:
    key = await limited(services, account, 1.0)
    before = metrics.USAGE_EXCEEDED_RESERVATION._value.get()
    response = await gateway_client.post(
        "/api/v1/chat/completions",
        headers=bearer(key),
        json={**chat(max_tokens=10), "model": "test/inflate"},  # reports 1000 x the prompt
    )
    assert response.status_code == 200
    reserved = PROMPT_ESTIMATE * 1000 + 10 * 2000
    assert nanos(response.json()["usage"]["cost"]) == reserved
    generation = response.json()["id"]
    record = await services.store.get_generation(generation)
    assert record is not None
    assert (record.cost, record.reserved, record.usage_exceeded_reservation) == (
        reserved, reserved, True,
    )  # fmt: skip
    assert metrics.USAGE_EXCEEDED_RESERVATION._value.get() == before + 1
    assert await ledger(services, key) == (reserved, reserved, 0)


@pytest.mark.parametrize("model", ["test/huge", "test/negative", "test/no-usage"])
async def test_unsound_usage_is_estimated_and_always_settled(
    gateway_client: httpx.AsyncClient, services: Services, account: Account, model: str
) -> None:
    key = await limited(services, account, 1.0)
    for stream in (False, True):
        response = await gateway_client.post(
            "/api/v1/chat/completions",
            headers=bearer(key),
            json={**chat(max_tokens=10, stream=stream), "model": model},
        )
        assert response.status_code == 200, response.text
    usage, recorded, reservations = await ledger(services, key)
    estimate = PROMPT_ESTIMATE * 1000 + 10 * 2000  # 10 x "tok " = 40 bytes = 10 tokens
    assert usage == recorded == 2 * estimate
    assert reservations == 0
    if services.store.dialect == "sqlite":  # type: ignore[attr-defined]
        kinds = services.store._reader.execute(  # type: ignore[attr-defined]
            "SELECT typeof(usage_nanos), typeof(usage_day_nanos) FROM api_keys"
        ).fetchall()
        assert {tuple(row) for row in kinds} == {("integer", "integer")}


async def test_max_tokens_beyond_any_model_is_a_400(
    gateway_client: httpx.AsyncClient, account: Account
) -> None:
    for field in ("max_tokens", "max_completion_tokens"):
        response = await gateway_client.post(
            "/api/v1/chat/completions", headers=account.auth, json=chat(**{field: 10**16})
        )
        assert response.status_code == 400
        assert error_of(response)["metadata"]["field"] == field
    for field, value in (("n", 0), ("n", 129), ("n", 1.5)):
        response = await gateway_client.post(
            "/api/v1/chat/completions", headers=account.auth, json=chat(**{field: value})
        )
        assert response.status_code == 400
        assert error_of(response)["metadata"]["field"] == field


# --- prices that match the bill -------------------------------------------------------


async def test_cached_reasoning_and_request_prices_are_charged(
    gateway_client: httpx.AsyncClient, services: Services, account: Account
) -> None:
    """The ``cached`` upstream reports 2 of 4 prompt tokens cached and 3 of 10 completion
    tokens as reasoning: 2 x 1000 + 2 x 500 + 7 x 2000 + 3 x 4000 + 10,000 per request."""
    response = await gateway_client.post(
        "/api/v1/chat/completions",
        headers=account.auth,
        json={**chat(max_tokens=10), "model": "test/priced"},
    )
    assert response.status_code == 200, response.text
    usage = response.json()["usage"]
    assert nanos(usage["cost"]) == 2 * 1000 + 2 * 500 + 7 * 2000 + 3 * 4000 + 10_000
    assert usage["prompt_tokens_details"]["cached_tokens"] == 2
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 3
    assert nanos(usage["cost_details"]["upstream_inference_prompt_cost"]) == 3000
    models = (await gateway_client.get("/api/v1/models")).json()["data"]
    priced = next(m for m in models if m["id"] == "test/priced")["pricing"]
    assert float(priced["input_cache_read"]) == pytest.approx(5e-7)
    assert float(priced["internal_reasoning"]) == pytest.approx(4e-6)
    assert float(priced["request"]) == pytest.approx(1e-5)


async def test_the_models_output_cap_bounds_a_grant(
    gateway_client: httpx.AsyncClient,
    services: Services,
    account: Account,
    fake_upstream: Upstream,
) -> None:
    key = await limited(services, account, 1.0)
    response = await gateway_client.post(
        "/api/v1/chat/completions", headers=bearer(key), json={**chat(), "model": "test/priced"}
    )
    assert response.status_code == 200
    assert fake_upstream.requests[-1].body["max_tokens"] == 50  # max_completion_tokens


# --- generation records ----------------------------------------------------------------


async def test_every_answer_has_a_generation_record_readable_by_the_users_keys(
    gateway_client: httpx.AsyncClient, services: Services, account: Account
) -> None:
    answered = await gateway_client.post(
        "/api/v1/chat/completions",
        headers={**account.auth, "HTTP-Referer": "https://app.example.com", "X-Title": "T"},
        json=chat(max_tokens=3, user="end-user-7", session_id="s-1"),
    )
    body = answered.json()
    assert body["id"].startswith("gen-") and body["model"] == "test/echo"
    assert body["provider"] == "fake" and body["system_fingerprint"] is None

    management = (await services.keys.create(account.user, name="m", is_management=True)).secret
    for key in (account.key, management):
        found = await gateway_client.get(
            "/api/v1/generation", params={"id": body["id"]}, headers=bearer(key)
        )
        assert found.status_code == 200, found.text
        data = found.json()["data"]
        assert data["id"] == body["id"]
        assert data["total_cost"] == body["usage"]["cost"]
        assert (data["tokens_prompt"], data["tokens_completion"]) == (4, 3)
        assert (data["native_tokens_prompt"], data["native_tokens_completion"]) == (4, 3)
        assert data["model"] == "test/echo" and data["provider_name"] == "fake"
        assert data["streamed"] is False and data["cancelled"] is False
        assert data["finish_reason"] == "length" and data["upstream_id"] == "cmpl-1"
        assert data["http_referer"] == "https://app.example.com"
        assert (data["external_user"], data["session_id"]) == ("end-user-7", "s-1")
        assert data["latency"] is not None and data["generation_time"] >= data["latency"]

    other = await make_account(services, "eve@example.com")
    for params, status in (({"id": body["id"]}, 404), ({"id": "gen-nope"}, 404), ({}, 400)):
        response = await gateway_client.get("/api/v1/generation", params=params, headers=other.auth)
        assert response.status_code == status
    assert (
        error_of(await gateway_client.get("/api/v1/generation", headers=other.auth))["metadata"][
            "field"
        ]
        == "id"
    )


@pytest.mark.parametrize("path", ["embeddings", "completions"])
async def test_embeddings_and_completions_carry_the_generation_id(
    gateway_client: httpx.AsyncClient, account: Account, path: str
) -> None:
    field = "input" if path == "embeddings" else "prompt"
    response = await gateway_client.post(
        f"/api/v1/{path}",
        headers=account.auth,
        json={"model": "test/echo", field: "a b", "max_tokens": 1},
    )
    assert response.status_code == 200
    assert response.json()["id"].startswith("gen-")
    assert response.json()["model"] == "test/echo"


async def test_upstream_auth_errors_never_reach_the_client(
    gateway_client: httpx.AsyncClient, account: Account, caplog: pytest.LogCaptureFixture
) -> None:
    response = await gateway_client.post(
        "/api/v1/chat/completions",
        headers=account.auth,
        json={**chat(max_tokens=1), "model": "test/unauthorized"},
    )
    assert response.status_code == 502
    assert "upstream-provider-secret" not in response.text
    assert "upstream_message" not in error_of(response)["metadata"]
    assert "Incorrect API key" in caplog.text  # the operator sees it
