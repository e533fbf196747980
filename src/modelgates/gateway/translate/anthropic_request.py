"""An Anthropic Messages request rewritten as an OpenAI chat completions request.

For a ``/messages`` client whose model is served by a chat upstream. What maps:

* ``system`` (a string or text blocks) and every ``role: "system"`` entry of
  ``messages`` (Claude Code sends one) become system messages, in order.
* ``text`` blocks become text parts; ``image`` blocks ``image_url`` parts (a
  base64 source as a ``data:`` URL); a base64 ``document`` a ``file`` part and
  a plain-text ``document`` a text part.
* An assistant's ``tool_use`` blocks become its ``tool_calls`` (``arguments`` is
  the JSON text of ``input``).
* A user's ``tool_result`` blocks become ``tool`` messages, placed *before*
  the rest of that user message, because chat wants tool answers right after
  the assistant turn that called them. A result's text blocks are joined with
  newlines; ``is_error: true`` becomes an ``Error: `` prefix of that text; the
  result's images (chat tool messages carry text only) open the user message
  that follows the tool messages.
* ``max_tokens``, ``temperature``, ``top_p``, ``stop_sequences`` → ``stop``,
  ``metadata.user_id`` → ``user``, ``stream`` (plus ``stream_options:
  {include_usage: true}`` so the gateway can meter), ``tools`` (custom tools
  only) and ``tool_choice`` (``auto``/``any``/``tool``/``none`` → ``"auto"``/
  ``"required"``/a named function/``"none"``; ``disable_parallel_tool_use`` →
  ``parallel_tool_calls: false``). ``model`` is copied unchanged.

Dropped: ``cache_control`` everywhere; ``thinking`` and ``redacted_thinking``
blocks; blocks of unknown or server-side types (``server_tool_use``,
``web_search_tool_result``, ``search_result``, ``container_upload``…), images
and documents in assistant turns, image or document sources other than those
above (``file`` ids); server tools (a ``type`` other than ``custom``:
``web_search_*``, ``bash_*``, ``text_editor_*``…) and ``tool_choice`` when no
tool is left; assistant turns left with nothing to say; the top-level
``top_k``, ``thinking``, ``context_management``, ``output_config``,
``service_tier``, ``speed``, ``container``, ``mcp_servers``, ``inference_geo``,
the rest of ``metadata`` and any field not named above.
"""

from __future__ import annotations

from typing import Any

from modelgates.gateway.translate import TranslationError
from modelgates.gateway.translate._json import (
    EMPTY_SCHEMA,
    as_dict,
    json_text,
    optional_bool,
    optional_integer,
    optional_number,
    require_dict,
    require_list,
    require_one_of,
    require_string,
    string,
    string_list,
    typed_items,
)

__all__ = ["messages_to_chat"]

ROLES = ("user", "assistant", "system")


def messages_to_chat(body: dict[str, Any]) -> dict[str, Any]:
    """The chat completions request that asks what the Messages request ``body`` asks."""
    body = require_dict(body, "")
    chat: dict[str, Any] = {"model": body.get("model")}
    chat["messages"] = _system_messages(body.get("system")) + _conversation(body.get("messages"))
    chat.update(_sampling(body))
    chat.update(_tools(body))
    user = string(as_dict(body.get("metadata")).get("user_id"))
    if user is not None:
        chat["user"] = user
    if optional_bool(body, "stream"):
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return chat


