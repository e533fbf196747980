"""Anthropic Messages ↔ chat requests: documented examples, round trips, errors, fuzzing.

The cases are built from each API's documented request examples (Anthropic's
Messages reference: a plain message, multi-turn, system, images, the tool-use
round trip; OpenAI's chat reference: developer message, image input,
functions).
"""

from __future__ import annotations

import contextlib
import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelgates.gateway.translate import TranslationError
from modelgates.gateway.translate.anthropic import (
    chat_to_messages,
    error_type_for_status,
    messages_to_chat,
)

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Get the current weather in a given location",
    "input_schema": {
        "type": "object",
        "properties": {
            "location": {
                "type": "string",
                "description": "The city and state, e.g. San Francisco, CA",
            }
        },
        "required": ["location"],
    },
}
WEATHER_FUNCTION = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": WEATHER_TOOL["description"],
        "parameters": WEATHER_TOOL["input_schema"],
    },
}
TOOL_USE_ID = "toolu_01A09q90qw90lq917835lq9"
JPEG = "/9j/4AAQSkZJRgABAQEASABIAAD"
IMAGE_URL = "https://upload.wikimedia.org/wikipedia/commons/a/a7/Camponotus_flavomarginatus_ant.jpg"


def request(**fields: Any) -> dict[str, Any]:
    return {"model": "claude-sonnet-4-5", "max_tokens": 1024, **fields}


# --- Anthropic → chat ----------------------------------------------------------

