"""Answers and streams translated between chat completions and Anthropic messages.

Inputs are each API's documented answers and stream sequences (OpenAI's chat
completion, tool-call and streaming examples; Anthropic's message, text stream
and tool-use stream with ``input_json_delta``). Outputs are checked event by
event and then handed to the official SDKs' own types and stream accumulators
(``anthropic`` and ``openai``), which must accept them.
"""

from __future__ import annotations

import json
from typing import Any

import anthropic.types
import openai.types.chat
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelgates.gateway.translate.anthropic import (
    ChatToMessagesStream,
    MessagesToChatStream,
    anthropic_usage,
    chat_to_message,
    message_to_chat,
)
from modelgates.gateway.usage import Usage
from tests.support.sdk_streams import anthropic_message, chat_completion

USAGE = Usage(prompt_tokens=19, completion_tokens=10)
CACHED = Usage(prompt_tokens=100, completion_tokens=7, cached_tokens=60, cache_write_tokens=30)


def chat_chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-123",
        "object": "chat.completion.chunk",
        "created": 1694268190,
        "model": "gpt-4o-mini",
        "system_fingerprint": "fp_44709d6fcb",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }


# --- chat completion → Anthropic message --------------------------------------------

CHAT_COMPLETION = {
    "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
    "object": "chat.completion",
    "created": 1741569952,
    "model": "gpt-4.1-2025-04-14",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Hello! How can I assist you today?",
                "refusal": None,
                "annotations": [],
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 19, "completion_tokens": 10, "total_tokens": 29},
}
TOOL_COMPLETION = {
    "id": "chatcmpl-abc123",
    "object": "chat.completion",
    "created": 1699896916,
    "model": "gpt-4o-mini",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_abc123",
                        "type": "function",
                        "function": {
                            "name": "get_current_weather",
                            "arguments": '{\n"location": "Boston, MA"\n}',
                        },
                    },
                    {
                        "id": "call_def456",
                        "type": "function",
                        "function": {"name": "get_current_weather", "arguments": '{"loc'},
                    },
                ],
            },
            "logprobs": None,
            "finish_reason": "tool_calls",
        }
    ],
}


def test_chat_completion_becomes_a_message() -> None:
    message = chat_to_message(
        CHAT_COMPLETION, id="gen-1", model="openai/gpt-4.1", usage=USAGE, cost=0.5
    )
    assert message == {
        "id": "gen-1",
        "type": "message",
        "role": "assistant",
        "model": "openai/gpt-4.1",
        "content": [{"type": "text", "text": "Hello! How can I assist you today?"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 19,
            "output_tokens": 10,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "cost": 0.5,
        },
    }
    assert anthropic.types.Message.model_validate(message).content[0].type == "text"


def test_tool_calls_become_tool_use_blocks() -> None:
    message = chat_to_message(TOOL_COMPLETION, id="gen-2", model="m", usage=USAGE, cost=0.0)
    assert message["content"] == [
        {
            "type": "tool_use",
            "id": "call_abc123",
            "name": "get_current_weather",
            "input": {"location": "Boston, MA"},
        },
        {"type": "tool_use", "id": "call_def456", "name": "get_current_weather", "input": {}},
    ]
    assert message["stop_reason"] == "tool_use"
    anthropic.types.Message.model_validate(message)


def test_reasoning_becomes_a_leading_thinking_block() -> None:
    chat = {
        "choices": [
            {
                "message": {"role": "assistant", "content": "42", "reasoning_content": "6 × 7"},
                "finish_reason": "length",
            }
        ]
    }
    message = chat_to_message(chat, id="gen-3", model="m", usage=USAGE, cost=0.0)
    assert message["content"] == [
        {"type": "thinking", "thinking": "6 × 7", "signature": ""},
        {"type": "text", "text": "42"},
    ]
    assert message["stop_reason"] == "max_tokens"
    anthropic.types.Message.model_validate(message)


@pytest.mark.parametrize(
    ("finish_reason", "stop_reason"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("content_filter", "refusal"),
        (None, "end_turn"),
        ("something_new", "end_turn"),
    ],
)
def test_finish_reasons(finish_reason: str | None, stop_reason: str) -> None:
    chat = {"choices": [{"message": {"content": "x"}, "finish_reason": finish_reason}]}
    message = chat_to_message(chat, id="g", model="m", usage=USAGE, cost=0.0)
    assert message["stop_reason"] == stop_reason


def test_usage_counts_the_cache_apart() -> None:
    assert anthropic_usage(CACHED, 0.25) == {
        "input_tokens": 10,
        "output_tokens": 7,
        "cache_creation_input_tokens": 30,
        "cache_read_input_tokens": 60,
        "cost": 0.25,
    }


# --- chat stream → Anthropic events -----------------------------------------------------

TEXT_CHUNKS = [
    chat_chunk({"role": "assistant", "content": ""}),
    chat_chunk({"content": "Hello"}),
    chat_chunk({"content": "!"}),
    chat_chunk({}, "stop"),
    {**chat_chunk({}), "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 2}},
]


def test_text_stream_event_by_event() -> None:
    stream = ChatToMessagesStream("gen-1", "openai/gpt-4o-mini", prompt_tokens_estimate=9)
    events = [event for chunk in TEXT_CHUNKS for event in stream.feed(chunk)]
    events += stream.finish(Usage(9, 2), 0.001)
    start_usage = {
        "input_tokens": 9,
        "output_tokens": 1,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }
    assert events == [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "gen-1",
                    "type": "message",
                    "role": "assistant",
                    "model": "openai/gpt-4o-mini",
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": start_usage,
                },
            },
        ),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "Hello"},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "!"},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {
                    "input_tokens": 9,
                    "output_tokens": 2,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 0,
                    "cost": 0.001,
                },
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    assert stream.finish_reason == "stop"
    assert stream.text_bytes == len(b"Hello!")
    message = anthropic_message(events)
    assert [block.model_dump(exclude_none=True) for block in message.content] == [
        {"type": "text", "text": "Hello!"}
    ]
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == 2