def _sampling(body: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    max_tokens = optional_integer(body, "max_tokens", minimum=1)
    if max_tokens is not None:
        out["max_tokens"] = max_tokens
    for name in ("temperature", "top_p"):
        value = optional_number(body, name)
        if value is not None:
            out[name] = value
    if body.get("stop_sequences") is not None:
        stop = string_list(body["stop_sequences"], "stop_sequences")
        if stop:
            out["stop"] = stop
    return out


# --- system and messages ----------------------------------------------------


def _system_text(content: object, path: str) -> str:
    """A system prompt (string or text blocks) as one text; non-text blocks are dropped."""
    if isinstance(content, str):
        return content
    texts = []
    for index, block in enumerate(require_list(content, path)):
        block = require_dict(block, f"{path}[{index}]")
        if block.get("type") == "text":
            texts.append(require_string(block.get("text"), f"{path}[{index}].text"))
    return "\n\n".join(texts)


def _system_messages(system: object) -> list[dict[str, Any]]:
    if system is None:
        return []
    text = _system_text(system, "system")
    return [{"role": "system", "content": text}] if text else []


def _conversation(messages: object) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for index, message in enumerate(require_list(messages, "messages")):
        path = f"messages[{index}]"
        message = require_dict(message, path)
        role = require_one_of(message.get("role"), ROLES, f"{path}.role")
        content = message.get("content")
        if not isinstance(content, str | list):
            raise TranslationError(
                f"{path}.content must be a string or an array of blocks", field=f"{path}.content"
            )
        if role == "system":
            text = _system_text(content, f"{path}.content")
            out += [{"role": "system", "content": text}] if text else []
        elif role == "assistant":
            out += _assistant(content, f"{path}.content")
        else:
            out += _user(content, f"{path}.content")
    return out


def _user(content: str | list[Any], path: str) -> list[dict[str, Any]]:
    """Tool messages for the ``tool_result`` blocks, then one user message for the rest."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    tools: list[dict[str, Any]] = []
    result_parts: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for here, block in typed_items(content, path):
        if block["type"] == "tool_result":
            message, images = _tool_result(block, here)
            tools.append(message)
            result_parts += images
        else:
            parts += _part(block, here)
    parts = result_parts + parts
    if not parts:
        return tools
    if len(parts) == 1 and parts[0]["type"] == "text":
        return [*tools, {"role": "user", "content": parts[0]["text"]}]
    return [*tools, {"role": "user", "content": parts}]


def _tool_result(block: dict[str, Any], path: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The tool message for one ``tool_result``, and the images it carried."""
    call_id = require_string(block.get("tool_use_id"), f"{path}.tool_use_id")
    content = block.get("content")
    texts: list[str] = []
    images: list[dict[str, Any]] = []
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        for here, item in typed_items(content, f"{path}.content"):
            for part in _part(item, here):
                if part["type"] == "text":
                    texts.append(part["text"])
                else:
                    images.append(part)
    elif content is not None:
        raise TranslationError(
            f"{path}.content must be a string or an array of blocks", field=f"{path}.content"
        )
    text = "\n".join(texts)
    if block.get("is_error") is True:
        text = f"Error: {text}"
    return {"role": "tool", "tool_call_id": call_id, "content": text}, images


def _part(block: dict[str, Any], path: str) -> list[dict[str, Any]]:
    """The chat content part for a user block: none when chat has no place for it."""
    kind = block["type"]
    if kind == "text":
        return [{"type": "text", "text": require_string(block.get("text"), f"{path}.text")}]
    if kind == "image":
        url = _image_url(require_dict(block.get("source"), f"{path}.source"), f"{path}.source")
        return [{"type": "image_url", "image_url": {"url": url}}] if url else []
    if kind == "document":
        return _document(require_dict(block.get("source"), f"{path}.source"), block, path)
    return []


def _image_url(source: dict[str, Any], path: str) -> str | None:
    kind = source.get("type")
    if kind == "base64":
        media_type = require_string(source.get("media_type"), f"{path}.media_type")
        data = require_string(source.get("data"), f"{path}.data")
        return f"data:{media_type};base64,{data}"
    if kind == "url":
        return require_string(source.get("url"), f"{path}.url")
    return None


def _document(source: dict[str, Any], block: dict[str, Any], path: str) -> list[dict[str, Any]]:
    kind = source.get("type")
    if kind == "text":
        return [{"type": "text", "text": require_string(source.get("data"), f"{path}.source.data")}]
    if kind == "base64":
        url = _image_url(source, f"{path}.source")
        name = string(block.get("title")) or "document.pdf"
        return [{"type": "file", "file": {"filename": name, "file_data": url}}]
    return []


def _assistant(content: str | list[Any], path: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"role": "assistant", "content": content}] if content else []
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for here, block in typed_items(content, path):
        if block["type"] == "text":
            texts.append(require_string(block.get("text"), f"{here}.text"))
        elif block["type"] == "tool_use":
            calls.append(_tool_call(block, here))
    text = "\n".join(text for text in texts if text)
    if not text and not calls:
        return []
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = calls
    return [message]


def _tool_call(block: dict[str, Any], path: str) -> dict[str, Any]:
    call_id = require_string(block.get("id"), f"{path}.id")
    name = require_string(block.get("name"), f"{path}.name")
    arguments = json_text(block.get("input", {}))
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


# --- tools --------------------------------------------------------------------


def _tools(body: dict[str, Any]) -> dict[str, Any]:
    """``tools``, ``tool_choice`` and ``parallel_tool_calls`` for the chat request."""
    tools = _function_tools(body.get("tools"))
    if not tools:
        return {}
    out: dict[str, Any] = {"tools": tools}
    choice = body.get("tool_choice")
    if choice is None:
        return out
    choice = require_dict(choice, "tool_choice")
    kind = choice.get("type")
    if kind == "auto":
        out["tool_choice"] = "auto"
    elif kind == "any":
        out["tool_choice"] = "required"
    elif kind == "none":
        out["tool_choice"] = "none"
    elif kind == "tool":
        name = require_string(choice.get("name"), "tool_choice.name")
        out["tool_choice"] = {"type": "function", "function": {"name": name}}
    if choice.get("disable_parallel_tool_use") is True and kind != "none":
        out["parallel_tool_calls"] = False
    return out


def _function_tools(tools: object) -> list[dict[str, Any]]:
    if tools is None:
        return []
    out = []
    for index, tool in enumerate(require_list(tools, "tools")):
        path = f"tools[{index}]"
        tool = require_dict(tool, path)
        if tool.get("type", "custom") not in ("custom", None):
            continue  # a server tool: the upstream cannot run it
        function: dict[str, Any] = {"name": require_string(tool.get("name"), f"{path}.name")}
        description = string(tool.get("description"))
        if description is not None:
            function["description"] = description
        schema = tool.get("input_schema")
        function["parameters"] = (
            EMPTY_SCHEMA if schema is None else require_dict(schema, f"{path}.input_schema")
        )
        out.append({"type": "function", "function": function})
    return out
