"""Response objects of the OpenAI Responses API: built from a chat completion, or relabelled.

:func:`chat_to_response` turns a chat completion into the Response object the
``openai`` SDK's ``Response`` model accepts, echoing the request's settings the
way OpenAI does. The builders here are shared with the stream translator, so a
streamed answer ends in the very object a whole one would have been.

A finish reason of ``length`` (or ``content_filter``) makes the response
``incomplete``, with ``incomplete_details.reason`` ``max_output_tokens`` (or
``content_filter``). The items cut short are ``incomplete`` too: the last one,
and every tool call (a stream closes them all at its end); reasoning or text
that other output followed was complete.

Ids of output items (``rs_…``, ``msg_…``, ``fc_…``, and ``call_…`` for tool
calls the upstream left without one, or gave one an earlier call of the answer
has: clients tell calls apart by ``call_id``) are derived from the response id
and the item's position, so the same answer always gets the same ids.

For an upstream that speaks Responses itself, :func:`response_with_cost` and
:func:`relay_event` put the gateway's id, the client's model name and the
billed usage into what it answered. Nothing here raises on any JSON value.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from modelgates.gateway.usage import Usage

JSON = dict[str, Any]

LIFECYCLE_EVENTS = frozenset(
    {
        "response.created",
        "response.queued",
        "response.in_progress",
        "response.completed",
        "response.incomplete",
        "response.failed",
    }
)
"""Stream events that carry the whole ``response`` object."""

INCOMPLETE_REASONS = {"length": "max_output_tokens", "content_filter": "content_filter"}
"""Chat finish reasons that leave a response incomplete, and the Responses reason for each."""

_TOOL_CHOICE_WORDS = frozenset({"auto", "none", "required"})
_TRUNCATIONS = frozenset({"auto", "disabled"})


def responses_usage(usage: Usage, cost: float) -> dict[str, Any]:
    """The Responses ``usage`` object for ``usage``, with the gateway's ``cost`` in USD."""
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {
            "cached_tokens": usage.cached_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
        },
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens,
        "cost": cost,
    }


def item_id(prefix: str, response_id: str, index: int) -> str:
    """A stable id for output item ``index`` of ``response_id``, such as ``msg_3f…``."""
    digest = hashlib.blake2b(f"{response_id}/{index}".encode(), digest_size=12).hexdigest()
    return f"{prefix}_{digest}"


def message_item(item_id: str, text: str, *, status: str, refusal: str | None = None) -> JSON:
    content: list[JSON] = [{"type": "output_text", "text": text, "annotations": []}]
    if refusal:
        content.append({"type": "refusal", "refusal": refusal})
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": content,
    }


def reasoning_item(item_id: str, summary: str, *, status: str) -> JSON:
    parts = [{"type": "summary_text", "text": summary}] if summary else []
    return {"id": item_id, "type": "reasoning", "summary": parts, "status": status}


def function_call_item(
    item_id: str, *, call_id: str, name: str, arguments: str, status: str
) -> JSON:
    return {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    }


def unique_call_id(given: object, taken: set[str], response_id: str, index: int) -> str:
    """``given`` if it is a call id no earlier call of the answer has, else a derived one;
    added to ``taken``."""
    call_id = given if isinstance(given, str) and given and given not in taken else None
    chosen = call_id or item_id("call", response_id, index)
    taken.add(chosen)
    return chosen


def response_object(
    *,
    id: str,
    model: str,
    created_at: int,
    request: object,
    status: str,
    output: list[JSON],
    usage: JSON | None = None,
    error: JSON | None = None,
    incomplete_details: JSON | None = None,
) -> JSON:
    """A Response object echoing ``request``'s settings, as OpenAI answers them."""
    asked = request if isinstance(request, dict) else {}
    return {
        "id": id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "model": model,
        "output": output,
        "output_text": output_text(output),
        "usage": usage,
        "error": error,
        "incomplete_details": incomplete_details,
        "instructions": _typed(asked, "instructions", str),
        "max_output_tokens": _integer(asked.get("max_output_tokens")),
        "max_tool_calls": _integer(asked.get("max_tool_calls")),
        "parallel_tool_calls": _typed(asked, "parallel_tool_calls", bool, True),
        "previous_response_id": _typed(asked, "previous_response_id", str),
        "prompt_cache_key": _typed(asked, "prompt_cache_key", str),
        "reasoning": _typed(asked, "reasoning", dict),
        "safety_identifier": _typed(asked, "safety_identifier", str),
        "store": _typed(asked, "store", bool, True),
        "background": _typed(asked, "background", bool, False),
        "temperature": _number(asked.get("temperature")),
        "top_p": _number(asked.get("top_p")),
        "text": _typed(asked, "text", dict, {"format": {"type": "text"}}),
        "tool_choice": _echo_tool_choice(asked.get("tool_choice")),
        "tools": _echo_tools(asked.get("tools")),
        "truncation": _word(asked.get("truncation"), _TRUNCATIONS, "disabled"),
        "metadata": _typed(asked, "metadata", dict, {}),
        "user": _typed(asked, "user", str),
    }


