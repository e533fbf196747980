"""A chat upstream's answer rendered as an Anthropic message, whole or streamed.

The answer half of :mod:`.anthropic_request`. Upstream answers are untrusted
and read leniently: nothing here raises. Only ``choices[0]`` is read (a
Messages request asks for one answer).

Content, in order: a ``thinking`` block from ``reasoning`` (or
``reasoning_content``) with an empty ``signature`` (there is none to give),
then text (``content``, or ``refusal``), then one ``tool_use`` block per tool
call, its id kept as the upstream gave it. A tool call whose ``arguments`` are
not a JSON object gets ``input: {}``: the client's tool then rejects the call
and the model sees why, which is better than inventing arguments. Stop reasons:
``stop`` → ``end_turn`` (``tool_use`` when tool calls were made: some upstreams
say ``stop`` then), ``length`` → ``max_tokens``, ``tool_calls`` and
``function_call`` → ``tool_use``, ``content_filter`` → ``refusal``, anything
else or nothing → ``end_turn``. ``stop_sequence`` is always null: chat does not
say which sequence matched.

Dropped: ``logprobs``, ``reasoning_details``, annotations, audio, every choice
but the first, and the upstream's own ``id``, ``model`` and ``usage`` (the
caller meters and passes the :class:`Usage` in).
"""

from __future__ import annotations

from typing import Any

from modelgates.gateway.translate._json import as_dict, integer, parse_object, string, utf8_len
from modelgates.gateway.usage import Usage

__all__ = [
    "ChatToMessagesStream",
    "anthropic_error",
    "anthropic_usage",
    "chat_to_message",
    "stop_reason_for",
]

STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}

Event = tuple[str, dict[str, Any]]
"""An Anthropic stream event: its SSE event name and its data."""


def stop_reason_for(finish_reason: object, *, called_tools: bool = False) -> str:
    """The Anthropic ``stop_reason`` for a chat ``finish_reason``."""
    reason = STOP_REASONS.get(finish_reason) if isinstance(finish_reason, str) else None
    reason = reason or "end_turn"
    return "tool_use" if called_tools and reason == "end_turn" else reason


def anthropic_usage(usage: Usage, cost: float) -> dict[str, Any]:
    """``usage`` in Anthropic's words (``input_tokens`` excludes the cache), plus ``cost``."""
    return {
        "input_tokens": usage.prompt_tokens - usage.cached_tokens - usage.cache_write_tokens,
        "output_tokens": usage.completion_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cached_tokens,
        "cost": cost,
    }


def anthropic_error(message: str, error_type: str) -> dict[str, Any]:
    """Anthropic's error body, as answered and as the data of an ``error`` event."""
    return {"type": "error", "error": {"type": error_type, "message": message}}


def _first_choice(chat: object) -> dict[str, Any]:
    choices = as_dict(chat).get("choices")
    return as_dict(choices[0]) if isinstance(choices, list) and choices else {}


