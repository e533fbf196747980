"""Chat completions → Response objects, and relabelling a Responses upstream's answers.

Every body built here is validated by the pinned ``openai`` SDK's own ``Response`` model.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from openai.types.responses import Response

from modelgates.gateway.translate.responses import (
    chat_to_response,
    relay_event,
    response_with_cost,
    responses_usage,
)
from modelgates.gateway.translate.responses_output import item_id
from modelgates.gateway.usage import Usage, from_responses
from tests.test_translate_responses import CODEX_REQUEST, WEATHER_TOOL, json_values

USAGE = Usage(prompt_tokens=19, completion_tokens=10, cached_tokens=4, reasoning_tokens=3)
RESPONSE_USAGE = {
    "input_tokens": 19,
    "input_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 0},
    "output_tokens": 10,
    "output_tokens_details": {"reasoning_tokens": 3},
    "total_tokens": 29,
    "cost": 0.25,
}


def completion(message: dict[str, Any], finish_reason: str | None = "stop") -> dict[str, Any]:
    return {
        "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
        "object": "chat.completion",
        "created": 1741570283,
        "model": "gpt-4o-2024-08-06",
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": 19, "completion_tokens": 10, "total_tokens": 29},
    }


def translate(chat: dict[str, Any], request: dict[str, Any] | None = None) -> dict[str, Any]:
    body = chat_to_response(
        chat,
        id="gen-1",
        model="openai/gpt-4o",
        created_at=1741476542,
        request={"model": "openai/gpt-4o"} if request is None else request,
        usage=USAGE,
        cost=0.25,
    )
    Response.model_validate(body)
    return body


def test_text_answer() -> None:
    body = translate(
        completion({"role": "assistant", "content": "In a peaceful grove beneath a silver moon…"}),
        {"model": "openai/gpt-4o", "input": "Tell me a story.", "temperature": 0.7},
    )
    assert body == {
        "id": "gen-1",
        "object": "response",
        "created_at": 1741476542,
        "status": "completed",
        "model": "openai/gpt-4o",
        "output": [
            {
                "id": item_id("msg", "gen-1", 0),
                "type": "message",
                "status": "completed",
                "role": "assistant",
                "content": [
                    {
                        "type": "output_text",
                        "text": "In a peaceful grove beneath a silver moon…",
                        "annotations": [],
                    }
                ],
            }
        ],
        "output_text": "In a peaceful grove beneath a silver moon…",
        "usage": RESPONSE_USAGE,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "max_output_tokens": None,
        "max_tool_calls": None,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "prompt_cache_key": None,
        "reasoning": None,
        "safety_identifier": None,
        "store": True,
        "background": False,
        "temperature": 0.7,
        "top_p": None,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "truncation": "disabled",
        "metadata": {},
        "user": None,
    }
    assert Response.model_validate(body).output_text == body["output_text"]


def test_reasoning_text_and_tool_calls_in_order() -> None:
    body = translate(
        completion(
            {
                "role": "assistant",
                "reasoning_content": "Two cities, two calls.",
                "content": "Checking.",
                "tool_calls": [
                    {
                        "id": "call_a",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"location":"Paris"}'},
                    },
                    {
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": {"location": "Bogotá"}},
                    },
                ],
            },
            "tool_calls",
        ),
        {"model": "m", "tools": [WEATHER_TOOL], "tool_choice": "required"},
    )
    assert body["status"] == "completed"
    assert body["output"] == [
        {
            "id": item_id("rs", "gen-1", 0),
            "type": "reasoning",
            "summary": [{"type": "summary_text", "text": "Two cities, two calls."}],
            "status": "completed",
        },
        {
            "id": item_id("msg", "gen-1", 1),
            "type": "message",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Checking.", "annotations": []}],
        },
        {
            "id": item_id("fc", "gen-1", 2),
            "type": "function_call",
            "status": "completed",
            "call_id": "call_a",
            "name": "get_weather",
            "arguments": '{"location":"Paris"}',
        },
        {
            "id": item_id("fc", "gen-1", 3),
            "type": "function_call",
            "status": "completed",
            "call_id": item_id("call", "gen-1", 3),
            "name": "get_weather",
            "arguments": '{"location": "Bogot\\u00e1"}',
        },
    ]
    assert body["tools"] == [WEATHER_TOOL]
    assert body["tool_choice"] == "required"


def test_tool_calls_alone_have_no_message_and_reasoning_field_is_read() -> None:
    body = translate(
        completion(
            {
                "role": "assistant",
                "content": None,
                "reasoning": "Need the weather.",
                "tool_calls": [
                    {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
            "tool_calls",
        )
    )
    assert [item["type"] for item in body["output"]] == ["reasoning", "function_call"]
    assert body["output_text"] == ""


def test_calls_sharing_an_id_get_their_own() -> None:
    # Clients tell calls apart by call_id (the SDK's accumulator refuses two alike).
    call = {"id": "0", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    body = translate(
        completion({"role": "assistant", "content": None, "tool_calls": [call, call]}, "tool_calls")
    )
    first, second = body["output"]
    assert first["call_id"] == "0"
    assert second["call_id"] == item_id("call", "gen-1", 1)
    Response.model_validate(body)


@pytest.mark.parametrize(
    ("finish_reason", "reason"),
    [("length", "max_output_tokens"), ("content_filter", "content_filter")],
)
def test_cut_short_is_incomplete(finish_reason: str, reason: str) -> None:
    body = translate(
        completion({"role": "assistant", "reasoning": "hm", "content": "Once upon"}, finish_reason)
    )
    assert body["status"] == "incomplete"
    assert body["incomplete_details"] == {"reason": reason}
    assert [item["status"] for item in body["output"]] == ["completed", "incomplete"]


def test_refusal_and_empty_answers() -> None:
    refused = translate(completion({"role": "assistant", "content": None, "refusal": "I can't."}))
    assert refused["output"][0]["content"][1] == {"type": "refusal", "refusal": "I can't."}
    empty = translate(completion({"role": "assistant", "content": None}))
    assert [item["type"] for item in empty["output"]] == ["message"]
    assert empty["output_text"] == ""


def test_codex_request_is_echoed_and_valid() -> None:
    body = translate(completion({"role": "assistant", "content": "Done."}), CODEX_REQUEST)
    assert body["tools"] == CODEX_REQUEST["tools"]
    assert body["store"] is False
    assert body["reasoning"] == {"effort": "medium", "summary": "auto"}
    assert body["prompt_cache_key"] == CODEX_REQUEST["prompt_cache_key"]
    assert body["parallel_tool_calls"] is True


def test_ids_are_derived_from_the_response_id() -> None:
    assert item_id("msg", "gen-1", 0) == item_id("msg", "gen-1", 0)
    assert (
        len({item_id("msg", "gen-1", 0), item_id("msg", "gen-2", 0), item_id("msg", "gen-1", 1)})
        == 3
    )
    assert item_id("fc", "gen-1", 2).startswith("fc_")


def test_usage_reads_back_as_it_was() -> None:
    usage = Usage(100, 50, cached_tokens=30, cache_write_tokens=20, reasoning_tokens=10)
    body = responses_usage(usage, 0.5)
    assert from_responses(body) == usage
    assert body["total_tokens"] == 150
    assert body["cost"] == 0.5


UPSTREAM_RESPONSE: dict[str, Any] = {
    "id": "resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b",
    "object": "response",
    "created_at": 1741476542,
    "status": "completed",
    "error": None,
    "incomplete_details": None,
    "instructions": None,
    "max_output_tokens": None,
    "model": "gpt-4.1-2025-04-14",
    "output": [
        {
            "type": "message",
            "id": "msg_67ccd2bf17f0819081ff3bb2cf6508e60bb6a6b452d3795b",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "In a peaceful grove…", "annotations": []}],
        }
    ],
    "parallel_tool_calls": True,
    "previous_response_id": None,
    "reasoning": {"effort": None, "summary": None},
    "store": True,
    "temperature": 1.0,
    "text": {"format": {"type": "text"}},
    "tool_choice": "auto",
    "tools": [],
    "top_p": 1.0,
    "truncation": "disabled",
    "usage": {
        "input_tokens": 36,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 87,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 123,
    },
    "user": None,
    "metadata": {},
}


def test_response_with_cost_relabels_an_upstream_response() -> None:
    usage = from_responses(UPSTREAM_RESPONSE["usage"])
    assert usage is not None
    body = response_with_cost(UPSTREAM_RESPONSE, usage, 0.001, id="gen-9", model="openai/gpt-4.1")
    Response.model_validate(body)
    assert body["id"] == "gen-9"
    assert body["model"] == "openai/gpt-4.1"
    assert body["usage"]["cost"] == 0.001
    assert body["usage"]["input_tokens"] == 36
    assert body["output"] == UPSTREAM_RESPONSE["output"]
    assert UPSTREAM_RESPONSE["id"].startswith("resp_")


def test_relay_event_relabels_lifecycle_events_only() -> None:
    created: dict[str, Any] = {
        "type": "response.created",
        "sequence_number": 0,
        "response": UPSTREAM_RESPONSE,
    }
    relayed = relay_event(created, id="gen-9", model="openai/gpt-4.1")
    assert relayed["response"]["id"] == "gen-9"
    assert relayed["response"]["model"] == "openai/gpt-4.1"
    assert relayed["response"]["usage"] == UPSTREAM_RESPONSE["usage"]
    assert relayed["sequence_number"] == 0
    completed = {"type": "response.completed", "sequence_number": 7, "response": UPSTREAM_RESPONSE}
    billed = relay_event(completed, id="gen-9", model="m", usage=Usage(36, 87), cost=0.5)
    assert billed["response"]["usage"]["cost"] == 0.5
    delta = {
        "type": "response.output_text.delta",
        "sequence_number": 3,
        "item_id": "msg_1",
        "output_index": 0,
        "content_index": 0,
        "delta": "In",
    }
    assert relay_event(delta, id="gen-9", model="m") is delta
    assert created["response"]["id"] == UPSTREAM_RESPONSE["id"]


@given(json_values, json_values)
def test_any_chat_completion_gives_a_valid_response(chat: Any, request: Any) -> None:
    """Valid for a valid request (the caller checks requests); never raising for any."""
    chat_to_response(
        chat, id="gen-1", model="m", created_at=1, request=request, usage=USAGE, cost=0.0
    )
    translate(chat)


messages = st.fixed_dictionaries(
    {},
    optional={
        "content": st.none() | st.text(max_size=5) | json_values,
        "reasoning": st.text(max_size=5) | json_values,
        "reasoning_content": st.text(max_size=5),
        "refusal": st.none() | st.text(max_size=5),
        "tool_calls": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "id": st.text(max_size=4) | json_values,
                    "function": st.fixed_dictionaries(
                        {},
                        optional={
                            "name": st.text(max_size=4) | json_values,
                            "arguments": st.text(max_size=4) | json_values,
                        },
                    ),
                },
            )
            | json_values,
            max_size=3,
        ),
    },
)


@given(messages, st.sampled_from(["stop", "length", "tool_calls", "content_filter", None]))
def test_any_chat_message_gives_a_valid_response(message: dict[str, Any], reason: Any) -> None:
    body = translate(completion(message, reason))
    assert body["output"]
    assert len({item["id"] for item in body["output"]}) == len(body["output"])


@given(json_values, json_values)
def test_relabelling_never_raises(response: Any, event: Any) -> None:
    assert response_with_cost(response, USAGE, 0.1, id="gen-1", model="m")["id"] == "gen-1"
    relay_event(event, id="gen-1", model="m")
    relay_event({"type": "response.completed", "response": response}, id="g", model="m")