MESSAGES_TO_CHAT = [
    pytest.param(
        request(messages=[{"role": "user", "content": "Hello, world"}]),
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 1024,
            "messages": [{"role": "user", "content": "Hello, world"}],
        },
        id="basic",
    ),
    pytest.param(
        request(
            messages=[
                {"role": "user", "content": "Hello there."},
                {"role": "assistant", "content": "Hi, I'm Claude. How can I help you?"},
                {"role": "user", "content": "Can you explain LLMs in plain English?"},
            ]
        ),
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 1024,
            "messages": [
                {"role": "user", "content": "Hello there."},
                {"role": "assistant", "content": "Hi, I'm Claude. How can I help you?"},
                {"role": "user", "content": "Can you explain LLMs in plain English?"},
            ],
        },
        id="multi-turn",
    ),
    pytest.param(
        request(
            system="You are a seasoned data scientist at a Fortune 500 company.",
            messages=[{"role": "user", "content": "Analyze this dataset."}],
        ),
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 1024,
            "messages": [
                {
                    "role": "system",
                    "content": "You are a seasoned data scientist at a Fortune 500 company.",
                },
                {"role": "user", "content": "Analyze this dataset."},
            ],
        },
        id="system-string",
    ),
    pytest.param(
        request(
            system=[
                {"type": "text", "text": "You are Claude Code."},
                {"type": "text", "text": "Be terse.", "cache_control": {"type": "ephemeral"}},
            ],
            messages=[
                {"role": "system", "content": "Project notes."},
                {"role": "user", "content": [{"type": "text", "text": "hi"}]},
            ],
        ),
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 1024,
            "messages": [
                {"role": "system", "content": "You are Claude Code.\n\nBe terse."},
                {"role": "system", "content": "Project notes."},
                {"role": "user", "content": "hi"},
            ],
        },
        id="system-blocks-and-system-message",
    ),
    pytest.param(
        request(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/jpeg", "data": JPEG},
                        },
                        {"type": "image", "source": {"type": "url", "url": IMAGE_URL}},
                        {"type": "text", "text": "What is in the above image?"},
                    ],
                }
            ]
        ),
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 1024,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image_url",
                            "image_url": {"url": f"data:image/jpeg;base64,{JPEG}"},
                        },
                        {"type": "image_url", "image_url": {"url": IMAGE_URL}},
                        {"type": "text", "text": "What is in the above image?"},
                    ],
                }
            ],
        },
        id="images",
    ),
    pytest.param(
        request(
            tools=[WEATHER_TOOL],
            messages=[
                {"role": "user", "content": "What's the weather like in San Francisco?"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "Use get_weather.", "signature": "EqQB"},
                        {"type": "redacted_thinking", "data": "EmwKAhgBEgy"},
                        {"type": "text", "text": "I'll check the current weather."},
                        {
                            "type": "tool_use",
                            "id": TOOL_USE_ID,
                            "name": "get_weather",
                            "input": {"location": "San Francisco, CA"},
                        },
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": TOOL_USE_ID, "content": "15 degrees"}
                    ],
                },
            ],
        ),
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 1024,
            "tools": [WEATHER_FUNCTION],
            "messages": [
                {"role": "user", "content": "What's the weather like in San Francisco?"},
                {
                    "role": "assistant",
                    "content": "I'll check the current weather.",
                    "tool_calls": [
                        {
                            "id": TOOL_USE_ID,
                            "type": "function",
                            "function": {
                                "name": "get_weather",
                                "arguments": '{"location":"San Francisco, CA"}',
                            },
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": TOOL_USE_ID, "content": "15 degrees"},
            ],
        },
        id="tool-use-round-trip",
    ),
    pytest.param(
        request(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Here are the results."},
                        {
                            "type": "tool_result",
                            "tool_use_id": "toolu_a",
                            "content": [
                                {"type": "text", "text": "line one"},
                                {"type": "text", "text": "line two"},
                                {
                                    "type": "image",
                                    "source": {
                                        "type": "base64",
                                        "media_type": "image/png",
                                        "data": "iVBOR",
                                    },
                                },
                            ],
                        },
                        {
                            "type": "tool_result",
                            "tool_use_id": "toolu_b",
                            "content": "No such file",
                            "is_error": True,
                        },
                    ],
                }
            ]
        ),
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 1024,
            "messages": [
                {"role": "tool", "tool_call_id": "toolu_a", "content": "line one\nline two"},
                {"role": "tool", "tool_call_id": "toolu_b", "content": "Error: No such file"},
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}},
                        {"type": "text", "text": "Here are the results."},
                    ],
                },
            ],
        },
        id="tool-results-before-text-errors-and-images",
    ),
    pytest.param(
        request(
            messages=[{"role": "user", "content": "Hi"}],
            stop_sequences=["\n\nHuman:"],
            temperature=0.5,
            top_p=0.9,
            top_k=40,
            stream=True,
            metadata={"user_id": "13803d75-b4b5-4c3e-b2a2-6f21399b021b"},
            thinking={"type": "enabled", "budget_tokens": 2048},
            service_tier="auto",
            context_management={"edits": []},
            output_config={"effort": "high"},
            container="container_1",
            mcp_servers=[{"type": "url", "url": "https://example.com/mcp", "name": "x"}],
        ),
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 1024,
            "messages": [{"role": "user", "content": "Hi"}],
            "stop": ["\n\nHuman:"],
            "temperature": 0.5,
            "top_p": 0.9,
            "stream": True,
            "stream_options": {"include_usage": True},
            "user": "13803d75-b4b5-4c3e-b2a2-6f21399b021b",
        },
        id="sampling-stream-metadata-and-dropped-fields",
    ),
    pytest.param(
        request(
            messages=[{"role": "user", "content": "Search and edit"}],
            tools=[
                WEATHER_TOOL,
                {"type": "custom", "name": "noop"},
                {"type": "web_search_20250305", "name": "web_search", "max_uses": 5},
                {"type": "bash_20250124", "name": "bash"},
                {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"},
            ],
            tool_choice={"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
        ),
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 1024,
            "messages": [{"role": "user", "content": "Search and edit"}],
            "tools": [
                WEATHER_FUNCTION,
                {
                    "type": "function",
                    "function": {
                        "name": "noop",
                        "parameters": {"type": "object", "properties": {}},
                    },
                },
            ],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            "parallel_tool_calls": False,
        },
        id="custom-tools-kept-server-tools-dropped",
    ),
    pytest.param(
        request(
            messages=[{"role": "user", "content": "Search"}],
            tools=[{"type": "web_search_20250305", "name": "web_search"}],
            tool_choice={"type": "any"},
        ),
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 1024,
            "messages": [{"role": "user", "content": "Search"}],
        },
        id="tool-choice-dropped-with-no-tool-left",
    ),
    pytest.param(
        request(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "document",
                            "title": "paper.pdf",
                            "source": {
                                "type": "base64",
                                "media_type": "application/pdf",
                                "data": "JVBERi0",
                            },
                        },
                        {
                            "type": "document",
                            "source": {"type": "text", "media_type": "text/plain", "data": "notes"},
                        },
                        {"type": "document", "source": {"type": "file", "file_id": "file_1"}},
                        {"type": "search_result", "source": "x", "title": "t", "content": []},
                    ],
                },
                {"role": "assistant", "content": [{"type": "thinking", "thinking": "..."}]},
            ]
        ),
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 1024,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "file",
                            "file": {
                                "filename": "paper.pdf",
                                "file_data": "data:application/pdf;base64,JVBERi0",
                            },
                        },
                        {"type": "text", "text": "notes"},
                    ],
                }
            ],
        },
        id="documents-and-empty-assistant-turns",
    ),
]