def tool_call_chunk(index: int, **fields: Any) -> dict[str, Any]:
    return chat_chunk({"tool_calls": [{"index": index, **fields}]})


TOOL_CHUNKS = [
    chat_chunk({"role": "assistant", "content": None, "reasoning": "Weather: use the tool."}),
    chat_chunk({"content": "Checking both cities."}),
    tool_call_chunk(
        0,
        id="call_abc123",
        type="function",
        function={"name": "get_current_weather", "arguments": ""},
    ),
    tool_call_chunk(0, function={"arguments": '{"location"'}),
    tool_call_chunk(0, function={"arguments": ': "Boston, MA"}'}),
    tool_call_chunk(1, function={"arguments": '{"location": '}),  # before its id and name
    tool_call_chunk(1, id="call_def456", function={"name": "get_current_weather"}),
    tool_call_chunk(1, function={"arguments": '"Paris"}'}),
    chat_chunk({}, "tool_calls"),
]


def test_tool_call_stream_event_by_event() -> None:
    stream = ChatToMessagesStream("gen-2", "m", prompt_tokens_estimate=30)
    events = [event for chunk in TOOL_CHUNKS for event in stream.feed(chunk)]
    events += stream.finish(Usage(30, 20), 0.0)
    shapes = [
        (
            name,
            data.get("index"),
            (data.get("delta") or data.get("content_block") or {}).get("type"),
        )
        for name, data in events
    ]
    assert shapes == [
        ("message_start", None, None),
        ("content_block_start", 0, "thinking"),
        ("content_block_delta", 0, "thinking_delta"),
        ("content_block_stop", 0, None),
        ("content_block_start", 1, "text"),
        ("content_block_delta", 1, "text_delta"),
        ("content_block_stop", 1, None),
        ("content_block_start", 2, "tool_use"),
        ("content_block_delta", 2, "input_json_delta"),
        ("content_block_delta", 2, "input_json_delta"),
        ("content_block_stop", 2, None),
        ("content_block_start", 3, "tool_use"),
        ("content_block_delta", 3, "input_json_delta"),
        ("content_block_delta", 3, "input_json_delta"),
        ("content_block_stop", 3, None),
        ("message_delta", None, None),
        ("message_stop", None, None),
    ]
    assert events[7][1]["content_block"] == {
        "type": "tool_use",
        "id": "call_abc123",
        "name": "get_current_weather",
        "input": {},
    }
    message = anthropic_message(events)
    assert [block.model_dump(exclude_none=True) for block in message.content] == [
        {"type": "thinking", "thinking": "Weather: use the tool.", "signature": ""},
        {"type": "text", "text": "Checking both cities."},
        {
            "type": "tool_use",
            "id": "call_abc123",
            "name": "get_current_weather",
            "input": {"location": "Boston, MA"},
        },
        {
            "type": "tool_use",
            "id": "call_def456",
            "name": "get_current_weather",
            "input": {"location": "Paris"},
        },
    ]
    assert message.stop_reason == "tool_use"
    assert stream.finish_reason == "tool_calls"
    generated = 'Weather: use the tool.Checking both cities.{"location": "Boston, MA"}'
    assert stream.text_bytes == len((generated + '{"location": "Paris"}').encode())


