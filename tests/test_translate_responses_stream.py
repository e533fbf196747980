"""Chat chunks → Responses stream events (modelgates.gateway.translate.responses_stream).

Every event sequence is validated event by event against the pinned ``openai``
SDK's ``ResponseStreamEvent`` models and fed through the SDK's own stream
accumulator (the state behind ``client.responses.stream()``), which refuses a
stream that does not start with ``response.created``, changes its response id,
sends a delta before its item, or closes an item that differs from the one added.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import msgspec
import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st
from openai import omit
from openai.lib.streaming.responses import ResponseStreamState
from openai.types.responses import Response, ResponseStreamEvent

from modelgates.gateway.translate.responses import (
    ChatToResponsesStream,
    chat_to_response,
    relay_event,
    responses_to_chat,
)
from modelgates.gateway.translate.responses_output import item_id
from modelgates.gateway.usage import Usage, from_openai, from_responses
from tests.support.responses_upstream import running_responses_upstream
from tests.support.upstream import Upstream
from tests.test_translate_responses import CODEX_REQUEST, WEATHER_TOOL, json_values

EVENTS = pydantic.TypeAdapter(ResponseStreamEvent)
USAGE = Usage(prompt_tokens=12, completion_tokens=7, reasoning_tokens=2)
REQUEST: dict[str, Any] = {"model": "openai/gpt-4o", "input": "hi", "stream": True}


def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-123",
        "object": "chat.completion.chunk",
        "created": 1694268190,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


def call_delta(
    index: int, arguments: str, *, id: str | None = None, name: str | None = None
) -> dict[str, Any]:
    call: dict[str, Any] = {"index": index, "function": {"arguments": arguments}}
    if id is not None:
        call.update(id=id, type="function")
        call["function"]["name"] = name
    return {"tool_calls": [call]}


def run(
    chunks: list[Any], request: dict[str, Any] | None = None, *, fail: bool = False
) -> tuple[ChatToResponsesStream, list[dict[str, Any]]]:
    stream = ChatToResponsesStream(
        "gen-1", "openai/gpt-4o", 1741476542, REQUEST if request is None else request
    )
    events = stream.start()
    for each in chunks:
        events += stream.feed(each)
    events += stream.fail("upstream died", "server_error") if fail else stream.finish(USAGE, 0.25)
    return stream, events


def accumulate(events: list[dict[str, Any]]) -> Any:
    """Feed ``events`` through the SDK's accumulator; the final event it answers."""
    state: ResponseStreamState[Any] = ResponseStreamState(input_tools=omit, text_format=omit)
    last = None
    for event in events:
        for answered in state.handle_event(EVENTS.validate_python(event)):
            last = answered
    return last


def check_invariants(events: list[dict[str, Any]]) -> None:
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    ids = {event["response"]["id"] for event in events if "response" in event}
    assert ids == {"gen-1"}
    added: dict[int, dict[str, Any]] = {}
    parts: set[tuple[int, int]] = set()
    for event in events:
        kind = event["type"]
        if kind == "response.output_item.added":
            assert event["output_index"] not in added
            added[event["output_index"]] = event["item"]
            # An item is added empty; its parts and text arrive by their own events.
            assert event["item"].get("content", []) == []
            assert event["item"].get("summary", []) == []
            assert event["item"].get("arguments", "") == ""
        elif kind == "response.content_part.added":
            parts.add((event["output_index"], event["content_index"]))
        elif kind == "response.output_item.done":
            first = added[event["output_index"]]
            assert (first["type"], first["id"]) == (event["item"]["type"], event["item"]["id"])
            assert first.get("call_id") == event["item"].get("call_id")
        elif "content_index" in event:
            assert (event["output_index"], event["content_index"]) in parts
        elif "output_index" in event:
            assert event["output_index"] in added
    final = events[-1]["response"]
    if final["status"] != "failed":
        done = [event["item"] for event in events if event["type"] == "response.output_item.done"]
        assert sorted(done, key=lambda item: final["output"].index(item)) == final["output"]