@pytest.mark.parametrize(("body", "expected"), MESSAGES_TO_CHAT)
def test_messages_to_chat(body: dict[str, Any], expected: dict[str, Any]) -> None:
    assert messages_to_chat(body) == expected


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, "auto"),
        ({"type": "any"}, "required"),
        ({"type": "none"}, "none"),
        (
            {"type": "tool", "name": "get_weather"},
            {"type": "function", "function": {"name": "get_weather"}},
        ),
    ],
)
def test_tool_choice_to_chat(choice: dict[str, Any], expected: object) -> None:
    chat = messages_to_chat(request(messages=[], tools=[WEATHER_TOOL], tool_choice=choice))
    assert chat["tool_choice"] == expected
    assert "parallel_tool_calls" not in chat


def test_model_is_copied_unchanged() -> None:
    assert messages_to_chat({"model": "anthropic/claude-x", "messages": []})["model"] == (
        "anthropic/claude-x"
    )


# --- chat → Anthropic ----------------------------------------------------------

CHAT_TO_MESSAGES = [
    pytest.param(
        {
            "model": "gpt-4o",
            "messages": [
                {"role": "developer", "content": "You are a helpful assistant."},
                {"role": "user", "content": "Hello!"},
            ],
        },
        {
            "model": "gpt-4o",
            "system": "You are a helpful assistant.",
            "messages": [{"role": "user", "content": "Hello!"}],
            "max_tokens": 4096,
        },
        id="developer-message",
    ),
    pytest.param(
        {
            "model": "gpt-4o",
            "messages": [
                {"role": "system", "content": "One."},
                {"role": "user", "content": "Hi"},
                {"role": "system", "content": [{"type": "text", "text": "Two."}]},
            ],
            "max_tokens": 50,
            "max_completion_tokens": 60,
        },
        {
            "model": "gpt-4o",
            "system": [{"type": "text", "text": "One."}, {"type": "text", "text": "Two."}],
            "messages": [{"role": "user", "content": "Hi"}],
            "max_tokens": 60,
        },
        id="several-system-messages",
    ),
    pytest.param(
        {
            "model": "gpt-4o",
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What's in this image?"},
                        {"type": "image_url", "image_url": {"url": IMAGE_URL, "detail": "high"}},
                        {
                            "type": "image_url",
                            "image_url": {"url": f"data:image/jpeg;base64,{JPEG}"},
                        },
                        {
                            "type": "file",
                            "file": {
                                "filename": "paper.pdf",
                                "file_data": "data:application/pdf;base64,JVBERi0",
                            },
                        },
                        {"type": "input_audio", "input_audio": {"data": "UklG", "format": "wav"}},
                    ],
                }
            ],
            "max_tokens": 300,
        },
        {
            "model": "gpt-4o",
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What's in this image?"},
                        {"type": "image", "source": {"type": "url", "url": IMAGE_URL}},
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/jpeg", "data": JPEG},
                        },
                        {
                            "type": "document",
                            "source": {
                                "type": "base64",
                                "media_type": "application/pdf",
                                "data": "JVBERi0",
                            },
                            "title": "paper.pdf",
                        },
                    ],
                }
            ],
            "max_tokens": 300,
        },
        id="image-input",
    ),
    pytest.param(
        {
            "model": "gpt-4o",
            "messages": [
                {"role": "user", "content": "What's the weather like in Boston today?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_abc123",
                            "type": "function",
                            "function": {
                                "name": "get_weather",
                                "arguments": '{\n"location": "Boston, MA"\n}',
                            },
                        },
                        {
                            "id": "call_def456",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": "{not json"},
                        },
                    ],
                },
                {"role": "tool", "tool_call_id": "call_abc123", "content": "22 degrees"},
                {
                    "role": "tool",
                    "tool_call_id": "call_def456",
                    "content": [{"type": "text", "text": "bad arguments"}],
                },
                {"role": "user", "content": "And tomorrow?"},
            ],
            "tools": [WEATHER_FUNCTION, {"type": "custom", "custom": {"name": "grammar"}}],
            "tool_choice": "auto",
            "parallel_tool_calls": False,
        },
        {
            "model": "gpt-4o",
            "messages": [
                {"role": "user", "content": "What's the weather like in Boston today?"},
                {
                    "role": "assistant",
                    "content": [
                        {
                            "type": "tool_use",
                            "id": "call_abc123",
                            "name": "get_weather",
                            "input": {"location": "Boston, MA"},
                        },
                        {
                            "type": "tool_use",
                            "id": "call_def456",
                            "name": "get_weather",
                            "input": {},
                        },
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "call_abc123",
                            "content": "22 degrees",
                        },
                        {
                            "type": "tool_result",
                            "tool_use_id": "call_def456",
                            "content": "bad arguments",
                        },
                        {"type": "text", "text": "And tomorrow?"},
                    ],
                },
            ],
            "max_tokens": 4096,
            "tools": [WEATHER_TOOL],
            "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
        },
        id="functions-round-trip",
    ),
    pytest.param(
        {
            "model": "gpt-4o",
            "messages": [
                {"role": "user", "content": ""},
                {"role": "user", "content": "one"},
                {"role": "user", "content": [{"type": "text", "text": "two"}]},
                {"role": "assistant", "content": "", "reasoning": "hidden", "refusal": None},
                {"role": "function", "name": "f", "content": "legacy"},
            ],
            "stop": "END",
            "temperature": 1.7,
            "top_p": 0.5,
            "top_k": 20,
            "stream": True,
            "stream_options": {"include_usage": True},
            "user": "user-1234",
            "n": 1,
            "response_format": {"type": "json_object"},
            "logprobs": True,
            "top_logprobs": 2,
            "seed": 7,
            "frequency_penalty": 0.5,
            "presence_penalty": 0.5,
            "logit_bias": {"50256": -100},
            "reasoning_effort": "high",
            "reasoning": {"effort": "high"},
        },
        {
            "model": "gpt-4o",
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}],
                }
            ],
            "max_tokens": 4096,
            "stop_sequences": ["END"],
            "temperature": 1.0,
            "top_p": 0.5,
            "top_k": 20,
            "metadata": {"user_id": "user-1234"},
            "stream": True,
        },
        id="merging-sampling-and-dropped-fields",
    ),
]


