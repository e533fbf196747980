"""OpenAI Responses requests translated to chat completions, for upstreams that speak only chat.

:func:`responses_to_chat` maps a ``POST /responses`` body onto a
``POST /chat/completions`` body. The answer goes back through
:mod:`.responses_output` (whole bodies) or :mod:`.responses_stream` (streams);
both are re-exported here, so this module is the one to import.

Request mapping:

* ``input``: a string is one user message; a list holds items. ``message``
  items (with or without ``type``) keep their role, ``developer`` becoming
  ``system``. Text parts (``input_text``, ``output_text``, ``refusal``) are
  joined with newlines into a string; a user message with images
  (``input_image`` with an ``image_url``) or inline files (``input_file`` with
  ``file_data``) keeps a list of chat parts. Images and files given only by
  ``file_id`` are dropped (chat servers cannot resolve our file ids), as are
  images and files outside user messages.
* ``function_call`` items become ``tool_calls`` of an assistant message:
  consecutive calls share one message, the assistant text before them
  included. ``function_call_output`` items become ``tool`` messages; the text
  parts of a list output are joined, its images dropped.
* ``reasoning`` items and every other item type (``web_search_call``,
  ``local_shell_call``, …) are dropped: a chat model cannot take them back.
* ``instructions`` is a leading system message; ``history`` (the input and
  output items of the response named by ``previous_response_id``, loaded by the
  caller) comes before ``input``.
* ``tools``: function tools become chat function tools; every other tool
  (``namespace``, ``web_search``, ``local_shell``, ``custom``, …) is dropped.
  ``tool_choice`` keeps ``auto``/``none``/``required`` and a named function;
  other forms are dropped. Without a function tool left, ``tool_choice`` and
  ``parallel_tool_calls`` are dropped too (chat servers refuse them alone).
* ``max_output_tokens`` → ``max_tokens``; ``text.format`` → ``response_format``
  (``json_schema`` and ``json_object``); ``reasoning.effort`` →
  ``reasoning_effort`` (OpenAI's chat parameter, also read by vLLM);
  ``stream: true`` → ``stream`` plus ``stream_options.include_usage`` so the
  gateway can meter. ``model``, ``temperature``, ``top_p``,
  ``parallel_tool_calls`` and ``user`` are copied unchanged.
* Dropped, having no chat counterpart: ``store``, ``include``, ``metadata``,
  ``previous_response_id`` (resolved by the caller into ``history``),
  ``prompt_cache_key``, ``client_metadata``, ``safety_identifier``,
  ``truncation``, ``service_tier``, ``background``, ``max_tool_calls``,
  ``reasoning.summary``, ``text.verbosity``, ``top_logprobs``, ``conversation``,
  ``prompt`` and anything unknown.

Only structure no translation can use raises :class:`TranslationError`, whose
``field`` is a JSON path such as ``input[3].content``; scalar values copied
unchanged (``temperature``…) are the upstream's to judge. Nothing raises
anything else on any JSON value.
"""

from __future__ import annotations

from typing import Any

from modelgates.gateway.translate import TranslationError
from modelgates.gateway.translate.responses_output import (
    chat_to_response,
    relay_event,
    response_with_cost,
    responses_usage,
)
from modelgates.gateway.translate.responses_stream import ChatToResponsesStream

__all__ = [
    "ChatToResponsesStream",
    "TranslationError",
    "chat_to_response",
    "relay_event",
    "response_with_cost",
    "responses_to_chat",
    "responses_usage",
]

JSON = dict[str, Any]

_CHAT_ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}
_TEXT_PARTS = frozenset({"input_text", "output_text", "text"})
_IMAGE_DETAILS = frozenset({"low", "high", "auto"})
_TOOL_CHOICE_WORDS = frozenset({"auto", "none", "required"})
_COPIED = ("temperature", "top_p", "user")


