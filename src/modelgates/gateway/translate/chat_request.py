"""An OpenAI chat completions request rewritten as an Anthropic Messages request.

For a ``/chat/completions`` client whose model is served by an Anthropic
upstream. What maps:

* ``system`` and ``developer`` messages → ``system`` (a string, or text blocks
  when there are several; wherever they stood, Anthropic takes them first).
* ``tool`` messages → ``tool_result`` blocks of a user message; consecutive
  messages that land on the same Anthropic role (tool answers and the user text
  after them, say) merge into one message, as Anthropic wants.
* An assistant's ``tool_calls`` → ``tool_use`` blocks (``input`` parsed from
  ``arguments``; text that is not a JSON object gives ``{}``).
* Text parts → text blocks; ``image_url`` parts → image blocks (a ``data:``
  URL as a base64 source, any other URL as a url source); a ``file`` part with
  a base64 ``data:`` URL → a document block.
* ``max_completion_tokens`` or ``max_tokens`` → ``max_tokens`` (the caller's
  ``default_max_tokens`` when neither is given: Anthropic requires one);
  ``stop`` (a string or a list) → ``stop_sequences``; ``temperature`` (capped at
  1, Anthropic's maximum), ``top_p``, ``top_k``; ``tools`` (function tools) and
  ``tool_choice`` (``"auto"``/``"required"``/``"none"``/a named function →
  ``auto``/``any``/``none``/``tool``); ``parallel_tool_calls: false`` →
  ``disable_parallel_tool_use``; ``user`` → ``metadata.user_id``; ``stream``.
  ``model`` is copied unchanged.

``n`` above 1 is a :class:`TranslationError`: Anthropic gives one answer.

Dropped: empty text (Anthropic rejects empty text blocks) and messages left
empty; an assistant's ``reasoning`` and ``refusal`` (Anthropic needs signed
thinking blocks, which chat does not carry); legacy ``function`` messages;
``input_audio`` parts, ``file`` parts by id or URL, image ``detail``;
non-function tools; ``reasoning`` and ``reasoning_effort`` (Anthropic's
``thinking`` needs a token budget below ``max_tokens`` and fixed sampling, a
choice better left to the client); ``response_format``, ``logprobs``,
``top_logprobs``, ``seed``, ``frequency_penalty``, ``presence_penalty``,
``logit_bias``, ``stream_options``, ``modalities``, ``prediction``, ``store``,
``metadata``, ``service_tier`` and any field not named above.
"""

from __future__ import annotations

from typing import Any

from modelgates.gateway.translate import TranslationError
from modelgates.gateway.translate._json import (
    EMPTY_SCHEMA,
    as_dict,
    optional_bool,
    optional_integer,
    optional_number,
    parse_object,
    require_dict,
    require_list,
    require_one_of,
    require_string,
    string,
    string_list,
    typed_items,
)

__all__ = ["chat_to_messages"]

ROLES = ("system", "developer", "user", "assistant", "tool", "function")
ANTHROPIC_TEMPERATURE_MAX = 1.0

Turn = tuple[str, list[dict[str, Any]]]
"""A message on its way to Anthropic: its role and its content blocks."""


def chat_to_messages(body: dict[str, Any], *, default_max_tokens: int) -> dict[str, Any]:
    """The Messages request that asks what the chat completions request ``body`` asks."""
    body = require_dict(body, "")
    n = optional_integer(body, "n", minimum=1)
    if n is not None and n > 1:
        raise TranslationError("n above 1 is not supported by this model's provider", field="n")
    system, turns = _split(require_list(body.get("messages"), "messages"))
    out: dict[str, Any] = {"model": body.get("model")}
    if system:
        out["system"] = system[0]["text"] if len(system) == 1 else system
    out["messages"] = [_render(role, blocks) for role, blocks in _merged(turns)]
    out.update(_sampling(body, default_max_tokens))
    out.update(_tools(body))
    user = string(body.get("user"))
    if user is not None:
        out["metadata"] = {"user_id": user}
    if optional_bool(body, "stream"):
        out["stream"] = True
    return out


