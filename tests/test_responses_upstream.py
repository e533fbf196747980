"""The Responses stub upstream (tests/support/responses_upstream.py), read by the openai SDK."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.support.responses_upstream import CALL_ID, TOOL_ARGUMENTS, running_responses_upstream
from tests.support.upstream import Upstream


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    with running_responses_upstream() as running:
        yield running


@pytest.fixture
def client(upstream: Upstream) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=upstream.v1, api_key="sk-stub", max_retries=0, timeout=10) as sdk:
        yield sdk


def test_echo_answers_with_deterministic_usage(client: openai.OpenAI, upstream: Upstream) -> None:
    response = client.responses.create(
        model="echo", instructions="Be brief.", input=[{"role": "user", "content": "one two three"}]
    )
    assert response.status == "completed"
    assert response.output_text == "tok " * 5
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (5, 5)
    recorded = upstream.requests[-1]
    assert recorded.path == "/v1/responses"
    assert recorded.body["instructions"] == "Be brief."
    assert recorded.headers["authorization"] == "Bearer sk-stub"


def test_max_output_tokens_cuts_the_answer(client: openai.OpenAI) -> None:
    response = client.responses.create(model="echo", input="a b", max_output_tokens=3)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.output_text == "tok " * 3


def test_stream_is_accepted_by_the_sdk_stream_helper(client: openai.OpenAI) -> None:
    with client.responses.stream(model="echo", input="hello there") as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds.count("response.output_text.delta") == 5
    assert kinds[-1] == "response.completed"
    assert final.output_text == "tok " * 5
    assert final.usage is not None
    assert final.usage.input_tokens == 2


def test_tool_calls_the_first_function_tool(client: openai.OpenAI) -> None:
    tools: list[openai.types.responses.ToolParam] = [
        {"type": "web_search"},
        {"type": "function", "name": "get_weather", "parameters": {}, "strict": False},
    ]
    whole = client.responses.create(model="tool", input="weather?", tools=tools)
    assert [item.type for item in whole.output] == ["function_call"]
    with client.responses.stream(model="tool", input="weather?", tools=tools) as stream:
        final = stream.get_final_response()
    for response in (whole, final):
        call = response.output[0]
        assert call.type == "function_call"
        assert (call.name, call.call_id, call.arguments) == ("get_weather", CALL_ID, TOOL_ARGUMENTS)


def test_no_usage(client: openai.OpenAI) -> None:
    assert client.responses.create(model="no-usage", input="hi").usage is None
    with client.responses.stream(model="no-usage", input="hi") as stream:
        assert stream.get_final_response().usage is None


def test_fail_and_reject(client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError):
        client.responses.create(model="fail", input="hi")
    with pytest.raises(openai.BadRequestError) as rejected:
        client.responses.create(model="reject", input="hi")
    assert rejected.value.code == "context_length_exceeded"


def test_die_drops_the_stream_after_two_deltas(client: openai.OpenAI) -> None:
    deltas: list[str] = []

    def read() -> None:
        with client.responses.stream(model="die", input="hi") as stream:
            for event in stream:
                if event.type == "response.output_text.delta":
                    deltas.append(event.delta)

    with pytest.raises((httpx.RemoteProtocolError, openai.APIConnectionError)):
        read()
    assert deltas == ["tok ", "tok "]