def types(events: list[dict[str, Any]]) -> list[str]:
    return [event["type"] for event in events]


def test_text_stream_follows_the_documented_sequence() -> None:
    stream, events = run(
        [
            chunk({"role": "assistant", "content": ""}),
            chunk({"content": "Hi"}),
            chunk({"content": " there"}),
            chunk({}, "stop"),
            {**chunk({}), "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2}},
        ]
    )
    assert types(events) == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    check_invariants(events)
    message_id = item_id("msg", "gen-1", 0)
    assert events[2]["item"] == {
        "id": message_id,
        "type": "message",
        "status": "in_progress",
        "role": "assistant",
        "content": [],
    }
    assert events[6] == {
        "type": "response.output_text.done",
        "sequence_number": 6,
        "item_id": message_id,
        "output_index": 0,
        "content_index": 0,
        "text": "Hi there",
        "logprobs": [],
    }
    final = accumulate(events)
    assert final.type == "response.completed"
    assert final.response.output_text == "Hi there"
    assert final.response.usage.input_tokens == 12
    assert stream.response is not None and stream.response == events[-1]["response"]
    assert stream.response["usage"]["cost"] == 0.25
    assert stream.finish_reason == "stop"
    assert events[0]["response"]["status"] == "in_progress"
    assert events[0]["response"]["usage"] is None


def test_function_call_stream_follows_the_documented_sequence() -> None:
    _, events = run(
        [
            chunk(
                {
                    "role": "assistant",
                    "content": None,
                    **call_delta(0, "", id="call_1", name="get_weather"),
                }
            ),
            chunk(call_delta(0, '{"location":')),
            chunk(call_delta(0, '"Paris, France"}')),
            chunk({}, "tool_calls"),
        ],
        {**REQUEST, "tools": [WEATHER_TOOL]},
    )
    assert types(events) == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    check_invariants(events)
    assert events[2]["item"] == {
        "id": item_id("fc", "gen-1", 0),
        "type": "function_call",
        "status": "in_progress",
        "call_id": "call_1",
        "name": "get_weather",
        "arguments": "",
    }
    assert events[6]["item"]["arguments"] == '{"location":"Paris, France"}'
    assert events[6]["item"]["status"] == "completed"
    final = accumulate(events)
    assert final.response.output[0].call_id == "call_1"
    assert final.response.output[0].arguments == '{"location":"Paris, France"}'


def test_calls_sharing_an_id_get_their_own() -> None:
    # Clients tell calls apart by call_id (the SDK's accumulator refuses two alike).
    both = {"tool_calls": [{"index": 0, "id": "0"}, {"index": 1, "id": "0"}]}
    _, events = run([chunk({"content": None, **both})])
    check_invariants(events)
    final = accumulate(events)
    assert [item.call_id for item in final.response.output] == ["0", item_id("call", "gen-1", 1)]


def test_reasoning_then_text_then_parallel_calls() -> None:
    chunks = [
        chunk({"role": "assistant", "reasoning_content": "Two "}),
        chunk({"reasoning_content": "cities."}),
        chunk({"content": "Checking both."}),
        chunk(call_delta(0, "", id="call_a", name="get_weather")),
        chunk(call_delta(1, "", id="call_b", name="get_weather")),
        chunk(call_delta(1, '{"location":"Bogotá"}')),
        chunk(call_delta(0, '{"location":"Paris"}')),
        chunk({}, "tool_calls"),
    ]
    stream, events = run(chunks, {**REQUEST, "tools": [WEATHER_TOOL]})
    check_invariants(events)
    assert types(events)[2:9] == [
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
        "response.output_item.done",
    ]
    final = accumulate(events)
    output = final.response.output
    assert [item.type for item in output] == [
        "reasoning",
        "message",
        "function_call",
        "function_call",
    ]
    assert output[0].summary[0].text == "Two cities."
    assert [item.arguments for item in output[2:]] == [
        '{"location":"Paris"}',
        '{"location":"Bogotá"}',
    ]
    whole = chat_to_response(
        {
            "choices": [
                {
                    "message": {
                        "role": "assistant",
                        "reasoning_content": "Two cities.",
                        "content": "Checking both.",
                        "tool_calls": [
                            {
                                "id": "call_a",
                                "type": "function",
                                "function": {
                                    "name": "get_weather",
                                    "arguments": '{"location":"Paris"}',
                                },
                            },
                            {
                                "id": "call_b",
                                "type": "function",
                                "function": {
                                    "name": "get_weather",
                                    "arguments": '{"location":"Bogotá"}',
                                },
                            },
                        ],
                    },
                    "finish_reason": "tool_calls",
                }
            ]
        },
        id="gen-1",
        model="openai/gpt-4o",
        created_at=1741476542,
        request={**REQUEST, "tools": [WEATHER_TOOL]},
        usage=USAGE,
        cost=0.25,
    )
    assert stream.response == whole


def test_length_ends_incomplete() -> None:
    stream, events = run([chunk({"content": "Once upon"}), chunk({"content": " a"}, "length")])
    check_invariants(events)
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert events[-1]["response"]["output"][0]["status"] == "incomplete"
    final = accumulate(events)
    assert final.type == "response.incomplete"
    assert final.response.status == "incomplete"
    assert stream.finish_reason == "length"


def test_failure_reports_the_error_and_the_output_so_far() -> None:
    stream, events = run([chunk({"content": "Once"})], fail=True)
    assert types(events)[-1] == "response.failed"
    failed = events[-1]["response"]
    assert failed["status"] == "failed"
    assert failed["error"] == {"code": "server_error", "message": "upstream died"}
    assert failed["output"][0]["status"] == "incomplete"
    assert failed["output"][0]["content"][0]["text"] == "Once"
    assert failed["usage"] is None
    assert accumulate(events).type == "response.failed"
    assert stream.response == failed
    assert stream.fail("again", "server_error") == []
    assert stream.finish(USAGE, 0.0) == []
    assert stream.feed(chunk({"content": "late"})) == []


def test_unknown_failure_code_reads_as_server_error() -> None:
    stream = ChatToResponsesStream("gen-1", "m", 1, REQUEST)
    events = stream.start() + stream.fail("Upstream unavailable", "upstream_unavailable")
    assert events[-1]["response"]["error"]["code"] == "server_error"
    Response.model_validate(events[-1]["response"])


def test_empty_stream_answers_one_empty_message() -> None:
    _, events = run([chunk({"role": "assistant"}, "stop")])
    check_invariants(events)
    assert [item["type"] for item in events[-1]["response"]["output"]] == ["message"]
    assert accumulate(events).response.output_text == ""


def test_text_bytes_counts_generated_utf8() -> None:
    stream, _ = run(
        [
            chunk({"reasoning": "é"}),
            chunk({"content": "日本"}),
            chunk(call_delta(0, '{"a":"ü"}', id="c", name="f")),
        ]
    )
    assert stream.text_bytes == 2 + 6 + len('{"a":"ü"}'.encode())


def test_codex_turn_streams_as_the_sdk_expects() -> None:
    chunks = [
        chunk({"role": "assistant", "reasoning": "Run the tests first."}),
        chunk(call_delta(0, "", id="call_shell", name="shell")),
        chunk(call_delta(0, '{"command":["pytest","-q"]}')),
        chunk({}, "tool_calls"),
    ]
    stream, events = run(chunks, CODEX_REQUEST)
    check_invariants(events)
    final = accumulate(events)
    assert final.response.tools[1].type == "namespace"
    assert [item.type for item in final.response.output] == ["reasoning", "function_call"]
    assert final.response.output[1].name == "shell"
    assert stream.response is not None
    assert stream.response["store"] is False


@pytest.mark.parametrize(
    "odd",
    [
        None,
        [],
        {"choices": None},
        {"choices": [None]},
        {"choices": [{"delta": None}]},
        {"choices": [{"delta": {"content": 5, "tool_calls": [None, {"index": True}]}}]},
        {"choices": [{"delta": {"tool_calls": [{"function": {"arguments": {"a": 1}}}]}}]},
    ],
)
def test_odd_chunks_are_tolerated(odd: Any) -> None:
    _, events = run([odd, chunk({"content": "ok"})])
    check_invariants(events)
    assert accumulate(events).type == "response.completed"


text = st.text(max_size=4)
deltas = st.fixed_dictionaries(
    {},
    optional={
        "content": st.none() | text,
        "reasoning": text,
        "reasoning_content": text,
        "tool_calls": st.lists(
            st.fixed_dictionaries(
                {"index": st.integers(0, 2)},
                optional={
                    "id": text,
                    "function": st.fixed_dictionaries(
                        {}, optional={"name": text, "arguments": text | json_values}
                    ),
                },
            )
            | json_values,
            max_size=2,
        ),
    },
)
chunks = (
    st.builds(chunk, deltas, st.sampled_from([None, "stop", "length", "tool_calls"])) | json_values
)


@given(st.lists(chunks, max_size=12), st.booleans())
def test_any_chunks_make_a_stream_the_sdk_accepts(chunk_list: list[Any], fail: bool) -> None:
    stream, events = run(chunk_list, fail=fail)
    check_invariants(events)
    last = accumulate(events)
    assert last.type == events[-1]["type"]
    Response.model_validate(stream.response)


def sse_data(response: httpx.Response) -> Iterator[Any]:
    """The JSON ``data:`` payloads of a server-sent event stream, ``[DONE]`` excluded."""
    for line in response.iter_lines():
        if line.startswith("data: ") and line != "data: [DONE]":
            yield msgspec.json.decode(line[len("data: ") :])


def test_a_chat_servers_stream_translates_for_the_sdk(fake_upstream: Upstream) -> None:
    """Responses request → chat → the chat stub's real SSE → Responses events → the SDK."""
    request = {"model": "echo", "instructions": "Be brief.", "input": "one two", "stream": True}
    chat = responses_to_chat(request, history=[{"role": "user", "content": "earlier words"}])
    stream = ChatToResponsesStream("gen-7", "test/echo", 1, request)
    events = stream.start()
    usage = None
    with httpx.stream(
        "POST", fake_upstream.v1 + "/chat/completions", json=chat, timeout=10
    ) as sent:
        for data in sse_data(sent):
            usage = from_openai(data.get("usage")) or usage
            events += stream.feed(data)
    assert usage == Usage(prompt_tokens=6, completion_tokens=5)
    events += stream.finish(usage, 0.01)
    assert fake_upstream.requests[-1].body["stream_options"] == {"include_usage": True}
    final = accumulate(events)
    assert final.type == "response.incomplete"  # the chat stub always stops for length
    assert final.response.id == "gen-7"
    assert final.response.output_text == "tok " * 5
    assert stream.text_bytes == len("tok " * 5)


def test_a_responses_upstreams_stream_relays_under_our_id() -> None:
    """The Responses stub's events, relabelled by relay_event, still satisfy the SDK."""
    with (
        running_responses_upstream() as upstream,
        httpx.stream(
            "POST",
            upstream.v1 + "/responses",
            json={"model": "echo", "input": "a b c", "stream": True},
            timeout=10,
        ) as sent,
    ):
        upstream_events = list(sse_data(sent))
    completed = upstream_events[-1]["response"]
    usage = from_responses(completed["usage"])
    assert usage == Usage(prompt_tokens=3, completion_tokens=5)
    relayed = [relay_event(event, id="gen-8", model="test/echo") for event in upstream_events[:-1]]
    relayed.append(
        relay_event(upstream_events[-1], id="gen-8", model="test/echo", usage=usage, cost=0.5)
    )
    final = accumulate(relayed)
    assert final.type == "response.completed"
    assert (final.response.id, final.response.model) == ("gen-8", "test/echo")
    assert final.response.usage.cost == 0.5
    assert final.response.output_text == "tok " * 5
