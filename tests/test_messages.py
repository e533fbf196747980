"""``POST /api/v1/messages`` and ``/messages/count_tokens`` in-process, on SQLite and
PostgreSQL, through both kinds of upstream: ``claude/<behaviour>`` models go to the
Anthropic stub (passed through), ``test/<behaviour>`` models to the OpenAI stub
(translated to chat and back). And ``/chat/completions`` to the Anthropic stub.

Prices as in the test config: 1000 and 2000 nano-dollars a prompt and a completion
token; the stubs count prompt tokens as words and answer ``max_tokens`` tokens.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import httpx
import pytest

from modelgates.app import build_app
from modelgates.catalog import GatewayConfig, parse_config
from modelgates.container import Services
from modelgates.money import NANOS_PER_USD
from modelgates.settings import Settings
from modelgates.store import Store
from tests.conftest import UPSTREAM_KEY, UPSTREAM_KEY_ENV, Account
from tests.support.anthropic_upstream import anthropic_toml, parse_sse, running_anthropic_upstream
from tests.support.clock import FakeClock
from tests.support.upstream import Upstream, gateway_toml

PROMPT = "one two three four"
MAX_TOKENS = 5
COST = 4 * 1000 + MAX_TOKENS * 2000
MODELS = ["claude/echo", "test/echo"]
"""One model of each upstream kind: Anthropic (passed through) and chat (translated)."""
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
}


@pytest.fixture(scope="module")
def anthropic_stub() -> Iterator[Upstream]:
    with running_anthropic_upstream() as served:
        yield served


@pytest.fixture
def gateway_config(
    fake_upstream: Upstream, anthropic_stub: Upstream, monkeypatch: pytest.MonkeyPatch
) -> GatewayConfig:
    monkeypatch.setenv(UPSTREAM_KEY_ENV, UPSTREAM_KEY)
    return parse_config(
        gateway_toml(fake_upstream, api_key_env=UPSTREAM_KEY_ENV)
        + anthropic_toml(anthropic_stub, api_key_env=UPSTREAM_KEY_ENV)
    )


def ask(model: str, **extra: Any) -> dict[str, Any]:
    return {
        "model": model,
        "max_tokens": MAX_TOKENS,
        "messages": [{"role": "user", "content": PROMPT}],
        **extra,
    }


def x_api_key(key: str) -> dict[str, str]:
    return {"x-api-key": key, "anthropic-version": "2023-06-01"}


def anthropic_error(response: httpx.Response) -> dict[str, Any]:
    """The error of an Anthropic-shaped error body, checking the shape on the way."""
    body = response.json()
    assert set(body) == {"type", "error", "request_id"}, body
    assert body["type"] == "error"
    assert body["request_id"] == response.headers["x-request-id"]
    error: dict[str, Any] = body["error"]
    assert set(error) == {"type", "message"}, body
    assert error["type"] == ERROR_TYPES[response.status_code], body
    assert isinstance(error["message"], str) and error["message"]
    return error


async def generation(http: httpx.AsyncClient, key: str, id: str) -> dict[str, Any]:
    response = await http.get(
        "/api/v1/generation", params={"id": id}, headers={"Authorization": f"Bearer {key}"}
    )
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def usage_of(services: Services, key: str) -> int:
    return (await services.keys.authenticate(f"Bearer {key}")).usage.total


# --- answers -------------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
async def test_a_message_is_answered_and_charged(
    gateway_client: httpx.AsyncClient, services: Services, account: Account, model: str
) -> None:
    response = await gateway_client.post(
        "/api/v1/messages?beta=true", headers=x_api_key(account.key), json=ask(model)
    )
    assert response.status_code == 200, response.text
    message = response.json()
    assert message["id"].startswith("gen-")
    assert (message["type"], message["role"], message["model"]) == ("message", "assistant", model)
    assert message["content"] == [{"type": "text", "text": "tok " * MAX_TOKENS}]
    assert message["stop_reason"] == "max_tokens"
    assert message["stop_sequence"] is None
    usage = message["usage"]
    assert (usage["input_tokens"], usage["output_tokens"]) == (4, MAX_TOKENS)
    assert (usage["cache_creation_input_tokens"], usage["cache_read_input_tokens"]) == (0, 0)
    assert round(usage["cost"] * NANOS_PER_USD) == COST
    record = await generation(gateway_client, account.key, message["id"])
    assert record["total_cost"] == usage["cost"]
    assert (record["tokens_prompt"], record["tokens_completion"]) == (4, MAX_TOKENS)
    assert await usage_of(services, account.key) == COST


@pytest.mark.parametrize("model", MODELS)
async def test_a_stream_ends_with_the_charged_usage(
    gateway_client: httpx.AsyncClient, account: Account, model: str
) -> None:
    response = await gateway_client.post(
        "/api/v1/messages", headers=account.auth, json=ask(model, stream=True)
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    assert "event: message_start\n" in response.text
    events = parse_sse(response.text)
    names = [name for name, _ in events]
    assert names[0] == "message_start" and "ping" in names
    assert names[-2:] == ["message_delta", "message_stop"]
    assert all(name == data["type"] for name, data in events)
    start, (_, delta) = events[0][1], events[-2]
    assert start["message"]["id"].startswith("gen-") and start["message"]["model"] == model
    text = "".join(d["delta"].get("text", "") for n, d in events if n == "content_block_delta")
    assert text == "tok " * MAX_TOKENS
    assert delta["delta"]["stop_reason"] == "max_tokens"
    assert (delta["usage"]["input_tokens"], delta["usage"]["output_tokens"]) == (4, MAX_TOKENS)
    assert round(delta["usage"]["cost"] * NANOS_PER_USD) == COST
    record = await generation(gateway_client, account.key, start["message"]["id"])
    assert record["total_cost"] == delta["usage"]["cost"]
    assert record["streamed"] is True


async def test_cache_tokens_are_priced_and_reported(
    gateway_client: httpx.AsyncClient, account: Account
) -> None:
    prompt = "a b c d e f g h"  # 8 words: 4 read from the cache, 2 written, 2 plain
    body = ask("claude/cache", messages=[{"role": "user", "content": prompt}])
    message = (
        await gateway_client.post("/api/v1/messages", headers=account.auth, json=body)
    ).json()
    usage = message["usage"]
    assert (usage["input_tokens"], usage["cache_read_input_tokens"]) == (2, 4)
    assert usage["cache_creation_input_tokens"] == 2
    assert round(usage["cost"] * NANOS_PER_USD) == 2 * 1000 + 4 * 500 + 2 * 1250 + 5 * 2000
    record = await generation(gateway_client, account.key, message["id"])
    assert (record["tokens_prompt"], record["native_tokens_cached"]) == (8, 4)


async def test_missing_usage_is_estimated_and_said(
    gateway_client: httpx.AsyncClient, account: Account
) -> None:
    body = ask("claude/no-usage")
    message = (
        await gateway_client.post("/api/v1/messages", headers=account.auth, json=body)
    ).json()
    assert message["usage"]["estimated"] is True
    assert message["usage"]["output_tokens"] == 5  # "tok " * 5: 20 bytes / 4
    record = await generation(gateway_client, account.key, message["id"])
    assert record["total_cost"] == message["usage"]["cost"]


async def test_what_claude_code_sends_is_accepted_and_passed_through(
    gateway_client: httpx.AsyncClient,
    account: Account,
    anthropic_stub: Upstream,
    fake_upstream: Upstream,
) -> None:
    claude_code = {
        "max_tokens": 32000,
        "system": [
            {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}
        ],
        "messages": [
            {"role": "system", "content": "Context: a repository."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": PROMPT, "cache_control": {"type": "ephemeral"}}
                ],
            },
        ],
        "tools": [
            {"name": "Bash", "description": "Run a command", "input_schema": {"type": "object"}}
        ],
        "thinking": {"type": "adaptive", "display": "omitted"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "output_config": {"effort": "high"},
        "metadata": {"user_id": "user_abc_account__session_123"},
        "stream": True,
    }
    headers = {
        **account.auth,
        "anthropic-version": "2023-06-01",
        "anthropic-beta": "claude-code-20250219,context-management-2025-06-27",
        "x-app": "cli",
        "x-claude-code-session-id": "session-123",
    }
    for model, stub in (("claude/hello", anthropic_stub), ("test/hello", fake_upstream)):
        before = len(stub.requests)
        response = await gateway_client.post(
            "/api/v1/messages?beta=true", headers=headers, json={**claude_code, "model": model}
        )
        assert response.status_code == 200, response.text
        events = parse_sse(response.text)
        text = "".join(d["delta"].get("text", "") for n, d in events if n == "content_block_delta")
        assert text == "Hello from the stub upstream."
        assert events[-2][1]["usage"]["output_tokens"] == 5
        record = await generation(gateway_client, account.key, events[0][1]["message"]["id"])
        assert record["external_user"] == "user_abc_account__session_123"
        assert record["session_id"] == "session-123"
        (sent,) = stub.requests[before:]
        if stub is anthropic_stub:
            assert sent.body == {**claude_code, "model": "hello"}  # unchanged but the model
            assert sent.headers["anthropic-beta"] == headers["anthropic-beta"]
            assert sent.headers["x-api-key"] == UPSTREAM_KEY
            assert account.key not in str(sent.headers)
        else:
            assert [m["role"] for m in sent.body["messages"]] == ["system", "system", "user"]
            assert sent.body["user"] == "user_abc_account__session_123"
            for dropped in ("thinking", "context_management", "output_config", "metadata"):
                assert dropped not in sent.body
            assert "anthropic-beta" not in sent.headers


async def test_a_request_without_max_tokens_gets_a_bound(
    gateway_client: httpx.AsyncClient, account: Account, anthropic_stub: Upstream
) -> None:
    body = ask("claude/hello")
    del body["max_tokens"]
    response = await gateway_client.post("/api/v1/messages", headers=account.auth, json=body)
    assert response.status_code == 200, response.text
    assert anthropic_stub.requests[-1].body["max_tokens"] == 4096


# --- chat completions to an Anthropic upstream -----------------------------------


async def test_chat_completions_to_an_anthropic_upstream(
    gateway_client: httpx.AsyncClient, account: Account, anthropic_stub: Upstream
) -> None:
    chat = {
        "model": "claude/echo",
        "messages": [
            {"role": "system", "content": "Be brief"},
            {"role": "user", "content": PROMPT},
        ],
        "max_tokens": MAX_TOKENS,
    }
    response = await gateway_client.post(
        "/api/v1/chat/completions", headers=account.auth, json=chat
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["id"].startswith("gen-") and answer["provider"] == "claude"
    assert answer["choices"][0]["message"]["content"] == "tok " * MAX_TOKENS
    assert answer["choices"][0]["finish_reason"] == "length"
    assert (answer["usage"]["prompt_tokens"], answer["usage"]["completion_tokens"]) == (6, 5)
    sent = anthropic_stub.requests[-1]
    assert sent.path == "/v1/messages" and sent.body["system"] == "Be brief"
    assert sent.headers["x-api-key"] == UPSTREAM_KEY

    streamed = await gateway_client.post(
        "/api/v1/chat/completions", headers=account.auth, json={**chat, "stream": True}
    )
    lines = [line for line in streamed.text.split("\n\n") if line]
    assert lines[-1] == "data: [DONE]"
    chunks = [
        httpx.Response(200, content=line.removeprefix("data: ")).json() for line in lines[:-1]
    ]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "tok " * MAX_TOKENS
    final = chunks[-1]
    assert final["choices"] == [] and final["usage"]["completion_tokens"] == MAX_TOKENS
    record = await generation(gateway_client, account.key, final["id"])
    assert record["total_cost"] == final["usage"]["cost"]

    no_bound = {key: value for key, value in chat.items() if key != "max_tokens"}
    await gateway_client.post("/api/v1/chat/completions", headers=account.auth, json=no_bound)
    assert anthropic_stub.requests[-1].body["max_tokens"] == 4096

    two = await gateway_client.post(
        "/api/v1/chat/completions", headers=account.auth, json={**chat, "n": 2}
    )
    assert two.status_code == 400
    assert two.json()["error"]["metadata"]["field"] == "n"
    completions = await gateway_client.post(
        "/api/v1/completions", headers=account.auth, json={"model": "claude/echo", "prompt": "x"}
    )
    assert completions.status_code == 400


# --- count_tokens ------------------------------------------------------------------


async def test_count_tokens(
    gateway_client: httpx.AsyncClient,
    services: Services,
    account: Account,
    anthropic_stub: Upstream,
) -> None:
    body = {"messages": [{"role": "user", "content": PROMPT}], "system": "Be brief"}
    counted = await gateway_client.post(
        "/api/v1/messages/count_tokens?beta=true",
        headers=x_api_key(account.key),
        json={**body, "model": "claude/echo"},
    )
    assert counted.json() == {"input_tokens": 6}  # the stub's own count: its words
    assert anthropic_stub.requests[-1].path == "/v1/messages/count_tokens"
    assert anthropic_stub.requests[-1].body["model"] == "echo"
    estimated = await gateway_client.post(
        "/api/v1/messages/count_tokens", headers=account.auth, json={**body, "model": "test/echo"}
    )
    system, messages = b'"Be brief"', b'[{"role":"user","content":"one two three four"}]'
    estimate = -(-len(system) // 4) - (-len(messages) // 4)
    assert estimated.json() == {"input_tokens": estimate, "estimated": True}
    assert await usage_of(services, account.key) == 0  # counting is free


# --- errors in Anthropic's shape ------------------------------------------------------


async def test_key_refusals_are_anthropic_errors(
    gateway_client: httpx.AsyncClient, services: Services, account: Account, clock: FakeClock
) -> None:
    expiring = await services.keys.create(
        account.user, name="soon", expires_at=clock() + timedelta(hours=1)
    )
    disabled = services.keys.mint(user_id=account.user.id, name="off")
    await services.store.create_key(replace(disabled.record, disabled=True))
    revoked = await services.keys.create(account.user, name="gone")
    await services.keys.revoke(revoked.record.hash)
    management = await services.keys.create(account.user, name="admin", is_management=True)
    poor = await services.keys.create(account.user, name="poor", limit_usd=COST / NANOS_PER_USD)
    clock.advance(3600)
    cases = [
        ({}, 401, "Missing Authentication header"),
        (x_api_key("sk-mg-v1-" + "0" * 64), 401, "Invalid API key"),
        (x_api_key(expiring.secret), 401, "Key expired"),
        (x_api_key(disabled.secret), 401, "Key disabled"),
        (x_api_key(revoked.secret), 401, "Key revoked"),
        (x_api_key(management.secret), 403, "Management keys cannot be used for model requests"),
        (x_api_key(poor.secret), 403, "Key limit exceeded (total limit)"),
    ]
    for model in MODELS:
        for headers, status, message in cases:
            for path in ("/api/v1/messages", "/api/v1/messages/count_tokens"):
                if "limit" in message and path.endswith("count_tokens"):
                    continue  # counting is free: no limit refuses it
                response = await gateway_client.post(path, headers=headers, json=ask(model))
                assert response.status_code == status, (path, response.text)
                assert anthropic_error(response)["message"].startswith(message)


async def test_request_errors_are_anthropic_errors(
    gateway_client: httpx.AsyncClient, account: Account
) -> None:
    auth = account.auth
    post = gateway_client.post
    cases = [
        (await post("/api/v1/messages", headers=auth, content=b"{"), 400),
        (await post("/api/v1/messages", headers=auth, json=[1]), 400),
        (await post("/api/v1/messages", headers=auth, json=ask("nope/none")), 400),
        (await post("/api/v1/messages", headers=auth, json=ask("test/echo", max_tokens=-1)), 400),
        (await post("/api/v1/messages", headers=auth, json=ask("test/echo", messages="hi")), 400),
        (await post("/api/v1/messages", headers=auth, json=ask("claude/reject")), 400),
        (await post("/api/v1/messages", headers=auth, json=ask("claude/fail")), 502),
        (await post("/api/v1/messages", headers=auth, json=ask("test/fail")), 502),
        (await post("/api/v1/messages", headers=auth, json=ask("down/echo")), 502),
        (await gateway_client.get("/api/v1/messages", headers=auth), 405),
        (await gateway_client.get("/api/v1/messages/count_tokens", headers=auth), 405),
    ]
    for response, status in cases:
        assert response.status_code == status, response.text
        anthropic_error(response)
    messages = await post("/api/v1/messages", headers=auth, json=ask("test/echo", messages="hi"))
    assert "messages" in anthropic_error(messages)["message"]
    # Every other route keeps OpenRouter's envelope.
    chat = await post("/api/v1/chat/completions", headers=auth, content=b"{")
    assert set(chat.json()) == {"error", "user_id"}


async def test_the_rate_limit_is_an_anthropic_error(
    store: Store, clock: FakeClock, gateway_config: GatewayConfig, account: Account
) -> None:
    app = build_app(
        Settings(rate_limit_gateway_per_key=5), store=store, clock=clock, gateway=gateway_config
    )
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    statuses = []
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as http,
    ):
        for _ in range(6):
            response = await http.post(
                "/api/v1/messages", headers=account.auth, json=ask("claude/echo")
            )
            statuses.append(response.status_code)
    assert statuses == [200] * 5 + [429]
    assert anthropic_error(response)["type"] == "rate_limit_error"
    assert "retry-after" in response.headers


async def test_a_broken_stream_ends_with_an_error_event(
    gateway_client: httpx.AsyncClient, account: Account
) -> None:
    for model in ("claude/die", "test/die"):
        response = await gateway_client.post(
            "/api/v1/messages", headers=account.auth, json=ask(model, stream=True)
        )
        events = parse_sse(response.text)
        assert events[-1] == (
            "error",
            {"type": "error", "error": {"type": "api_error", "message": "Upstream unavailable"}},
        )
        record = await generation(gateway_client, account.key, events[0][1]["message"]["id"])
        assert record["tokens_completion"] > 0  # what was sent is charged