@pytest.mark.parametrize(("body", "expected"), CHAT_TO_MESSAGES)
def test_chat_to_messages(body: dict[str, Any], expected: dict[str, Any]) -> None:
    assert chat_to_messages(body, default_max_tokens=4096) == expected


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"type": "auto"}),
        ("required", {"type": "any"}),
        ("none", {"type": "none"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            {"type": "tool", "name": "get_weather"},
        ),
    ],
)
def test_tool_choice_to_messages(choice: object, expected: dict[str, Any]) -> None:
    body = {"model": "m", "messages": [], "tools": [WEATHER_FUNCTION], "tool_choice": choice}
    assert chat_to_messages(body, default_max_tokens=1)["tool_choice"] == expected


def test_stop_list_becomes_stop_sequences() -> None:
    body = {"model": "m", "messages": [], "stop": ["a", "b"]}
    assert chat_to_messages(body, default_max_tokens=1)["stop_sequences"] == ["a", "b"]


# --- round trips -----------------------------------------------------------------


def test_messages_round_trip_keeps_the_conversation() -> None:
    """Anthropic → chat → Anthropic keeps system, turns, images and tool use."""
    original = request(
        system="Be brief.",
        tools=[WEATHER_TOOL],
        tool_choice={"type": "auto"},
        stop_sequences=["END"],
        temperature=0.2,
        stream=True,
        metadata={"user_id": "u1"},
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"},
                    },
                    {"type": "text", "text": "Weather where this photo was taken?"},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Let me check."},
                    {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "get_weather",
                        "input": {"location": "Oslo"},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "-3 degrees"},
                    {"type": "text", "text": "Thanks!"},
                ],
            },
        ],
    )
    assert chat_to_messages(messages_to_chat(original), default_max_tokens=1) == original