def test_tool_calls_under_a_stop_finish_still_stop_for_tool_use() -> None:
    stream = ChatToMessagesStream("gen-3", "m", prompt_tokens_estimate=1)
    stream.feed(tool_call_chunk(0, id="c", function={"name": "f", "arguments": "{}"}))
    stream.feed(chat_chunk({}, "stop"))
    events = stream.finish(USAGE, 0.0)
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"


def test_empty_stream_still_makes_a_whole_message() -> None:
    stream = ChatToMessagesStream("gen-4", "m", prompt_tokens_estimate=3)
    events = stream.finish(Usage(3, 0), 0.0)
    assert [name for name, _ in events] == ["message_start", "message_delta", "message_stop"]
    message = anthropic_message(events)
    assert message.content == []
    assert message.stop_reason == "end_turn"
    assert stream.finish(USAGE, 0.0) == []


def test_stream_broken_midway_ends_with_an_error_event() -> None:
    stream = ChatToMessagesStream("gen-5", "m", prompt_tokens_estimate=3)
    assert [name for name, _ in stream.feed(chat_chunk({"content": "par"}))] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
    ]
    events = stream.error("Upstream stream broke", "api_error")
    assert events == [
        (
            "error",
            {"type": "error", "error": {"type": "api_error", "message": "Upstream stream broke"}},
        )
    ]
    assert anthropic.types.ErrorResponse.model_validate(events[0][1]).error.type == "api_error"
    assert stream.error("again", "api_error") == []
    assert stream.feed(chat_chunk({"content": "tial"})) == []
    assert stream.finish(USAGE, 0.0) == []


# --- Anthropic message → chat completion -------------------------------------------------

ANTHROPIC_MESSAGE = {
    "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5",
    "content": [{"type": "text", "text": "Hi! My name is Claude."}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 2095, "output_tokens": 503},
}
ANTHROPIC_TOOL_MESSAGE = {
    "id": "msg_01Aq9w938a90dw8q",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5",
    "content": [
        {"type": "thinking", "thinking": "The user wants weather.", "signature": "EqQB"},
        {"type": "redacted_thinking", "data": "EmwKAhgB"},
        {"type": "text", "text": "I'll check the current weather in San Francisco for you."},
        {
            "type": "tool_use",
            "id": "toolu_01A09q90qw90lq917835lq9",
            "name": "get_weather",
            "input": {"location": "San Francisco, CA"},
        },
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {"input_tokens": 2095, "output_tokens": 503},
}


def test_message_becomes_a_chat_completion() -> None:
    chat = message_to_chat(
        ANTHROPIC_MESSAGE, id="gen-6", model="anthropic/claude-sonnet-4.5", created=1700000000,
        usage=CACHED, cost=0.002,
    )  # fmt: skip
    assert chat == {
        "id": "gen-6",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "anthropic/claude-sonnet-4.5",
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hi! My name is Claude."},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": 100,
            "completion_tokens": 7,
            "total_tokens": 107,
            "prompt_tokens_details": {"cached_tokens": 60, "cache_write_tokens": 30},
            "completion_tokens_details": {"reasoning_tokens": 0},
            "cost": 0.002,
        },
    }
    openai.types.chat.ChatCompletion.model_validate(chat)


def test_tool_use_message_becomes_tool_calls() -> None:
    chat = message_to_chat(
        ANTHROPIC_TOOL_MESSAGE, id="gen-7", model="m", created=1, usage=USAGE, cost=0.0
    )
    choice = chat["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"] == {
        "role": "assistant",
        "content": "I'll check the current weather in San Francisco for you.",
        "reasoning": "The user wants weather.",
        "tool_calls": [
            {
                "index": 0,
                "id": "toolu_01A09q90qw90lq917835lq9",
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "arguments": '{"location":"San Francisco, CA"}',
                },
            }
        ],
    }
    parsed = openai.types.chat.ChatCompletion.model_validate(chat)
    assert parsed.choices[0].message.tool_calls is not None


@pytest.mark.parametrize(
    ("stop_reason", "finish_reason"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        (None, "stop"),
    ],
)
def test_stop_reasons(stop_reason: str | None, finish_reason: str) -> None:
    message = {**ANTHROPIC_MESSAGE, "stop_reason": stop_reason}
    chat = message_to_chat(message, id="g", model="m", created=1, usage=USAGE, cost=0.0)
    assert chat["choices"][0]["finish_reason"] == finish_reason


