"""An Anthropic upstream's message rendered as a chat completion, whole or streamed.

The answer half of :mod:`.chat_request`. Upstream answers are untrusted and
read leniently: nothing here raises.

Text blocks join into ``content`` (``null`` when the message only calls tools);
``thinking`` blocks into ``reasoning``, as OpenRouter reports it; ``tool_use``
blocks become ``tool_calls`` (``arguments`` is the JSON text of ``input``).
Stop reasons: ``end_turn``, ``stop_sequence`` and ``pause_turn`` → ``stop``;
``max_tokens`` and ``model_context_window_exceeded`` → ``length``; ``tool_use``
→ ``tool_calls``; ``refusal`` → ``content_filter``; anything else → ``stop``.

Dropped: ``redacted_thinking`` blocks and thinking signatures, citations,
server-tool blocks (``server_tool_use``, ``web_search_tool_result``…),
``stop_sequence``, ``container``, ``stop_details`` and the upstream's own
``id``, ``model`` and ``usage`` (the caller meters and passes the
:class:`Usage` in).
"""

from __future__ import annotations

from typing import Any

from modelgates.gateway.translate._json import as_dict, integer, json_text, string, utf8_len
from modelgates.gateway.usage import Usage, from_anthropic, merge_anthropic

__all__ = ["MessagesToChatStream", "finish_reason_for", "message_to_chat", "openai_usage"]

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def finish_reason_for(stop_reason: object) -> str:
    """The chat ``finish_reason`` for an Anthropic ``stop_reason``."""
    return FINISH_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


def openai_usage(usage: Usage, cost: float) -> dict[str, Any]:
    """``usage`` in OpenAI's (and OpenRouter's) words, plus ``cost``."""
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {
            "cached_tokens": usage.cached_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
        },
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "cost": cost,
    }


def _tool_call(block: dict[str, Any], position: int) -> dict[str, Any]:
    return {
        "index": position,
        "id": string(block.get("id")) or f"toolu_{position}",
        "type": "function",
        "function": {
            "name": string(block.get("name")) or "",
            "arguments": json_text(block.get("input", {})),
        },
    }


def message_to_chat(
    message: dict[str, Any], *, id: str, model: str, created: int, usage: Usage, cost: float
) -> dict[str, Any]:
    """The chat completion for a whole Anthropic message."""
    message = as_dict(message)
    content = message.get("content")
    texts: list[str] = []
    reasoning: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in content if isinstance(content, list) else []:
        block = as_dict(block)
        kind = block.get("type")
        if kind == "text":
            texts.append(string(block.get("text")) or "")
        elif kind == "thinking":
            reasoning.append(string(block.get("thinking")) or "")
        elif kind == "tool_use":
            calls.append(_tool_call(block, len(calls)))
    text = "".join(texts)
    answer: dict[str, Any] = {"role": "assistant", "content": text or (None if calls else "")}
    if reasoning:
        answer["reasoning"] = "".join(reasoning)
    if calls:
        answer["tool_calls"] = calls
    choice = {
        "index": 0,
        "message": answer,
        "finish_reason": finish_reason_for(message.get("stop_reason")),
        "logprobs": None,
    }
    return {
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "system_fingerprint": None,
        "choices": [choice],
        "usage": openai_usage(usage, cost),
    }