def responses_to_chat(
    body: dict[str, Any], *, history: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The chat completions body asking what the Responses ``body`` asks (see the module doc)."""
    if not isinstance(body, dict):
        raise TranslationError("The request body must be a JSON object")
    messages: list[JSON] = []
    instructions = body.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise TranslationError("`instructions` must be a string", field="instructions")
        if instructions:
            messages.append({"role": "system", "content": instructions})
    if history is not None:
        _append_items(messages, history, "history")
    _append_items(messages, _input_items(body.get("input")), "input")

    chat: JSON = {}
    if "model" in body:
        chat["model"] = body["model"]
    chat["messages"] = messages
    tools = _function_tools(body.get("tools"))
    if tools:
        chat["tools"] = tools
        choice = _tool_choice(body.get("tool_choice"))
        if choice is not None:
            chat["tool_choice"] = choice
        if "parallel_tool_calls" in body:
            chat["parallel_tool_calls"] = body["parallel_tool_calls"]
    for name in _COPIED:
        if name in body:
            chat[name] = body[name]
    _copy_max_tokens(body, chat)
    _copy_text_format(body.get("text"), chat)
    _copy_reasoning(body.get("reasoning"), chat)
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise TranslationError("`stream` must be a boolean", field="stream")
    if stream:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return chat


def _input_items(value: object) -> object:
    """``input`` as a list of items: a string is one user message, absence is none."""
    if value is None:
        return []
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value}]
    return value


def _append_items(messages: list[JSON], items: object, path: str) -> None:
    if not isinstance(items, list):
        kinds = "an array of items" if path == "history" else "a string or an array of items"
        raise TranslationError(f"`{path}` must be {kinds}", field=path)
    for index, item in enumerate(items):
        where = f"{path}[{index}]"
        if not isinstance(item, dict):
            raise TranslationError("Each input item must be an object", field=where)
        kind = item.get("type")
        if kind is None or kind == "message":
            messages.append(_message(item, where))
        elif kind == "function_call":
            _append_function_call(messages, item, where)
        elif kind == "function_call_output":
            messages.append(_tool_message(item, where))


def _message(item: JSON, where: str) -> JSON:
    role = item.get("role")
    if not isinstance(role, str) or role not in _CHAT_ROLES:
        raise TranslationError(
            "A message's `role` must be user, assistant, system or developer",
            field=f"{where}.role",
        )
    chat_role = _CHAT_ROLES[role]
    content = item.get("content")
    if isinstance(content, str):
        return {"role": chat_role, "content": content}
    if not isinstance(content, list):
        raise TranslationError(
            "A message's `content` must be a string or an array of parts",
            field=f"{where}.content",
        )
    parts = _content_parts(content, f"{where}.content", rich=chat_role == "user")
    return {"role": chat_role, "content": _flatten(parts)}


def _content_parts(parts: list[Any], where: str, *, rich: bool) -> list[JSON]:
    """Chat content parts for Responses ones; images and files only when ``rich``."""
    chat_parts: list[JSON] = []
    for index, part in enumerate(parts):
        at = f"{where}[{index}]"
        if not isinstance(part, dict):
            raise TranslationError("Each content part must be an object", field=at)
        kind = part.get("type")
        if isinstance(kind, str) and kind in _TEXT_PARTS:
            chat_parts.append({"type": "text", "text": _string(part, "text", at)})
        elif kind == "refusal":
            chat_parts.append({"type": "text", "text": _string(part, "refusal", at)})
        elif kind == "input_image" and rich:
            image = _image_part(part, at)
            if image is not None:
                chat_parts.append(image)
        elif kind == "input_file" and rich:
            file = _file_part(part, at)
            if file is not None:
                chat_parts.append(file)
    return chat_parts


def _image_part(part: JSON, at: str) -> JSON | None:
    url = _optional_string(part, "image_url", at)
    if url is None:
        return None
    image: JSON = {"url": url}
    detail = part.get("detail")
    if isinstance(detail, str) and detail in _IMAGE_DETAILS:
        image["detail"] = detail
    return {"type": "image_url", "image_url": image}


def _file_part(part: JSON, at: str) -> JSON | None:
    data = _optional_string(part, "file_data", at)
    if data is None:
        return None
    file: JSON = {"file_data": data}
    filename = _optional_string(part, "filename", at)
    if filename is not None:
        file["filename"] = filename
    return {"type": "file", "file": file}


def _flatten(parts: list[JSON]) -> str | list[JSON]:
    """Text-only content as one string (parts joined by newlines), else the parts."""
    if all(part["type"] == "text" for part in parts):
        return "\n".join(part["text"] for part in parts)
    return parts


def _append_function_call(messages: list[JSON], item: JSON, where: str) -> None:
    arguments = _optional_string(item, "arguments", where)
    call = {
        "id": _string(item, "call_id", where),
        "type": "function",
        "function": {"name": _string(item, "name", where), "arguments": arguments or ""},
    }
    last = messages[-1] if messages else None
    if last is not None and last["role"] == "assistant":
        last.setdefault("tool_calls", []).append(call)
    else:
        messages.append({"role": "assistant", "content": None, "tool_calls": [call]})


def _tool_message(item: JSON, where: str) -> JSON:
    call_id = _string(item, "call_id", where)
    output = item.get("output")
    if isinstance(output, list):
        parts = _content_parts(output, f"{where}.output", rich=False)
        output = "\n".join(part["text"] for part in parts)
    elif not isinstance(output, str):
        raise TranslationError(
            "A function call output must be a string or an array of parts",
            field=f"{where}.output",
        )
    return {"role": "tool", "tool_call_id": call_id, "content": output}


def _function_tools(tools: object) -> list[JSON]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise TranslationError("`tools` must be an array", field="tools")
    chat_tools: list[JSON] = []
    for index, tool in enumerate(tools):
        at = f"tools[{index}]"
        if not isinstance(tool, dict):
            raise TranslationError("Each tool must be an object", field=at)
        if tool.get("type") != "function":
            continue
        function: JSON = {"name": _string(tool, "name", at)}
        description = _optional_string(tool, "description", at)
        if description is not None:
            function["description"] = description
        parameters = tool.get("parameters")
        if parameters is not None:
            if not isinstance(parameters, dict):
                raise TranslationError(
                    "A function tool's `parameters` must be a JSON Schema object",
                    field=f"{at}.parameters",
                )
            function["parameters"] = parameters
        strict = tool.get("strict")
        if isinstance(strict, bool):
            function["strict"] = strict
        chat_tools.append({"type": "function", "function": function})
    return chat_tools


def _tool_choice(choice: object) -> str | JSON | None:
    if isinstance(choice, str) and choice in _TOOL_CHOICE_WORDS:
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = choice.get("name")
        if isinstance(name, str):
            return {"type": "function", "function": {"name": name}}
    return None


def _copy_max_tokens(body: JSON, chat: JSON) -> None:
    value = body.get("max_output_tokens")
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool):
        raise TranslationError("`max_output_tokens` must be an integer", field="max_output_tokens")
    chat["max_tokens"] = value


def _copy_text_format(text: object, chat: JSON) -> None:
    if text is None:
        return
    if not isinstance(text, dict):
        raise TranslationError("`text` must be an object", field="text")
    form = text.get("format")
    if form is None:
        return
    if not isinstance(form, dict):
        raise TranslationError("`text.format` must be an object", field="text.format")
    kind = form.get("type")
    if kind == "json_object":
        chat["response_format"] = {"type": "json_object"}
    elif kind == "json_schema":
        keys = ("name", "description", "schema", "strict")
        schema = {name: form[name] for name in keys if name in form}
        chat["response_format"] = {"type": "json_schema", "json_schema": schema}


def _copy_reasoning(reasoning: object, chat: JSON) -> None:
    if reasoning is None:
        return
    if not isinstance(reasoning, dict):
        raise TranslationError("`reasoning` must be an object", field="reasoning")
    effort = reasoning.get("effort")
    if effort is not None:
        chat["reasoning_effort"] = effort


def _string(holder: JSON, name: str, where: str) -> str:
    value = holder.get(name)
    if not isinstance(value, str):
        raise TranslationError(f"`{name}` must be a string", field=f"{where}.{name}")
    return value


def _optional_string(holder: JSON, name: str, where: str) -> str | None:
    value = holder.get(name)
    if value is not None and not isinstance(value, str):
        raise TranslationError(f"`{name}` must be a string", field=f"{where}.{name}")
    return value