# --- Anthropic events → chat stream ---------------------------------------------------------


def start_event(input_tokens: int, **usage: int) -> tuple[str, dict[str, Any]]:
    message: dict[str, Any] = {
        "id": "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY",
        "type": "message",
        "role": "assistant",
        "content": [],
        "model": "claude-sonnet-4-5",
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": 1, **usage},
    }
    return "message_start", {"type": "message_start", "message": message}


def block_start(index: int, block: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return "content_block_start", {
        "type": "content_block_start",
        "index": index,
        "content_block": block,
    }


def block_delta(index: int, delta: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}


def block_stop(index: int) -> tuple[str, dict[str, Any]]:
    return "content_block_stop", {"type": "content_block_stop", "index": index}


def message_delta(stop_reason: str, output_tokens: int) -> tuple[str, dict[str, Any]]:
    delta = {"stop_reason": stop_reason, "stop_sequence": None}
    return "message_delta", {
        "type": "message_delta",
        "delta": delta,
        "usage": {"output_tokens": output_tokens},
    }


PING = ("ping", {"type": "ping"})
STOP = ("message_stop", {"type": "message_stop"})
TEXT_EVENTS = [
    start_event(25),
    block_start(0, {"type": "text", "text": ""}),
    PING,
    block_delta(0, {"type": "text_delta", "text": "Hello"}),
    block_delta(0, {"type": "text_delta", "text": "!"}),
    block_stop(0),
    message_delta("end_turn", 15),
    STOP,
]
TOOL_PIECES = [
    "",
    '{"location":',
    ' "San',
    " Francisc",
    "o,",
    ' CA"',
    ", ",
    '"unit": "fah',
    'renheit"}',
]
TOOL_EVENTS = [
    start_event(472, cache_read_input_tokens=100, cache_creation_input_tokens=20),
    block_start(0, {"type": "thinking", "thinking": "", "signature": ""}),
    block_delta(0, {"type": "thinking_delta", "thinking": "Need the weather."}),
    block_delta(0, {"type": "signature_delta", "signature": "EqQBCgIYAhIM"}),
    block_stop(0),
    block_start(1, {"type": "text", "text": ""}),
    block_delta(
        1, {"type": "text_delta", "text": "Okay, let's check the weather for San Francisco, CA:"}
    ),
    block_stop(1),
    block_start(
        2,
        {
            "type": "tool_use",
            "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
            "name": "get_weather",
            "input": {},
        },
    ),
    *[block_delta(2, {"type": "input_json_delta", "partial_json": piece}) for piece in TOOL_PIECES],
    block_stop(2),
    message_delta("tool_use", 89),
    STOP,
]


def test_anthropic_text_stream_chunk_by_chunk() -> None:
    stream = MessagesToChatStream("gen-8", "anthropic/claude-sonnet-4.5", 1700000000)
    chunks = [chunk for name, data in TEXT_EVENTS for chunk in stream.feed(name, data)]
    assert [chunk["choices"][0] for chunk in chunks] == [
        {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None},
        {"index": 0, "delta": {"content": "Hello"}, "finish_reason": None},
        {"index": 0, "delta": {"content": "!"}, "finish_reason": None},
        {"index": 0, "delta": {}, "finish_reason": "stop"},
    ]
    assert {(c["id"], c["model"], c["created"], c["object"]) for c in chunks} == {
        ("gen-8", "anthropic/claude-sonnet-4.5", 1700000000, "chat.completion.chunk")
    }
    assert stream.usage == Usage(prompt_tokens=25, completion_tokens=15)
    assert stream.finish_reason == "stop"
    assert stream.stop_reason == "end_turn"
    assert stream.text_bytes == len(b"Hello!")
    final = stream.finish(Usage(25, 15), 0.003)
    assert final == [
        {
            "id": "gen-8",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": "anthropic/claude-sonnet-4.5",
            "system_fingerprint": None,
            "choices": [],
            "usage": {
                "prompt_tokens": 25,
                "completion_tokens": 15,
                "total_tokens": 40,
                "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0},
                "cost": 0.003,
            },
        }
    ]
    completion = chat_completion(chunks + final)
    assert completion.choices[0].message.content == "Hello!"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.total_tokens == 40


def test_anthropic_tool_stream_chunk_by_chunk() -> None:
    stream = MessagesToChatStream("gen-9", "m", 1)
    chunks = [chunk for name, data in TOOL_EVENTS for chunk in stream.feed(name, data)]
    deltas = [chunk["choices"][0]["delta"] for chunk in chunks]
    assert deltas[:4] == [
        {"role": "assistant", "content": ""},
        {"reasoning": "Need the weather."},
        {"content": "Okay, let's check the weather for San Francisco, CA:"},
        {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": ""},
                }
            ]
        },
    ]
    assert deltas[4:-1] == [
        {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
        for piece in TOOL_PIECES
        if piece
    ]
    assert chunks[-1]["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "tool_calls"}
    assert stream.usage == Usage(
        prompt_tokens=592, completion_tokens=89, cached_tokens=100, cache_write_tokens=20
    )
    completion = chat_completion(chunks + stream.finish(stream.usage, 0.0))
    calls = completion.choices[0].message.tool_calls
    assert calls is not None and len(calls) == 1
    assert calls[0].id == "toolu_01T1x1fJ34qAmk2tNTrN7Up6"
    assert json.loads(calls[0].function.arguments) == {
        "location": "San Francisco, CA",
        "unit": "fahrenheit",
    }
    assert completion.choices[0].finish_reason == "tool_calls"


def test_anthropic_error_event_is_exposed_and_ends_the_stream() -> None:
    stream = MessagesToChatStream("gen-10", "m", 1)
    for name, data in TEXT_EVENTS[:4]:
        stream.feed(name, data)
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    assert stream.feed("error", error) == []
    assert stream.error == {"type": "overloaded_error", "message": "Overloaded"}
    assert stream.feed(*TEXT_EVENTS[4]) == []
    assert stream.usage == Usage(prompt_tokens=25, completion_tokens=1)


def test_stream_without_message_delta_still_finishes() -> None:
    stream = MessagesToChatStream("gen-11", "m", 1)
    chunks = [chunk for name, data in TEXT_EVENTS[:4] for chunk in stream.feed(name, data)]
    final = stream.finish(Usage(25, 1), 0.0)
    assert [chunk["choices"] for chunk in final] == [
        [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        [],
    ]
    assert chat_completion(chunks + final).choices[0].message.content == "Hello"


# --- streams round trip --------------------------------------------------------------------


def test_chat_stream_survives_a_trip_through_anthropic_events() -> None:
    """chat chunks → Anthropic events → chat chunks: the same text, reasoning and calls."""
    there = ChatToMessagesStream("gen-12", "m", prompt_tokens_estimate=30)
    events = [event for chunk in TOOL_CHUNKS for event in there.feed(chunk)]
    events += there.finish(Usage(30, 20), 0.0)
    back = MessagesToChatStream("gen-12", "m", 1)
    chunks = [chunk for name, data in events for chunk in back.feed(name, data)]
    chunks += back.finish(back.usage or USAGE, 0.0)
    original = chat_completion(
        [{**chunk, "id": "gen-12", "model": "m", "created": 1} for chunk in TOOL_CHUNKS]
    )
    again = chat_completion(chunks)
    assert again.choices[0].message.content == original.choices[0].message.content
    assert again.choices[0].finish_reason == original.choices[0].finish_reason == "tool_calls"
    calls = again.choices[0].message.tool_calls or []
    assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        (c.id, c.function.name, json.loads(c.function.arguments))
        for c in original.choices[0].message.tool_calls or []
    ]
    assert back.usage == Usage(30, 20)
    assert back.text_bytes == there.text_bytes


# --- never raises ----------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
CHAT_PIECES = st.sampled_from(TEXT_CHUNKS + TOOL_CHUNKS + [TOOL_COMPLETION, CHAT_COMPLETION])
ANTHROPIC_PIECES = st.sampled_from([data for _, data in TEXT_EVENTS + TOOL_EVENTS])


@settings(max_examples=200)
@given(st.lists(CHAT_PIECES | JSON, max_size=12), st.lists(ANTHROPIC_PIECES | JSON, max_size=12))
def test_answers_and_streams_never_raise(
    chat_values: list[Any], anthropic_values: list[Any]
) -> None:
    """Any sequence of upstream values, shaped or not, translates without an exception."""
    there = ChatToMessagesStream("g", "m", prompt_tokens_estimate=1)
    back = MessagesToChatStream("g", "m", 1)
    for value in chat_values:
        there.feed(value)
        chat_to_message(value, id="g", model="m", usage=USAGE, cost=0.0)
    for value in anthropic_values:
        name = value.get("type") if isinstance(value, dict) else None
        back.feed(name if isinstance(name, str) else "x", value)
        message_to_chat(value, id="g", model="m", created=1, usage=USAGE, cost=0.0)
    assert back.usage is None or back.usage.prompt_tokens >= 0
    there.finish(USAGE, 0.0)
    back.finish(USAGE, 0.0)