def output_text(output: list[JSON]) -> str:
    """The text of every ``output_text`` part, as the SDK's ``Response.output_text`` joins it."""
    return "".join(
        part["text"]
        for item in output
        if item.get("type") == "message"
        for part in item.get("content", [])
        if part.get("type") == "output_text"
    )


def chat_to_response(
    chat: dict[str, Any],
    *,
    id: str,
    model: str,
    created_at: int,
    request: dict[str, Any],
    usage: Usage,
    cost: float,
) -> dict[str, Any]:
    """The Response object for a chat completion (its first choice)."""
    choice = _first_choice(chat)
    message = choice.get("message")
    message = message if isinstance(message, dict) else {}
    finish_reason = choice.get("finish_reason")
    reason = INCOMPLETE_REASONS.get(finish_reason) if isinstance(finish_reason, str) else None
    status = "completed" if reason is None else "incomplete"

    output: list[JSON] = []
    summary = reasoning_text(message)
    if summary:
        output.append(reasoning_item(item_id("rs", id, 0), summary, status="completed"))
    text = content_text(message.get("content"))
    refusal = message.get("refusal")
    refusal = refusal if isinstance(refusal, str) else None
    calls = message.get("tool_calls")
    calls = [call for call in calls if isinstance(call, dict)] if isinstance(calls, list) else []
    if text or refusal or not calls:
        done = "completed" if calls else status
        index = len(output)
        output.append(message_item(item_id("msg", id, index), text, status=done, refusal=refusal))
    taken: set[str] = set()
    for call in calls:
        index = len(output)
        function = call.get("function")
        function = function if isinstance(function, dict) else {}
        call_id = unique_call_id(call.get("id"), taken, id, index)
        name = function.get("name")
        output.append(
            function_call_item(
                item_id("fc", id, index),
                call_id=call_id,
                name=name if isinstance(name, str) else "",
                arguments=arguments_text(function.get("arguments")),
                status=status,
            )
        )
    if output[-1]["type"] == "reasoning":
        output[-1]["status"] = status
    return response_object(
        id=id,
        model=model,
        created_at=created_at,
        request=request,
        status=status,
        output=output,
        usage=responses_usage(usage, cost),
        incomplete_details=None if reason is None else {"reason": reason},
    )


def response_with_cost(
    response: dict[str, Any], usage: Usage, cost: float, *, id: str, model: str
) -> dict[str, Any]:
    """A Responses upstream's Response object under our ``id`` and ``model``, with billed usage."""
    body = response if isinstance(response, dict) else {}
    return {**body, "id": id, "model": model, "usage": responses_usage(usage, cost)}


def relay_event(
    event: dict[str, Any],
    *,
    id: str,
    model: str,
    usage: Usage | None = None,
    cost: float = 0.0,
) -> dict[str, Any]:
    """A Responses upstream's stream event to relay under our ``id`` and ``model``.

    Lifecycle events (``response.created`` … ``response.failed``) get their
    ``response`` relabelled, and its usage replaced when ``usage`` is given
    (pass it, with ``cost``, for the terminal event); other events pass as they are.
    """
    if not isinstance(event, dict):
        return event
    response = event.get("response")
    kind = event.get("type")
    if not isinstance(kind, str) or kind not in LIFECYCLE_EVENTS or not isinstance(response, dict):
        return event
    relabelled = {**response, "id": id, "model": model}
    if usage is not None:
        relabelled["usage"] = responses_usage(usage, cost)
    return {**event, "response": relabelled}


def reasoning_text(holder: JSON) -> str:
    """The reasoning a chat message or delta carries (``reasoning`` or ``reasoning_content``)."""
    for name in ("reasoning", "reasoning_content"):
        value = holder.get(name)
        if isinstance(value, str) and value:
            return value
    return ""


def content_text(content: object) -> str:
    """Chat ``content`` as text: a string, or the text of a list of text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def arguments_text(arguments: object) -> str:
    """Tool-call arguments as the JSON text Responses carries (some servers send objects)."""
    if isinstance(arguments, str):
        return arguments
    if arguments is None:
        return ""
    return json.dumps(arguments)


def _first_choice(chat: object) -> JSON:
    choices = chat.get("choices") if isinstance(chat, dict) else None
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        return choices[0]
    return {}


def _typed(holder: JSON, name: str, kind: type, default: Any = None) -> Any:
    value = holder.get(name)
    return value if isinstance(value, kind) else default


def _integer(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _number(value: object) -> float | int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value


def _word(value: object, words: frozenset[str], default: str) -> str:
    return value if isinstance(value, str) and value in words else default


def _echo_tool_choice(choice: object) -> str | JSON:
    if isinstance(choice, dict):
        return choice
    return _word(choice, _TOOL_CHOICE_WORDS, "auto")


def _echo_tools(tools: object) -> list[JSON]:
    if not isinstance(tools, list):
        return []
    return [tool for tool in tools if isinstance(tool, dict)]