def _text(content: object) -> str:
    """Chat message content (a string or text parts) as one text."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(string(as_dict(part).get("text")) or "" for part in content)
    return ""


def _reasoning(holder: dict[str, Any]) -> str:
    return string(holder.get("reasoning")) or string(holder.get("reasoning_content")) or ""


def _tool_use(call: object, position: int) -> dict[str, Any] | None:
    call = as_dict(call)
    function = as_dict(call.get("function"))
    name = string(function.get("name"))
    if name is None:
        return None
    call_id = string(call.get("id")) or f"toolu_{position}"
    return {
        "type": "tool_use",
        "id": call_id,
        "name": name,
        "input": parse_object(function.get("arguments")) or {},
    }


def chat_to_message(
    chat: dict[str, Any], *, id: str, model: str, usage: Usage, cost: float
) -> dict[str, Any]:
    """The Anthropic message for a whole chat completion."""
    choice = _first_choice(chat)
    message = as_dict(choice.get("message"))
    content: list[dict[str, Any]] = []
    reasoning = _reasoning(message)
    if reasoning:
        content.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    text = _text(message.get("content")) or string(message.get("refusal")) or ""
    if text:
        content.append({"type": "text", "text": text})
    calls = message.get("tool_calls")
    for position, call in enumerate(calls if isinstance(calls, list) else []):
        block = _tool_use(call, position)
        if block is not None:
            content.append(block)
    called = any(block["type"] == "tool_use" for block in content)
    return {
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason_for(choice.get("finish_reason"), called_tools=called),
        "stop_sequence": None,
        "usage": anthropic_usage(usage, cost),
    }


class ChatToMessagesStream:
    """Turns a chat upstream's stream chunks into Anthropic stream events.

    ``feed`` each decoded chunk as it arrives, then ``finish`` with the metered
    usage (or ``error`` if the upstream broke). One content block is open at a
    time; a new kind of delta (reasoning, text, another tool call) closes it.
    Tool-call arguments that arrive before the call's id or name are held until
    its block starts; arguments for a call whose block was already closed (an
    upstream interleaving parallel calls) cannot be sent and are dropped.
    """

    def __init__(self, id: str, model: str, prompt_tokens_estimate: int) -> None:
        self.id = id
        self.model = model
        self.prompt_tokens_estimate = prompt_tokens_estimate
        self.finish_reason: str | None = None
        """The upstream's last ``finish_reason``, for metering and logs."""
        self.text_bytes = 0
        """UTF-8 bytes of generated text, reasoning and arguments, for estimates."""
        self._started = False
        self._ended = False
        self._next_index = 0
        self._open: tuple[str, int] | None = None
        """The open block's key: its kind and, for a tool call, the call's chat index."""
        self._open_index = -1
        self._tool_calls: set[int] = set()
        """Chat indices of the tool calls whose block has started."""
        self._held_arguments: dict[int, str] = {}

    @property
    def stop_reason(self) -> str:
        """The ``stop_reason`` the stream ends (or would end) with."""
        return stop_reason_for(self.finish_reason, called_tools=bool(self._tool_calls))

    def feed(self, chunk: dict[str, Any]) -> list[Event]:
        """The events one chat chunk makes (a chunk's ``usage`` is ignored)."""
        if self._ended:
            return []
        events = self._start()
        choice = _first_choice(chunk)
        delta = as_dict(choice.get("delta"))
        reasoning = _reasoning(delta)
        if reasoning:
            delta_event = {"type": "thinking_delta", "thinking": reasoning}
            events += self._delta(("thinking", -1), delta_event)
            self.text_bytes += utf8_len(reasoning)
        text = _text(delta.get("content")) or string(delta.get("refusal")) or ""
        if text:
            events += self._delta(("text", -1), {"type": "text_delta", "text": text})
            self.text_bytes += utf8_len(text)
        calls = delta.get("tool_calls")
        for position, call in enumerate(calls if isinstance(calls, list) else []):
            events += self._tool_call_delta(as_dict(call), position)
        reason = string(choice.get("finish_reason"))
        if reason is not None:
            self.finish_reason = reason
        return events

    def finish(self, usage: Usage, cost: float) -> list[Event]:
        """Close the message: its stop reason and the final, metered usage."""
        if self._ended:
            return []
        events = self._start() + self._close()
        self._ended = True
        delta = {"stop_reason": self.stop_reason, "stop_sequence": None}
        events.append(
            (
                "message_delta",
                {"type": "message_delta", "delta": delta, "usage": anthropic_usage(usage, cost)},
            )
        )
        events.append(("message_stop", {"type": "message_stop"}))
        return events

    def error(self, message: str, error_type: str) -> list[Event]:
        """End a stream that broke midway with Anthropic's ``error`` event."""
        if self._ended:
            return []
        self._ended = True
        return [("error", anthropic_error(message, error_type))]

    # --- blocks -------------------------------------------------------------

    def _start(self) -> list[Event]:
        if self._started:
            return []
        self._started = True
        usage = {
            "input_tokens": self.prompt_tokens_estimate,
            "output_tokens": 1,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        }
        message: dict[str, Any] = {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage,
        }
        return [("message_start", {"type": "message_start", "message": message})]

    def _close(self) -> list[Event]:
        if self._open is None:
            return []
        self._open = None
        return [("content_block_stop", {"type": "content_block_stop", "index": self._open_index})]

    def _begin(self, key: tuple[str, int], block: dict[str, Any]) -> list[Event]:
        events = self._close()
        self._open, self._open_index = key, self._next_index
        self._next_index += 1
        data = {"type": "content_block_start", "index": self._open_index, "content_block": block}
        return [*events, ("content_block_start", data)]

    def _delta(self, key: tuple[str, int], delta: dict[str, Any]) -> list[Event]:
        events: list[Event] = []
        if self._open != key:
            kind = key[0]
            block = (
                {"type": "thinking", "thinking": "", "signature": ""}
                if kind == "thinking"
                else {"type": "text", "text": ""}
            )
            events = self._begin(key, block)
        data = {"type": "content_block_delta", "index": self._open_index, "delta": delta}
        return [*events, ("content_block_delta", data)]

    def _tool_call_delta(self, call: dict[str, Any], position: int) -> list[Event]:
        index = integer(call.get("index"))
        index = position if index is None else index
        function = as_dict(call.get("function"))
        arguments = string(function.get("arguments")) or ""
        self.text_bytes += utf8_len(arguments)
        key = ("tool", index)
        events: list[Event] = []
        if index not in self._tool_calls:
            call_id, name = string(call.get("id")), string(function.get("name"))
            if call_id is None and name is None:
                self._held_arguments[index] = self._held_arguments.get(index, "") + arguments
                return []
            block = {
                "type": "tool_use",
                "id": call_id or f"toolu_{self.id}_{index}",
                "name": name or "",
                "input": {},
            }
            events = self._begin(key, block)
            self._tool_calls.add(index)
            arguments = self._held_arguments.pop(index, "") + arguments
        if arguments and self._open == key:
            delta = {"type": "input_json_delta", "partial_json": arguments}
            data = {"type": "content_block_delta", "index": self._open_index, "delta": delta}
            events.append(("content_block_delta", data))
        return events