def _sampling(body: dict[str, Any], default_max_tokens: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    max_tokens = optional_integer(body, "max_completion_tokens", minimum=1)
    if max_tokens is None:
        max_tokens = optional_integer(body, "max_tokens", minimum=1)
    out["max_tokens"] = default_max_tokens if max_tokens is None else max_tokens
    if body.get("stop") is not None:
        stop = string_list(body["stop"], "stop")
        if stop:
            out["stop_sequences"] = stop
    temperature = optional_number(body, "temperature")
    if temperature is not None:
        out["temperature"] = min(temperature, ANTHROPIC_TEMPERATURE_MAX)
    top_p = optional_number(body, "top_p")
    if top_p is not None:
        out["top_p"] = top_p
    top_k = optional_integer(body, "top_k")
    if top_k is not None:
        out["top_k"] = top_k
    return out


# --- messages -----------------------------------------------------------------


def _split(messages: list[Any]) -> tuple[list[dict[str, Any]], list[Turn]]:
    """The system text blocks, and the conversation as Anthropic turns."""
    system: list[dict[str, Any]] = []
    turns: list[Turn] = []
    for index, message in enumerate(messages):
        path = f"messages[{index}]"
        message = require_dict(message, path)
        role = require_one_of(message.get("role"), ROLES, f"{path}.role")
        if role in ("system", "developer"):
            system += _text_blocks(_content(message, path), f"{path}.content")
        elif role == "user":
            turns.append(("user", _user_blocks(_content(message, path), f"{path}.content")))
        elif role == "assistant":
            turns.append(("assistant", _assistant_blocks(message, path)))
        elif role == "tool":
            turns.append(("user", [_tool_result(message, path)]))
    return system, turns


def _content(message: dict[str, Any], path: str, *, nullable: bool = False) -> str | list[Any]:
    content = message.get("content")
    if content is None and nullable:
        return []
    if not isinstance(content, str | list):
        raise TranslationError(
            f"{path}.content must be a string or an array of parts", field=f"{path}.content"
        )
    return content


def _text_blocks(content: str | list[Any], path: str) -> list[dict[str, Any]]:
    """The non-empty text of ``content`` as text blocks; other parts are dropped."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks = []
    for here, part in typed_items(content, path):
        if part["type"] == "text":
            text = require_string(part.get("text"), f"{here}.text")
            blocks += [{"type": "text", "text": text}] if text else []
    return blocks


def _user_blocks(content: str | list[Any], path: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return _text_blocks(content, path)
    blocks = []
    for here, part in typed_items(content, path):
        if part["type"] == "text":
            text = require_string(part.get("text"), f"{here}.text")
            blocks += [{"type": "text", "text": text}] if text else []
        elif part["type"] == "image_url":
            blocks.append(_image(part.get("image_url"), f"{here}.image_url"))
        elif part["type"] == "file":
            blocks += _document(as_dict(part.get("file")))
    return blocks


def _data_url(url: str) -> tuple[str, str] | None:
    """``(media_type, data)`` of a base64 ``data:`` URL."""
    head, comma, data = url.partition(",")
    if not comma or not head.startswith("data:") or not head.endswith(";base64"):
        return None
    return head[len("data:") : -len(";base64")], data


def _image(image_url: object, path: str) -> dict[str, Any]:
    if isinstance(image_url, dict):
        url = require_string(image_url.get("url"), f"{path}.url")
    else:
        url = require_string(image_url, path)
    inline = _data_url(url)
    if inline is None:
        return {"type": "image", "source": {"type": "url", "url": url}}
    media_type, data = inline
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}


def _document(file: dict[str, Any]) -> list[dict[str, Any]]:
    inline = _data_url(string(file.get("file_data")) or "")
    if inline is None:
        return []
    media_type, data = inline
    block: dict[str, Any] = {
        "type": "document",
        "source": {"type": "base64", "media_type": media_type, "data": data},
    }
    name = string(file.get("filename"))
    if name:
        block["title"] = name
    return [block]


def _assistant_blocks(message: dict[str, Any], path: str) -> list[dict[str, Any]]:
    blocks = _text_blocks(_content(message, path, nullable=True), f"{path}.content")
    calls = message.get("tool_calls")
    if calls is None:
        return blocks
    for index, call in enumerate(require_list(calls, f"{path}.tool_calls")):
        here = f"{path}.tool_calls[{index}]"
        call = require_dict(call, here)
        function = require_dict(call.get("function"), f"{here}.function")
        blocks.append(
            {
                "type": "tool_use",
                "id": require_string(call.get("id"), f"{here}.id"),
                "name": require_string(function.get("name"), f"{here}.function.name"),
                "input": parse_object(function.get("arguments")) or {},
            }
        )
    return blocks


def _tool_result(message: dict[str, Any], path: str) -> dict[str, Any]:
    call_id = require_string(message.get("tool_call_id"), f"{path}.tool_call_id")
    blocks = _text_blocks(_content(message, path), f"{path}.content")
    text = "\n".join(block["text"] for block in blocks)
    return {"type": "tool_result", "tool_use_id": call_id, "content": text}


def _merged(turns: list[Turn]) -> list[Turn]:
    """Consecutive turns of one role as one turn; empty turns dropped."""
    out: list[Turn] = []
    for role, blocks in turns:
        if not blocks:
            continue
        if out and out[-1][0] == role:
            out[-1][1].extend(blocks)
        else:
            out.append((role, list(blocks)))
    return out


def _render(role: str, blocks: list[dict[str, Any]]) -> dict[str, Any]:
    if len(blocks) == 1 and blocks[0]["type"] == "text":
        return {"role": role, "content": blocks[0]["text"]}
    return {"role": role, "content": blocks}


# --- tools --------------------------------------------------------------------


def _tools(body: dict[str, Any]) -> dict[str, Any]:
    tools = _function_tools(body.get("tools"))
    if not tools:
        return {}
    choice = _tool_choice(body.get("tool_choice"))
    if body.get("parallel_tool_calls") is False and choice.get("type") != "none":
        choice = {"type": "auto", **choice, "disable_parallel_tool_use": True}
    return {"tools": tools, "tool_choice": choice} if choice else {"tools": tools}


def _tool_choice(choice: object) -> dict[str, Any]:
    if choice is None:
        return {}
    if isinstance(choice, str):
        kinds = {"auto": "auto", "required": "any", "none": "none"}
        return {"type": kinds[choice]} if choice in kinds else {}
    choice = require_dict(choice, "tool_choice")
    function = as_dict(choice.get("function"))
    if choice.get("type") != "function":
        return {}
    name = require_string(function.get("name"), "tool_choice.function.name")
    return {"type": "tool", "name": name}


def _function_tools(tools: object) -> list[dict[str, Any]]:
    if tools is None:
        return []
    out = []
    for index, tool in enumerate(require_list(tools, "tools")):
        path = f"tools[{index}]"
        tool = require_dict(tool, path)
        if tool.get("type", "function") != "function":
            continue
        function = require_dict(tool.get("function"), f"{path}.function")
        converted: dict[str, Any] = {
            "name": require_string(function.get("name"), f"{path}.function.name")
        }
        description = string(function.get("description"))
        if description is not None:
            converted["description"] = description
        schema = function.get("parameters")
        converted["input_schema"] = (
            EMPTY_SCHEMA if schema is None else require_dict(schema, f"{path}.function.parameters")
        )
        out.append(converted)
    return out
