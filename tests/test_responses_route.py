"""``POST /api/v1/responses`` in-process, against both stubs, on SQLite and PostgreSQL:
``chat/<behaviour>`` is translated to chat completions, ``native/<behaviour>`` passed
through to a Responses upstream.

Prices (tests/support/responses_upstream.py): 1000 nano-dollars a prompt token, 2000
a completion token; both stubs count prompt words, the ``stop`` behaviour answers 5
``"tok "``.
"""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest

from modelgates.container import Services
from modelgates.money import NANOS_PER_USD
from tests.conftest import UPSTREAM_KEY, Account
from tests.support.responses_events import final, read_stream, text_of
from tests.support.upstream import Upstream
from tests.test_translate_responses import CODEX_REQUEST

MODES = ["chat", "native"]
ROUTE = "/api/v1/responses"
COST = 3 * 1000 + 5 * 2000
"""A ``stop`` answer to a three-word prompt: 3 prompt tokens, 5 completion tokens."""


def nanos(usd: float) -> int:
    return round(usd * NANOS_PER_USD)


def upstream_of(mode: str, chat: Upstream, native: Upstream) -> Upstream:
    return chat if mode == "chat" else native


async def record_of(http: httpx.AsyncClient, account: Account, generation: str) -> Any:
    found = await http.get(f"/api/v1/generation?id={generation}", headers=account.auth)
    assert found.status_code == 200, found.text
    return found.json()["data"]


async def usage_of(services: Services, account: Account) -> int:
    return (await services.keys.authenticate(f"Bearer {account.key}")).usage.total


@pytest.mark.parametrize("mode", MODES)
async def test_a_response_is_answered_and_charged_as_recorded(
    responses_client: httpx.AsyncClient,
    services: Services,
    account: Account,
    fake_upstream: Upstream,
    native_upstream: Upstream,
    mode: str,
) -> None:
    upstream = upstream_of(mode, fake_upstream, native_upstream)
    before = len(upstream.requests)
    body = {"model": f"{mode}/stop", "input": "one two three", "max_output_tokens": 10}
    response = await responses_client.post(ROUTE, headers=account.auth, json=body)

    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["object"] == "response"
    assert answer["id"].startswith("gen-")
    assert (answer["model"], answer["provider"], answer["status"]) == (
        f"{mode}/stop", mode, "completed"
    )  # fmt: skip
    assert answer["output_text"] == "tok " * 5
    usage = answer["usage"]
    assert (usage["input_tokens"], usage["output_tokens"], usage["total_tokens"]) == (3, 5, 8)
    assert usage["input_tokens_details"]["cached_tokens"] == 0
    assert usage["output_tokens_details"]["reasoning_tokens"] == 0
    assert nanos(usage["cost"]) == COST

    record = await record_of(responses_client, account, answer["id"])
    assert nanos(record["total_cost"]) == COST == await usage_of(services, account)
    assert (record["protocol"], record["model"], record["streamed"]) == (
        "responses", f"{mode}/stop", False
    )  # fmt: skip
    (sent,) = upstream.requests[before:]
    assert sent.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert account.key not in str(sent.headers)
    if mode == "chat":
        assert sent.path == "/v1/chat/completions"
        assert sent.body["messages"] == [{"role": "user", "content": "one two three"}]
        assert sent.body["max_tokens"] == 10
    else:
        assert sent.path == "/v1/responses"
        assert sent.body == {**body, "model": "stop"}


@pytest.mark.parametrize("mode", MODES)
async def test_a_stream_ends_with_the_charged_usage(
    responses_client: httpx.AsyncClient, services: Services, account: Account, mode: str
) -> None:
    body = {"model": f"{mode}/stop", "input": "one two three", "stream": True}
    response = await responses_client.post(ROUTE, headers=account.auth, json=body)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    events = read_stream(response.text)
    assert text_of(events) == "tok " * 5
    assert events[-1]["type"] == "response.completed"
    done = final(events)
    assert done["id"].startswith("gen-") and done["model"] == f"{mode}/stop"
    assert done["output_text"] == "tok " * 5
    assert nanos(done["usage"]["cost"]) == COST
    assert (done["usage"]["input_tokens"], done["usage"]["output_tokens"]) == (3, 5)
    record = await record_of(responses_client, account, done["id"])
    assert record["streamed"] is True
    assert nanos(record["total_cost"]) == COST == await usage_of(services, account)


