"""Answers in Anthropic's Messages words, whole or streamed. No I/O.

Two renderers, by where the answer comes from:

* :class:`AnthropicRenderer`: an ``anthropic`` upstream's message, passed through.
  The body keeps every field the upstream sent; a stream is relayed event by
  event as it arrives, except its closing ``message_delta`` and ``message_stop``,
  which wait until the stream is settled so that ``message_delta.usage`` carries
  what was charged.
* :class:`ChatAsMessagesRenderer`: a chat upstream's answer translated
  (:mod:`modelgates.gateway.translate.anthropic_response`); a stream opens with
  ``message_start`` and a ``ping`` as soon as the upstream answers.

Either way ``id`` is the generation id (``gen-…``, for ``GET /generation``),
``model`` the ModelGates model id, ``provider`` the provider that served, and
``usage`` what was charged, in Anthropic's words (``input_tokens`` excludes the
cache) plus ``cost`` in USD (and ``estimated: true`` when the counts had to be
estimated). A stream the upstream breaks ends with an ``error`` event
(``api_error``), as Anthropic's own streams do.
"""

from __future__ import annotations

from typing import Any

from modelgates.gateway import sse
from modelgates.gateway.metered import Head, Outcome, StreamRenderer
from modelgates.gateway.translate.anthropic import (
    ChatToMessagesStream,
    Event,
    anthropic_error,
    anthropic_usage,
    chat_to_message,
)
from modelgates.money import to_usd

PING = sse.named("ping", {"type": "ping"})


def message_usage(reported: object, outcome: Outcome) -> dict[str, Any]:
    """Anthropic's ``usage`` for what was charged; the upstream's other fields kept
    (``service_tier``, ``server_tool_use``…) unless the counts were estimated."""
    base = dict(reported) if isinstance(reported, dict) and not outcome.estimated else {}
    base.update(anthropic_usage(outcome.usage, to_usd(outcome.cost.total)))
    if outcome.estimated:
        base["estimated"] = True
    return base


def _named(message: dict[str, Any], head: Head) -> dict[str, Any]:
    return {**message, "id": head.generation_id, "model": head.model, "provider": head.provider}


def _encode(events: list[Event]) -> list[bytes]:
    return [sse.named(name, data) for name, data in events]


class AnthropicRenderer:
    """Messages from an ``anthropic`` upstream, passed through (module docstring)."""

    def body(self, payload: dict[str, Any], outcome: Outcome) -> dict[str, Any]:
        answer = _named(payload, outcome.head)
        answer["usage"] = message_usage(payload.get("usage"), outcome)
        return answer

    def stream(self, head: Head) -> StreamRenderer:
        return AnthropicStream(head)


_PASSED = {
    name: b'{"type":"' + name.encode() + b'"'
    for name in ("content_block_delta", "content_block_start", "content_block_stop", "ping")
}
"""Events relayed as they came, and how their data begins when their ``type`` says the
same as their name: such an event is passed on without being decoded."""


class AnthropicStream(StreamRenderer):
    """Relays an Anthropic stream event by event under the generation's id."""

    def __init__(self, head: Head) -> None:
        self.head = head
        self.closing: dict[str, Any] = {"type": "message_delta", "delta": {}}
        """The upstream's ``message_delta``, held until the stream is settled."""
        self.errored = False

    def start(self) -> list[bytes]:
        return []

    def relay(self, event: sse.Event) -> list[bytes]:
        opening = _PASSED.get(event.event or "")
        if opening is not None and event.blob is not None and event.blob.startswith(opening):
            return [event.raw]
        return self.event(event, event.json())

    def event(self, event: sse.Event, payload: Any) -> list[bytes]:
        if not isinstance(payload, dict):
            return [event.raw]  # comments and whatever else is not JSON, as sent
        kind = payload.get("type", event.event)
        if kind == "message_start" and isinstance(payload.get("message"), dict):
            message = _named(payload["message"], self.head)
            return [sse.named("message_start", {**payload, "message": message})]
        if kind == "message_delta":
            self.closing = payload
            return []
        if kind == "message_stop":
            return []  # ours follows the settled message_delta
        if kind == "error":
            self.errored = True
        return [event.raw]

    def finish(self, outcome: Outcome) -> list[bytes]:
        if self.errored:
            return []  # the upstream's error event ended the stream
        delta = {**self.closing, "usage": message_usage(self.closing.get("usage"), outcome)}
        return [sse.named("message_delta", delta), sse.named("message_stop", _STOP)]

    def fail(self, outcome: Outcome, message: str) -> list[bytes]:
        return [sse.named("error", anthropic_error(message, "api_error"))]


_STOP = {"type": "message_stop"}


class ChatAsMessagesRenderer:
    """A chat upstream's answer as an Anthropic message (module docstring).

    ``prompt_tokens`` is the request's prompt estimate: a stream's ``message_start``
    reports it before the upstream has said anything; ``message_delta`` then reports
    what was charged.
    """

    def __init__(self, prompt_tokens: int) -> None:
        self.prompt_tokens = prompt_tokens

    def body(self, payload: dict[str, Any], outcome: Outcome) -> dict[str, Any]:
        head = outcome.head
        cost = to_usd(outcome.cost.total)
        message = chat_to_message(
            payload, id=head.generation_id, model=head.model, usage=outcome.usage, cost=cost
        )
        message["provider"] = head.provider
        message["usage"] = message_usage(None, outcome)
        return message

    def stream(self, head: Head) -> StreamRenderer:
        return ChatAsMessagesStream(head, self.prompt_tokens)


class ChatAsMessagesStream(StreamRenderer):
    """A chat upstream's chunks as Anthropic stream events."""

    def __init__(self, head: Head, prompt_tokens: int) -> None:
        self.head = head
        self.translator = ChatToMessagesStream(head.generation_id, head.model, prompt_tokens)

    def start(self) -> list[bytes]:
        opening = self.translator.feed({})  # message_start, before any upstream chunk
        for _, data in opening:
            data["message"]["provider"] = self.head.provider
        return [*_encode(opening), PING]

    def event(self, event: sse.Event, payload: Any) -> list[bytes]:
        if not isinstance(payload, dict):
            return []  # comments and [DONE]: the closing events are ours
        error = payload.get("error")
        if error is not None and "choices" not in payload:
            message = error.get("message") if isinstance(error, dict) else None
            text = message if isinstance(message, str) else "The upstream stream failed"
            return _encode(self.translator.error(text, "api_error"))
        return _encode(self.translator.feed(payload))

    def finish(self, outcome: Outcome) -> list[bytes]:
        events = self.translator.finish(outcome.usage, to_usd(outcome.cost.total))
        for name, data in events:
            if name == "message_delta":
                data["usage"] = message_usage(None, outcome)
        return _encode(events)

    def fail(self, outcome: Outcome, message: str) -> list[bytes]:
        return _encode(self.translator.error(message, "api_error"))
