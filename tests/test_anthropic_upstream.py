"""The Anthropic stub upstream, checked with the official ``anthropic`` SDK and raw HTTP;
then the translators run against both stubs over real loopback HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest

from modelgates.gateway.translate.anthropic import (
    ChatToMessagesStream,
    MessagesToChatStream,
    chat_to_messages,
    messages_to_chat,
)
from modelgates.gateway.usage import Usage, from_anthropic
from tests.support.anthropic_upstream import TOOL_USE_ID, parse_sse, running_anthropic_upstream
from tests.support.sdk_streams import anthropic_message, chat_completion
from tests.support.upstream import Upstream

KEY = "sk-ant-stub"
PROMPT = "one two three four"
HEADERS = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    with running_anthropic_upstream() as served:
        yield served


@pytest.fixture
def sdk(upstream: Upstream) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(api_key=KEY, base_url=upstream.base_url, max_retries=0) as client:
        yield client


def ask(model: str, max_tokens: int = 3, **extra: Any) -> dict[str, Any]:
    return {
        "model": model,
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": PROMPT}],
        **extra,
    }


def post(
    upstream: Upstream, body: dict[str, Any], headers: dict[str, str] = HEADERS
) -> httpx.Response:
    return httpx.post(upstream.v1 + "/messages", json=body, headers=headers, timeout=10)


def test_echo_message_through_the_sdk(sdk: anthropic.Anthropic, upstream: Upstream) -> None:
    message = sdk.messages.create(**ask("echo", system="Be brief please"))
    assert [block.model_dump(exclude_none=True) for block in message.content] == [
        {"type": "text", "text": "tok tok tok "}
    ]
    assert message.stop_reason == "max_tokens"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (4 + 3, 3)
    recorded = upstream.requests[-1]
    assert recorded.path == "/v1/messages"
    assert recorded.headers["authorization"] == f"Bearer {KEY}"  # how this SDK sends its key
    assert recorded.headers["anthropic-version"]
    assert recorded.body["system"] == "Be brief please"


def test_echo_stream_through_the_sdk(sdk: anthropic.Anthropic) -> None:
    with sdk.messages.stream(**ask("echo", 4)) as stream:
        texts = list(stream.text_stream)
        message = stream.get_final_message()
    assert texts == ["tok "] * 4
    assert message.usage.output_tokens == 4
    assert message.usage.input_tokens == 4


def test_stream_is_real_sse_with_a_ping(upstream: Upstream) -> None:
    answer = post(upstream, ask("echo", 2, stream=True))
    assert answer.headers["content-type"].startswith("text/event-stream")
    assert answer.text.startswith("event: message_start\ndata: {")
    names = [name for name, _ in parse_sse(answer.text)]
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert all(name == data["type"] for name, data in parse_sse(answer.text))


def test_tool_answer_streams_input_json_deltas(sdk: anthropic.Anthropic) -> None:
    tools = [{"name": "lookup", "input_schema": {"type": "object"}}]
    with sdk.messages.stream(**ask("tool", tools=tools)) as stream:
        events = [event.type for event in stream]
        message = stream.get_final_message()
    assert events.count("input_json") > 1
    [block] = message.content
    assert block.type == "tool_use"
    assert (block.id, block.name, block.input) == (TOOL_USE_ID, "lookup", {"words": 4})
    assert message.stop_reason == "tool_use"
    whole = sdk.messages.create(**ask("tool"))
    assert whole.content[0].model_dump(exclude_none=True) == {
        "type": "tool_use",
        "id": TOOL_USE_ID,
        "name": "get_weather",
        "input": {"words": 4},
    }


def test_cache_usage(sdk: anthropic.Anthropic) -> None:
    body = ask("cache", messages=[{"role": "user", "content": "a b c d e f g h"}])
    usage = sdk.messages.create(**body).usage
    assert (
        usage.input_tokens,
        usage.cache_read_input_tokens,
        usage.cache_creation_input_tokens,
    ) == (
        2,
        4,
        2,
    )
    with sdk.messages.stream(**body) as stream:
        streamed = stream.get_final_message().usage
    assert streamed.cache_read_input_tokens == 4
    assert from_anthropic(streamed.model_dump()) == Usage(
        8, 3, cached_tokens=4, cache_write_tokens=2
    )


def test_no_usage(upstream: Upstream) -> None:
    assert "usage" not in post(upstream, ask("no-usage")).json()
    events = parse_sse(post(upstream, ask("no-usage", stream=True)).text)
    assert all("usage" not in data and "usage" not in data.get("message", {}) for _, data in events)


def test_failures_answer_anthropic_errors(sdk: anthropic.Anthropic, upstream: Upstream) -> None:
    with pytest.raises(anthropic.InternalServerError) as failed:
        sdk.messages.create(**ask("fail"))
    assert failed.value.status_code == 500
    with pytest.raises(anthropic.BadRequestError) as rejected:
        sdk.messages.create(**ask("reject"))
    assert rejected.value.body == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "prompt is too long"},
    }
    missing = post(upstream, {"model": "echo", "messages": []})
    assert missing.status_code == 400
    assert missing.json()["error"]["message"] == "max_tokens: Field required"


@pytest.mark.parametrize(
    ("headers", "status", "error_type"),
    [
        ({"anthropic-version": "2023-06-01"}, 401, "authentication_error"),
        ({"x-api-key": KEY}, 400, "invalid_request_error"),
    ],
)
def test_headers_are_required(
    upstream: Upstream, headers: dict[str, str], status: int, error_type: str
) -> None:
    answer = post(upstream, ask("echo"), headers)
    assert answer.status_code == status
    assert answer.json()["error"]["type"] == error_type


def test_die_breaks_the_stream_after_two_deltas(upstream: Upstream) -> None:
    lines: list[str] = []
    with (
        pytest.raises(httpx.RemoteProtocolError),
        httpx.stream(
            "POST", upstream.v1 + "/messages", json=ask("die", 5, stream=True), headers=HEADERS
        ) as answer,
    ):
        lines.extend(answer.iter_lines())
    assert sum("text_delta" in line for line in lines) == 2
    assert not any("message_stop" in line for line in lines)


def test_slow_still_streams_every_delta(upstream: Upstream) -> None:
    events = parse_sse(post(upstream, ask("slow", 2, stream=True)).text)
    assert [data["delta"]["text"] for name, data in events if name == "content_block_delta"] == [
        "tok ",
        "tok ",
    ]


# --- the translators over real HTTP ---------------------------------------------------


def test_chat_request_reaches_the_anthropic_stub_and_streams_back(upstream: Upstream) -> None:
    chat = {
        "model": "tool",
        "messages": [
            {"role": "system", "content": "Be brief"},
            {"role": "user", "content": PROMPT},
        ],
        "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {}}}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    answer = post(upstream, chat_to_messages(chat, default_max_tokens=7))
    assert answer.status_code == 200, answer.text
    stream = MessagesToChatStream("gen-1", "anthropic/tool", 1)
    chunks = [chunk for name, data in parse_sse(answer.text) for chunk in stream.feed(name, data)]
    assert stream.usage == Usage(prompt_tokens=6, completion_tokens=7)
    chunks += stream.finish(stream.usage, 0.0)
    completion = chat_completion(chunks)
    [call] = completion.choices[0].message.tool_calls or []
    assert (call.id, call.function.name, json.loads(call.function.arguments)) == (
        TOOL_USE_ID,
        "lookup",
        {"words": 6},
    )
    assert completion.choices[0].finish_reason == "tool_calls"


def test_messages_request_reaches_the_chat_stub_and_streams_back(fake_upstream: Upstream) -> None:
    body = ask("echo", 3, stream=True, system=[{"type": "text", "text": "Be brief"}])
    answer = httpx.post(
        fake_upstream.v1 + "/chat/completions", json=messages_to_chat(body), timeout=10
    )
    assert answer.status_code == 200
    stream = ChatToMessagesStream("gen-2", "openai/echo", prompt_tokens_estimate=6)
    events = []
    for line in answer.text.splitlines():
        if line.startswith("data: {"):
            events += stream.feed(json.loads(line[len("data: ") :]))
    events += stream.finish(Usage(6, 3), 0.0)
    assert stream.finish_reason == "length"
    message = anthropic_message(events)
    assert [block.model_dump(exclude_none=True) for block in message.content] == [
        {"type": "text", "text": "tok tok tok "}
    ]
    assert message.stop_reason == "max_tokens"
    recorded = fake_upstream.requests[-1].body
    assert recorded["messages"][0] == {"role": "system", "content": "Be brief"}
    assert recorded["stream_options"] == {"include_usage": True}