@pytest.mark.parametrize("mode", MODES)
async def test_what_codex_sends_is_accepted(
    responses_client: httpx.AsyncClient,
    account: Account,
    fake_upstream: Upstream,
    native_upstream: Upstream,
    mode: str,
) -> None:
    upstream = upstream_of(mode, fake_upstream, native_upstream)
    before = len(upstream.requests)
    body = {**copy.deepcopy(CODEX_REQUEST), "model": f"{mode}/stop"}
    # Codex's own tools describe properties named "type" (a schema, not a tag).
    body["tools"][0]["parameters"]["properties"]["type"] = {"type": "string"}
    headers = {
        **account.auth,
        "originator": "codex_exec",
        "session-id": "0199a7b2-6c1e-7a10-9e55-3f1f2a9d7c44",
        "x-codex-turn-metadata": '{"turn_id": "t1"}',
        "accept-encoding": "zstd,gzip",
    }
    response = await responses_client.post(ROUTE, headers=headers, json=body)

    assert response.status_code == 200, response.text
    events = read_stream(response.text)
    assert events[-1]["type"] == "response.completed"
    usage = final(events)["usage"]
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"] > 0
    record = await record_of(responses_client, account, final(events)["id"])
    assert record["session_id"] == headers["session-id"]
    (sent,) = upstream.requests[before:]
    if mode == "native":
        assert sent.body == {**body, "model": "stop"}  # every field, every tool
        return
    assert [tool["function"]["name"] for tool in sent.body["tools"]] == ["shell"]
    assert [message["role"] for message in sent.body["messages"]] == ["system", "user"]
    for dropped in ("include", "prompt_cache_key", "client_metadata", "store", "reasoning"):
        assert dropped not in sent.body


@pytest.mark.parametrize("mode", MODES)
async def test_a_streamed_function_call(
    responses_client: httpx.AsyncClient, account: Account, mode: str
) -> None:
    tool = {"type": "function", "name": "get_weather", "parameters": {"type": "object"}}
    body = {"model": f"{mode}/tool", "input": "weather?", "tools": [tool], "stream": True}
    response = await responses_client.post(ROUTE, headers=account.auth, json=body)

    events = read_stream(response.text)
    deltas = [e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta"]
    assert "".join(deltas) == '{"query": "tok"}'
    (call,) = final(events)["output"]
    assert (call["type"], call["name"], call["call_id"]) == (
        "function_call", "get_weather", "call_stub_1"
    )  # fmt: skip
    assert call["arguments"] == '{"query": "tok"}'


async def test_background_is_dropped_for_a_responses_upstream(
    responses_client: httpx.AsyncClient, account: Account, native_upstream: Upstream
) -> None:
    before = len(native_upstream.requests)
    body = {"model": "native/stop", "input": "hi", "background": True, "store": False}
    response = await responses_client.post(ROUTE, headers=account.auth, json=body)

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "completed"
    (sent,) = native_upstream.requests[before:]
    assert "background" not in sent.body


@pytest.mark.parametrize("mode", MODES)
async def test_a_stream_the_upstream_breaks_fails_and_is_charged(
    responses_client: httpx.AsyncClient, services: Services, account: Account, mode: str
) -> None:
    body = {"model": f"{mode}/die", "input": "one two three", "stream": True}
    response = await responses_client.post(ROUTE, headers=account.auth, json=body)

    events = read_stream(response.text)
    assert events[-1]["type"] == "response.failed"
    failed = final(events)
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "server_error"
    record = await record_of(responses_client, account, failed["id"])
    assert nanos(failed["usage"]["cost"]) == nanos(record["total_cost"]) > 0
    assert await usage_of(services, account) == nanos(record["total_cost"])


@pytest.mark.parametrize("mode", MODES)
async def test_missing_usage_is_estimated(
    responses_client: httpx.AsyncClient, services: Services, account: Account, mode: str
) -> None:
    body = {"model": f"{mode}/no-usage", "input": "one two three", "max_output_tokens": 4}
    for stream in (False, True):
        response = await responses_client.post(
            ROUTE, headers=account.auth, json={**body, "stream": stream}
        )
        assert response.status_code == 200, response.text
        answer = final(read_stream(response.text)) if stream else response.json()
        record = await record_of(responses_client, account, answer["id"])
        assert record["estimated"] is True
        assert nanos(answer["usage"]["cost"]) == nanos(record["total_cost"]) > 0
    assert await usage_of(services, account) > 0


@pytest.mark.parametrize("mode", MODES)
async def test_upstream_errors_keep_their_status_and_are_free(
    responses_client: httpx.AsyncClient, services: Services, account: Account, mode: str
) -> None:
    for model, status in ((f"{mode}/reject", 400), (f"{mode}/fail", 502)):
        for stream in (False, True):
            body = {"model": model, "input": "hi", "stream": stream}
            response = await responses_client.post(ROUTE, headers=account.auth, json=body)
            assert response.status_code == status, response.text
            assert response.json()["error"]["code"] == status
    assert await usage_of(services, account) == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"input": "hi"}, "model"),
        ({"model": "chat/nope", "input": "hi"}, "model"),
        ({"model": "native/stop", "input": 5}, "input"),
        ({"model": "chat/stop", "input": [{"type": "message", "content": "x"}]}, "input[0].role"),
        ({"model": "chat/stop", "input": "hi", "tools": "x"}, "tools"),
        ({"model": "native/stop", "input": "hi", "store": "yes"}, "store"),
        ({"model": "native/stop", "input": "hi", "stream": "yes"}, "stream"),
        ({"model": "chat/stop", "input": "hi", "max_output_tokens": -1}, "max_output_tokens"),
        ({"model": "chat/stop", "input": "hi", "previous_response_id": 7}, "previous_response_id"),
    ],
)
async def test_bad_requests_are_400_naming_the_field(
    responses_client: httpx.AsyncClient, account: Account, body: dict[str, Any], field: str
) -> None:
    response = await responses_client.post(ROUTE, headers=account.auth, json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["metadata"]["field"] == field