def test_chat_round_trip_keeps_the_conversation() -> None:
    """chat → Anthropic → chat keeps system, turns, images and tool calls."""
    original = {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What's in this image?"},
                    {"type": "image_url", "image_url": {"url": IMAGE_URL}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"location":"Oslo"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "-3 degrees"},
            {"role": "assistant", "content": "It is cold."},
        ],
        "max_tokens": 200,
        "stop": ["END"],
        "temperature": 0.2,
        "tools": [WEATHER_FUNCTION],
        "tool_choice": "required",
        "user": "u1",
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert messages_to_chat(chat_to_messages(original, default_max_tokens=1)) == original


# --- structurally invalid requests -------------------------------------------------

INVALID_MESSAGES = [
    ([], None),
    ({"messages": "hello"}, "messages"),
    ({}, "messages"),
    ({"messages": ["hi"]}, "messages[0]"),
    ({"messages": [{"content": "hi"}]}, "messages[0].role"),
    ({"messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role"),
    ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    ({"messages": [{"role": "user"}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": [{"text": "x"}]}]}, "messages[0].content[0].type"),
    ({"messages": [{"role": "user", "content": ["x"]}]}, "messages[0].content[0]"),
    (
        {"messages": [{"role": "user", "content": [{"type": "text"}]}]},
        "messages[0].content[0].text",
    ),
    (
        {"messages": [{"role": "user", "content": [{"type": "image", "source": "x"}]}]},
        "messages[0].content[0].source",
    ),
    (
        {"messages": [{"role": "user", "content": [{"type": "tool_result", "content": "x"}]}]},
        "messages[0].content[0].tool_use_id",
    ),
    (
        {
            "messages": [
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "input": {}}]}
            ]
        },
        "messages[0].content[0].name",
    ),
    ({"messages": [], "system": 3}, "system"),
    ({"messages": [], "system": [{"type": "text"}]}, "system[0].text"),
    ({"messages": [], "max_tokens": "5"}, "max_tokens"),
    ({"messages": [], "max_tokens": 0}, "max_tokens"),
    ({"messages": [], "temperature": "hot"}, "temperature"),
    ({"messages": [], "stop_sequences": [1]}, "stop_sequences[0]"),
    ({"messages": [], "stream": "yes"}, "stream"),
    ({"messages": [], "tools": {}}, "tools"),
    ({"messages": [], "tools": [{"description": "x"}]}, "tools[0].name"),
    ({"messages": [], "tools": [{"name": "x", "input_schema": []}]}, "tools[0].input_schema"),
    ({"messages": [], "tools": [WEATHER_TOOL], "tool_choice": "auto"}, "tool_choice"),
    (
        {"messages": [], "tools": [WEATHER_TOOL], "tool_choice": {"type": "tool"}},
        "tool_choice.name",
    ),
]


@pytest.mark.parametrize(("body", "field"), INVALID_MESSAGES)
def test_invalid_messages_request_names_the_field(body: Any, field: str | None) -> None:
    with pytest.raises(TranslationError) as caught:
        messages_to_chat(body)
    assert caught.value.field == field
    assert caught.value.message


INVALID_CHAT = [
    ("hi", None),
    ({"messages": {}}, "messages"),
    ({"messages": [{"content": "hi"}]}, "messages[0].role"),
    ({"messages": [{"role": "user", "content": 1}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": None}]}, "messages[0].content"),
    (
        {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
        "messages[0].content[0].image_url",
    ),
    ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
    (
        {"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "function": {}}]}]},
        "messages[0].tool_calls[0].function.name",
    ),
    (
        {"messages": [{"role": "assistant", "tool_calls": [{"function": {"name": "f"}}]}]},
        "messages[0].tool_calls[0].id",
    ),
    ({"messages": [], "n": 2}, "n"),
    ({"messages": [], "n": "1"}, "n"),
    ({"messages": [], "max_tokens": 2.5}, "max_tokens"),
    ({"messages": [], "max_completion_tokens": -1}, "max_completion_tokens"),
    ({"messages": [], "stop": 5}, "stop"),
    ({"messages": [], "tools": [{"type": "function"}]}, "tools[0].function"),
    (
        {"messages": [], "tools": [WEATHER_FUNCTION], "tool_choice": {"type": "function"}},
        "tool_choice.function.name",
    ),
]


@pytest.mark.parametrize(("body", "field"), INVALID_CHAT)
def test_invalid_chat_request_names_the_field(body: Any, field: str | None) -> None:
    with pytest.raises(TranslationError) as caught:
        chat_to_messages(body, default_max_tokens=1)
    assert caught.value.field == field


def test_translation_error_is_a_value_error() -> None:
    error = TranslationError("messages must be an array", field="messages")
    assert isinstance(error, ValueError)
    assert str(error) == error.message == "messages must be an array"


# --- error types ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (402, "billing_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (503, "overloaded_error"),
        (529, "overloaded_error"),
        (504, "api_error"),
        (422, "invalid_request_error"),
    ],
)
def test_error_type_for_status(status: int, expected: str) -> None:
    assert error_type_for_status(status) == expected


# --- never raises anything but TranslationError ------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
EXAMPLES = [case.values[0] for case in MESSAGES_TO_CHAT + CHAT_TO_MESSAGES]
EXAMPLES += [expected.values[1] for expected in MESSAGES_TO_CHAT + CHAT_TO_MESSAGES]


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside ``value`` (the root excluded)."""
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return []
    out = []
    for key, item in items:
        out += [(*prefix, key), *paths(item, (*prefix, key))]
    return out


@st.composite
def mutated_examples(draw: st.DrawFn) -> Any:
    """A documented example with one to three values replaced by arbitrary JSON or removed."""
    body = copy.deepcopy(draw(st.sampled_from(EXAMPLES)))
    for _ in range(draw(st.integers(1, 3))):
        candidates = paths(body)
        if not candidates:
            break
        *parent_path, key = draw(st.sampled_from(candidates))
        parent: Any = body
        for step in parent_path:
            parent = parent[step]
        if isinstance(parent, dict) and draw(st.booleans()):
            del parent[key]
        else:
            parent[key] = draw(JSON)
    return body


@settings(max_examples=500)
@given(st.one_of(JSON, mutated_examples()))
def test_requests_raise_only_translation_errors(body: Any) -> None:
    """Any JSON body either translates or raises TranslationError; nothing else escapes."""
    for translate in (messages_to_chat, lambda b: chat_to_messages(b, default_max_tokens=8)):
        with contextlib.suppress(TranslationError):
            translate(body)