class MessagesToChatStream:
    """Turns an Anthropic upstream's stream events into chat completion chunks.

    ``feed`` each event (its SSE name and decoded data); then ``finish`` with the
    metered usage. The usage the upstream reported so far is in :attr:`usage`.
    An ``error`` event is kept in :attr:`error` and ends the translation: the
    caller ends the client's stream with an error of its own.
    """

    def __init__(self, id: str, model: str, created: int) -> None:
        self.id = id
        self.model = model
        self.created = created
        self.stop_reason: str | None = None
        """The upstream's ``stop_reason``, once a ``message_delta`` said it."""
        self.text_bytes = 0
        """UTF-8 bytes of generated text, reasoning and arguments, for estimates."""
        self.error: dict[str, str] | None = None
        """``{"type", "message"}`` of an upstream ``error`` event, if one came."""
        self._reported: dict[str, Any] = {}
        self._role_sent = False
        self._finish_sent = False
        self._done = False
        self._tools: dict[int, int] = {}  # content block index → tool-call index

    @property
    def usage(self) -> Usage | None:
        """The usage the upstream reported so far, if any and sound."""
        return from_anthropic(self._reported) if self._reported else None

    @property
    def finish_reason(self) -> str:
        """The chat ``finish_reason`` the stream ends (or would end) with."""
        return finish_reason_for(self.stop_reason)

    def feed(self, event: str, data: dict[str, Any]) -> list[dict[str, Any]]:
        """The chunks one Anthropic event makes."""
        if self._done:
            return []
        data = as_dict(data)
        kind = string(data.get("type")) or event
        if kind == "error":
            error = as_dict(data.get("error"))
            self.error = {
                "type": string(error.get("type")) or "api_error",
                "message": string(error.get("message")) or "The upstream stream failed",
            }
            self._done = True
            return []
        if kind == "message_start":
            message = as_dict(data.get("message"))
            self._reported = merge_anthropic(self._reported, message.get("usage"))
            return self._role()
        if kind == "content_block_start":
            return self._block_start(data)
        if kind == "content_block_delta":
            return self._block_delta(data)
        if kind == "message_delta":
            return self._message_delta(data)
        return []  # ping, content_block_stop, message_stop and events yet to come

    def finish(self, usage: Usage, cost: float) -> list[dict[str, Any]]:
        """The closing chunks: a finish reason if none was sent, then the usage chunk."""
        chunks = self._role()
        if not self._finish_sent:
            chunks.append(self._chunk({}, self.finish_reason))
            self._finish_sent = True
        self._done = True
        final = self._base()
        final["choices"] = []
        final["usage"] = openai_usage(usage, cost)
        return [*chunks, final]

    # --- events ---------------------------------------------------------------

    def _base(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
        }

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        chunk = self._base()
        chunk["choices"] = [{"index": 0, "delta": delta, "finish_reason": finish_reason}]
        return chunk

    def _role(self) -> list[dict[str, Any]]:
        if self._role_sent:
            return []
        self._role_sent = True
        return [self._chunk({"role": "assistant", "content": ""})]

    def _block_start(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        block = as_dict(data.get("content_block"))
        index = integer(data.get("index"))
        kind = block.get("type")
        if kind == "text":
            return self._text({"content": string(block.get("text")) or ""})
        if kind == "thinking":
            return self._text({"reasoning": string(block.get("thinking")) or ""})
        if kind != "tool_use" or index is None:
            return []
        self._tools[index] = len(self._tools)
        call = _tool_call(block, self._tools[index])
        if call["function"]["arguments"] == "{}":
            call["function"]["arguments"] = ""  # the input arrives in input_json_delta events
        self.text_bytes += utf8_len(call["function"]["arguments"])
        return [*self._role(), self._chunk({"tool_calls": [call]})]

    def _block_delta(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        delta = as_dict(data.get("delta"))
        kind = delta.get("type")
        if kind == "text_delta":
            return self._text({"content": string(delta.get("text")) or ""})
        if kind == "thinking_delta":
            return self._text({"reasoning": string(delta.get("thinking")) or ""})
        index = integer(data.get("index"))
        position = None if index is None else self._tools.get(index)
        if kind != "input_json_delta" or position is None:
            return []  # signature and citation deltas, or a delta for an unknown block
        arguments = string(delta.get("partial_json")) or ""
        if not arguments:
            return []
        self.text_bytes += utf8_len(arguments)
        call = {"index": position, "function": {"arguments": arguments}}
        return [*self._role(), self._chunk({"tool_calls": [call]})]

    def _text(self, delta: dict[str, str]) -> list[dict[str, Any]]:
        """A content or reasoning delta; nothing for an empty one."""
        text = next(iter(delta.values()))
        if not text:
            return []
        self.text_bytes += utf8_len(text)
        return [*self._role(), self._chunk(delta)]

    def _message_delta(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        self._reported = merge_anthropic(self._reported, data.get("usage"))
        stop_reason = string(as_dict(data.get("delta")).get("stop_reason"))
        if stop_reason is None or self._finish_sent:
            return []
        self.stop_reason = stop_reason
        self._finish_sent = True
        return [*self._role(), self._chunk({}, self.finish_reason)]
