"""Responses requests → chat completions (modelgates.gateway.translate.responses).

Cases follow the examples of OpenAI's Responses API reference and guides (text
input, message items, instructions, images, function calling, structured
outputs), plus a request shaped exactly as the Codex CLI sends it.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelgates.gateway.translate import TranslationError
from modelgates.gateway.translate.responses import responses_to_chat

WEATHER_PARAMETERS = {
    "type": "object",
    "properties": {
        "location": {"type": "string", "description": "City and country e.g. Bogotá, Colombia"}
    },
    "required": ["location"],
    "additionalProperties": False,
}
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Get current temperature for a given location.",
    "parameters": WEATHER_PARAMETERS,
    "strict": True,
}
CHAT_WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get current temperature for a given location.",
        "parameters": WEATHER_PARAMETERS,
        "strict": True,
    },
}
IMAGE_URL = "https://upload.wikimedia.org/wikipedia/commons/thumb/1/15/Cat_August_2010-4.jpg/2560px-Cat_August_2010-4.jpg"
EVENT_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "date": {"type": "string"},
        "participants": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["name", "date", "participants"],
    "additionalProperties": False,
}

CODEX_REQUEST: dict[str, Any] = {
    "model": "gpt-5-codex",
    "input": [
        {
            "type": "message",
            "role": "developer",
            "content": [
                {"type": "input_text", "text": "<permissions instructions>sandboxed</...>"},
                {"type": "input_text", "text": "# AGENTS.md instructions for /repo"},
            ],
        },
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "<environment_context>cwd /repo</...>"},
                {"type": "input_text", "text": "fix the failing test"},
            ],
        },
    ],
    "tools": [
        {
            "type": "function",
            "name": "shell",
            "description": "Runs a shell command and returns its output.",
            "strict": False,
            "parameters": {
                "type": "object",
                "properties": {
                    "command": {"type": "array", "items": {"type": "string"}},
                    "workdir": {"type": "string"},
                },
                "required": ["command"],
                "additionalProperties": False,
            },
        },
        {
            "type": "namespace",
            "name": "mcp__docs",
            "description": "Tools of the docs MCP server.",
            "tools": [
                {
                    "type": "function",
                    "name": "search",
                    "description": "Search the docs.",
                    "parameters": {"type": "object", "properties": {}},
                }
            ],
        },
        {"type": "web_search", "external_web_access": False},
    ],
    "tool_choice": "auto",
    "parallel_tool_calls": True,
    "reasoning": {"effort": "medium", "summary": "auto"},
    "store": False,
    "stream": True,
    "include": ["reasoning.encrypted_content"],
    "prompt_cache_key": "0199a7b2-6c1e-7a10-9e55-3f1f2a9d7c44",
    "client_metadata": {"originator": "codex_cli_rs"},
}
CODEX_CHAT = {
    "model": "gpt-5-codex",
    "messages": [
        {
            "role": "system",
            "content": "<permissions instructions>sandboxed</...>\n"
            "# AGENTS.md instructions for /repo",
        },
        {"role": "user", "content": "<environment_context>cwd /repo</...>\nfix the failing test"},
    ],
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "shell",
                "description": "Runs a shell command and returns its output.",
                "parameters": CODEX_REQUEST["tools"][0]["parameters"],
                "strict": False,
            },
        }
    ],
    "tool_choice": "auto",
    "parallel_tool_calls": True,
    "reasoning_effort": "medium",
    "stream": True,
    "stream_options": {"include_usage": True},
}

CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "text input",
        {"model": "gpt-4.1", "input": "Tell me a three sentence bedtime story about a unicorn."},
        {
            "model": "gpt-4.1",
            "messages": [
                {
                    "role": "user",
                    "content": "Tell me a three sentence bedtime story about a unicorn.",
                }
            ],
        },
    ),
    (
        "instructions",
        {
            "model": "gpt-4.1",
            "instructions": "Talk like a pirate.",
            "input": "Are semicolons optional in JavaScript?",
        },
        {
            "model": "gpt-4.1",
            "messages": [
                {"role": "system", "content": "Talk like a pirate."},
                {"role": "user", "content": "Are semicolons optional in JavaScript?"},
            ],
        },
    ),
    (
        "message items, developer as system",
        {
            "model": "gpt-4.1",
            "input": [
                {"role": "developer", "content": "Talk like a pirate."},
                {"role": "user", "content": "Are semicolons optional in JavaScript?"},
            ],
        },
        {
            "model": "gpt-4.1",
            "messages": [
                {"role": "system", "content": "Talk like a pirate."},
                {"role": "user", "content": "Are semicolons optional in JavaScript?"},
            ],
        },
    ),
    (
        "typed message items with parts, assistant output_text and refusal",
        {
            "model": "m",
            "input": [
                {"type": "message", "role": "system", "content": "Be brief."},
                {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "knock knock."}],
                },
                {
                    "type": "message",
                    "role": "assistant",
                    "id": "msg_1",
                    "status": "completed",
                    "content": [
                        {"type": "output_text", "text": "Who's there?", "annotations": []},
                        {"type": "refusal", "refusal": "No jokes."},
                    ],
                },
            ],
        },
        {
            "model": "m",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "knock knock."},
                {"role": "assistant", "content": "Who's there?\nNo jokes."},
            ],
        },
    ),
    (
        "image input by URL",
        {
            "model": "gpt-4.1-mini",
            "input": [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "what's in this image?"},
                        {"type": "input_image", "image_url": IMAGE_URL, "detail": "high"},
                    ],
                }
            ],
        },
        {
            "model": "gpt-4.1-mini",
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what's in this image?"},
                        {"type": "image_url", "image_url": {"url": IMAGE_URL, "detail": "high"}},
                    ],
                }
            ],
        },
    ),
    (
        "image by file id and images outside user messages are dropped; inline files kept",
        {
            "model": "m",
            "input": [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "look"},
                        {"type": "input_image", "file_id": "file-abc", "detail": "auto"},
                        {"type": "input_file", "file_id": "file-def"},
                        {
                            "type": "input_file",
                            "filename": "a.pdf",
                            "file_data": "data:application/pdf;base64,JVBER",
                        },
                    ],
                },
                {
                    "role": "system",
                    "content": [
                        {"type": "input_text", "text": "rules"},
                        {"type": "input_image", "image_url": IMAGE_URL, "detail": "low"},
                    ],
                },
            ],
        },
        {
            "model": "m",
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "look"},
                        {
                            "type": "file",
                            "file": {
                                "file_data": "data:application/pdf;base64,JVBER",
                                "filename": "a.pdf",
                            },
                        },
                    ],
                },
                {"role": "system", "content": "rules"},
            ],
        },
    ),
    (
        "function tool round trip",
        {
            "model": "gpt-4.1",
            "tools": [WEATHER_TOOL],
            "input": [
                {"role": "user", "content": "What is the weather like in Paris today?"},
                {
                    "type": "function_call",
                    "id": "fc_12345xyz",
                    "call_id": "call_12345xyz",
                    "name": "get_weather",
                    "arguments": '{"location":"Paris, France"}',
                },
                {"type": "function_call_output", "call_id": "call_12345xyz", "output": "14°C"},
            ],
        },
        {
            "model": "gpt-4.1",
            "messages": [
                {"role": "user", "content": "What is the weather like in Paris today?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_12345xyz",
                            "type": "function",
                            "function": {
                                "name": "get_weather",
                                "arguments": '{"location":"Paris, France"}',
                            },
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "call_12345xyz", "content": "14°C"},
            ],
            "tools": [CHAT_WEATHER_TOOL],
        },
    ),
    (
        "assistant text, reasoning and parallel calls merge into one assistant message",
        {
            "model": "m",
            "tools": [WEATHER_TOOL],
            "tool_choice": "required",
            "parallel_tool_calls": True,
            "input": [
                {"role": "user", "content": "Weather in Paris and Bogotá?"},
                {
                    "type": "reasoning",
                    "id": "rs_1",
                    "summary": [{"type": "summary_text", "text": "two cities"}],
                    "encrypted_content": "gAAAA",
                },
                {
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": "Checking both."}],
                },
                {"type": "reasoning", "id": "rs_2", "summary": []},
                {
                    "type": "function_call",
                    "call_id": "call_a",
                    "name": "get_weather",
                    "arguments": '{"location":"Paris, France"}',
                },
                {
                    "type": "function_call",
                    "call_id": "call_b",
                    "name": "get_weather",
                    "arguments": '{"location":"Bogotá, Colombia"}',
                },
                {"type": "function_call_output", "call_id": "call_a", "output": "14°C"},
                {
                    "type": "function_call_output",
                    "call_id": "call_b",
                    "output": [
                        {"type": "input_text", "text": "19°C"},
                        {"type": "input_image", "image_url": IMAGE_URL, "detail": "auto"},
                        {"type": "input_text", "text": "cloudy"},
                    ],
                },
                {"type": "web_search_call", "id": "ws_1", "status": "completed"},
            ],
        },
        {
            "model": "m",
            "messages": [
                {"role": "user", "content": "Weather in Paris and Bogotá?"},
                {
                    "role": "assistant",
                    "content": "Checking both.",
                    "tool_calls": [
                        {
                            "id": "call_a",
                            "type": "function",
                            "function": {
                                "name": "get_weather",
                                "arguments": '{"location":"Paris, France"}',
                            },
                        },
                        {
                            "id": "call_b",
                            "type": "function",
                            "function": {
                                "name": "get_weather",
                                "arguments": '{"location":"Bogotá, Colombia"}',
                            },
                        },
                    ],
                },
                {"role": "tool", "tool_call_id": "call_a", "content": "14°C"},
                {"role": "tool", "tool_call_id": "call_b", "content": "19°C\ncloudy"},
            ],
            "tools": [CHAT_WEATHER_TOOL],
            "tool_choice": "required",
            "parallel_tool_calls": True,
        },
    ),
    (
        "json_schema text format",
        {
            "model": "gpt-4o-2024-08-06",
            "input": [
                {"role": "system", "content": "Extract the event information."},
                {
                    "role": "user",
                    "content": "Alice and Bob are going to a science fair on Friday.",
                },
            ],
            "text": {
                "format": {
                    "type": "json_schema",
                    "name": "calendar_event",
                    "schema": EVENT_SCHEMA,
                    "strict": True,
                }
            },
        },
        {
            "model": "gpt-4o-2024-08-06",
            "messages": [
                {"role": "system", "content": "Extract the event information."},
                {"role": "user", "content": "Alice and Bob are going to a science fair on Friday."},
            ],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "calendar_event", "schema": EVENT_SCHEMA, "strict": True},
            },
        },
    ),
    (
        "json_object text format; plain text format adds nothing",
        {"model": "m", "input": "JSON please", "text": {"format": {"type": "json_object"}}},
        {
            "model": "m",
            "messages": [{"role": "user", "content": "JSON please"}],
            "response_format": {"type": "json_object"},
        },
    ),
    (
        "sampling settings, limits and streaming",
        {
            "model": "m",
            "input": "hi",
            "max_output_tokens": 64,
            "temperature": 0.2,
            "top_p": 0.9,
            "user": "u-1",
            "reasoning": {"effort": "high"},
            "stream": True,
            "text": {"format": {"type": "text"}, "verbosity": "low"},
        },
        {
            "model": "m",
            "messages": [{"role": "user", "content": "hi"}],
            "temperature": 0.2,
            "top_p": 0.9,
            "user": "u-1",
            "max_tokens": 64,
            "reasoning_effort": "high",
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    ),
    (
        "fields without a chat counterpart are dropped",
        {
            "model": "m",
            "input": "hi",
            "stream": False,
            "store": True,
            "include": ["reasoning.encrypted_content"],
            "metadata": {"k": "v"},
            "previous_response_id": "resp_1",
            "prompt_cache_key": "k",
            "client_metadata": {"a": "b"},
            "safety_identifier": "s",
            "truncation": "auto",
            "service_tier": "flex",
            "background": False,
            "max_tool_calls": 3,
            "reasoning": {"summary": "auto"},
            "unknown_field": 1,
        },
        {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
    ),
    (
        "only non-function tools: no tools, no tool_choice, no parallel_tool_calls",
        {
            "model": "m",
            "input": "hi",
            "tools": [{"type": "web_search"}, {"type": "local_shell"}, {"type": "custom"}],
            "tool_choice": "auto",
            "parallel_tool_calls": False,
        },
        {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
    ),
    ("the Codex CLI's request", CODEX_REQUEST, CODEX_CHAT),
]


@pytest.mark.parametrize(("body", "chat"), [case[1:] for case in CASES], ids=[c[0] for c in CASES])
def test_request_translates(body: dict[str, Any], chat: dict[str, Any]) -> None:
    assert responses_to_chat(body) == chat


@pytest.mark.parametrize(
    ("choice", "translated"),
    [
        ("auto", "auto"),
        ("none", "none"),
        ("required", "required"),
        (
            {"type": "function", "name": "get_weather"},
            {"type": "function", "function": {"name": "get_weather"}},
        ),
        ({"type": "allowed_tools", "mode": "auto", "tools": [WEATHER_TOOL]}, None),
        ({"type": "web_search_preview"}, None),
        ({"type": "function"}, None),
        ("sometimes", None),
    ],
)
def test_tool_choice(choice: object, translated: object) -> None:
    chat = responses_to_chat(
        {"model": "m", "input": "hi", "tools": [WEATHER_TOOL], "tool_choice": choice}
    )
    assert chat.get("tool_choice") == translated


def test_history_comes_after_instructions_and_before_input() -> None:
    history: list[dict[str, Any]] = [
        {"type": "message", "role": "user", "content": "tell me a joke"},
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {
            "type": "message",
            "id": "msg_1",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": "Why did the chicken…", "annotations": []}],
        },
    ]
    body = {
        "model": "m",
        "instructions": "Be funny.",
        "previous_response_id": "resp_1",
        "input": [{"role": "user", "content": "explain why this is funny."}],
    }
    assert responses_to_chat(body, history=history)["messages"] == [
        {"role": "system", "content": "Be funny."},
        {"role": "user", "content": "tell me a joke"},
        {"role": "assistant", "content": "Why did the chicken…"},
        {"role": "user", "content": "explain why this is funny."},
    ]


def test_request_is_not_modified() -> None:
    body = {
        "model": "m",
        "input": [
            {"role": "assistant", "content": "a"},
            {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
        ],
    }
    snapshot = repr(body)
    responses_to_chat(body)
    assert repr(body) == snapshot


ERRORS: list[tuple[object, str | None]] = [
    ("not an object", None),
    ({"input": 5}, "input"),
    ({"input": {"role": "user"}}, "input"),
    ({"input": ["hi"]}, "input[0]"),
    ({"input": [{"content": "hi"}]}, "input[0].role"),
    ({"input": [{"role": "robot", "content": "hi"}]}, "input[0].role"),
    ({"input": [{"role": ["user"], "content": "hi"}]}, "input[0].role"),
    ({"input": [{"role": "user", "content": 5}]}, "input[0].content"),
    ({"input": [{"role": "user"}]}, "input[0].content"),
    ({"input": [{"role": "user", "content": ["hi"]}]}, "input[0].content[0]"),
    (
        {"input": [{"role": "user", "content": [{"type": "input_text"}]}]},
        "input[0].content[0].text",
    ),
    (
        {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": 1}]}]},
        "input[0].content[0].image_url",
    ),
    ({"input": ["x", {"type": "function_call", "name": "f"}]}, "input[0]"),
    ({"input": [{"type": "function_call", "name": "f", "arguments": "{}"}]}, "input[0].call_id"),
    ({"input": [{"type": "function_call", "call_id": "c", "arguments": "{}"}]}, "input[0].name"),
    (
        {"input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": {}}]},
        "input[0].arguments",
    ),
    ({"input": [{"type": "function_call_output", "output": "x"}]}, "input[0].call_id"),
    (
        {"input": [{"type": "function_call_output", "call_id": "c", "output": {"a": 1}}]},
        "input[0].output",
    ),
    (
        {"input": [{"type": "function_call_output", "call_id": "c", "output": [3]}]},
        "input[0].output[0]",
    ),
    ({"instructions": ["be nice"]}, "instructions"),
    ({"tools": {"type": "function"}}, "tools"),
    ({"tools": ["get_weather"]}, "tools[0]"),
    ({"tools": [{"type": "function"}]}, "tools[0].name"),
    ({"tools": [{"type": "function", "name": "f", "parameters": "{}"}]}, "tools[0].parameters"),
    ({"tools": [{"type": "function", "name": "f", "description": 3}]}, "tools[0].description"),
    ({"text": "json"}, "text"),
    ({"text": {"format": "json_object"}}, "text.format"),
    ({"reasoning": "high"}, "reasoning"),
    ({"max_output_tokens": "64"}, "max_output_tokens"),
    ({"max_output_tokens": True}, "max_output_tokens"),
    ({"stream": "yes"}, "stream"),
]


@pytest.mark.parametrize(("body", "field"), ERRORS)
def test_untranslatable_structure_names_its_field(body: Any, field: str | None) -> None:
    with pytest.raises(TranslationError) as raised:
        responses_to_chat(body)
    assert raised.value.field == field
    assert raised.value.message


def test_bad_history_names_history() -> None:
    with pytest.raises(TranslationError) as raised:
        responses_to_chat({"input": "hi"}, history=[{"role": "user", "content": 1}])
    assert raised.value.field == "history[0].content"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
"""Any JSON value."""

words = st.sampled_from(
    [
        "message",
        "function_call",
        "function_call_output",
        "reasoning",
        "user",
        "assistant",
        "developer",
        "system",
        "input_text",
        "output_text",
        "input_image",
        "input_file",
        "refusal",
        "function",
        "auto",
        "required",
        "json_schema",
        "json_object",
    ]
)


def near_miss(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """Objects with some of ``fields`` (each plausible or any JSON) and maybe a stray key."""
    return st.fixed_dictionaries(
        {}, optional={name: strategy | json_values for name, strategy in fields.items()}
    )


parts = near_miss(
    {
        "type": words,
        "text": st.text(max_size=8),
        "image_url": st.text(max_size=8),
        "file_data": st.text(max_size=8),
        "refusal": st.text(max_size=8),
        "detail": st.sampled_from(["low", "auto", "original"]),
    }
)
items = near_miss(
    {
        "type": words,
        "role": words,
        "content": st.text(max_size=8) | st.lists(parts | json_values, max_size=3),
        "call_id": st.text(max_size=4),
        "name": st.text(max_size=4),
        "arguments": st.text(max_size=4),
        "output": st.text(max_size=4) | st.lists(parts, max_size=2),
    }
)
tools = near_miss(
    {
        "type": words,
        "name": st.text(max_size=4),
        "parameters": st.dictionaries(st.text(max_size=3), json_values, max_size=2),
        "strict": st.booleans(),
        "description": st.text(max_size=4),
    }
)
bodies = near_miss(
    {
        "model": st.text(max_size=4),
        "input": st.text(max_size=8) | st.lists(items | json_values, max_size=5),
        "instructions": st.text(max_size=8),
        "tools": st.lists(tools | json_values, max_size=3),
        "tool_choice": words | near_miss({"type": words, "name": st.text(max_size=4)}),
        "text": near_miss(
            {
                "format": near_miss(
                    {"type": words, "name": st.text(max_size=4), "schema": json_values}
                )
            }
        ),
        "reasoning": near_miss({"effort": words}),
        "max_output_tokens": st.integers(0, 100),
        "stream": st.booleans(),
    }
)


@given(
    st.one_of(bodies, json_values),
    st.none() | st.lists(items | json_values, max_size=3) | json_values,
)
def test_never_raises_anything_but_translation_error(body: Any, history: Any) -> None:
    try:
        chat = responses_to_chat(body, history=history)
    except TranslationError:
        return
    assert isinstance(chat["messages"], list)
    for message in chat["messages"]:
        assert message["role"] in ("system", "user", "assistant", "tool")


def test_history_must_be_a_list() -> None:
    with pytest.raises(TranslationError) as raised:
        responses_to_chat({"input": "hi"}, history="earlier")  # type: ignore[arg-type]
    assert raised.value.field == "history"
    assert raised.value.message == "`history` must be an array of items"
