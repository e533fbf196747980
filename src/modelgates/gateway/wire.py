"""The upstream APIs the gateway speaks, as the metering path needs to know them. No I/O.

For each: where a request goes, how the provider key is sent, which field bounds
the output, and a :class:`Meter` that reads what an answer (whole or streamed)
reports: usage (in :class:`~modelgates.gateway.usage.Usage` terms and the
provider's own), the upstream's id, the finish reason, and the bytes of
generated text for an estimate when usage is missing or unsound.

=====================  ============================  ====================================
API                    path                          usage reported in
=====================  ============================  ====================================
``chat``               ``/chat/completions``         ``usage`` of the body; in a stream,
                                                     of any chunk (the last one counts)
``completions``        ``/completions``              the same
``embeddings``         ``/embeddings``               ``usage`` of the body
``anthropic``          ``/messages``                 ``usage`` of the body; in a stream,
                                                     ``message_start`` + ``message_delta``
``responses``          ``/responses``                ``usage`` of the body; in a stream,
                                                     the closing ``response.*`` event
=====================  ============================  ====================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from modelgates.gateway import usage as usage_of
from modelgates.gateway import views
from modelgates.gateway.estimate import text_bytes, utf8_size
from modelgates.gateway.sse import Event
from modelgates.gateway.usage import Usage

ApiName = Literal["chat", "completions", "embeddings", "anthropic", "responses"]
ANTHROPIC_VERSION = "2023-06-01"
ROUTING_FIELDS = frozenset({"models", "fallbacks", "provider"})
"""OpenRouter's routing fields (fallback lists, provider preferences): the gateway
applies them (:mod:`modelgates.gateway.routing`), never forwards them."""


@dataclass(frozen=True, slots=True)
class UpstreamApi:
    """One upstream API: its path under the provider's base URL and its conventions."""

    name: ApiName
    path: str
    max_tokens_field: str | None
    """The request field that bounds the output (``None``: the API has no output)."""

    def headers(self, provider_key: str | None, *, stream: bool) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        if stream:
            headers["accept"] = "text/event-stream"
        if self.name == "anthropic":
            headers["anthropic-version"] = ANTHROPIC_VERSION
            if provider_key:
                headers["x-api-key"] = provider_key
        elif provider_key:
            headers["authorization"] = f"Bearer {provider_key}"
        return headers

    def request(
        self, body: dict[str, Any], *, model: str, max_tokens: int | None, stream: bool
    ) -> dict[str, Any]:
        """``body`` as sent upstream: the provider's model name, the output bound the
        budget granted (when the client named none) and, for an OpenAI stream, the
        usage chunk the metering needs (``stream_options.include_usage``). The routing
        fields (``models``, ``fallbacks``, ``provider``) are not sent: the gateway picks
        the endpoint, and an upstream that routes by them could serve another."""
        sent = {name: value for name, value in body.items() if name not in ROUTING_FIELDS}
        sent["model"] = model
        if max_tokens is not None and self.max_tokens_field is not None:
            sent[self.max_tokens_field] = max_tokens
        if stream and self.name in ("chat", "completions"):
            options = body.get("stream_options")
            options = dict(options) if isinstance(options, dict) else {}
            sent["stream_options"] = {**options, "include_usage": True}
        return sent

    def meter(self) -> Meter:
        if self.name == "anthropic":
            return AnthropicMeter()
        if self.name == "responses":
            return ResponsesMeter()
        return OpenAIMeter()


CHAT = UpstreamApi("chat", "/chat/completions", "max_tokens")
COMPLETIONS = UpstreamApi("completions", "/completions", "max_tokens")
EMBEDDINGS = UpstreamApi("embeddings", "/embeddings", None)
ANTHROPIC = UpstreamApi("anthropic", "/messages", "max_tokens")
RESPONSES = UpstreamApi("responses", "/responses", "max_output_tokens")
ANTHROPIC_COUNT_TOKENS = UpstreamApi("anthropic", "/messages/count_tokens", None)
"""Anthropic's token counter (free, unmetered: ``POST /messages/count_tokens``)."""


@dataclass
class Native:
    """Token counts in the provider's own terms (``native_tokens_*`` of the record)."""

    prompt: int | None = None
    completion: int | None = None
    reasoning: int | None = None
    cached: int | None = None


@dataclass
class Meter:
    """What an upstream answer reported, read as it arrives."""

    usage: Usage | None = None
    """The last sound usage report (cumulative reports supersede earlier ones)."""
    reported: bool = False
    """Whether any usage report arrived, sound or not."""
    native: Native = field(default_factory=Native)
    upstream_id: str | None = None
    finish_reason: str | None = None
    text_bytes: int = 0

    def body(self, payload: dict[str, Any]) -> None:
        """Read a whole (non-streamed) answer."""
        raise NotImplementedError

    def event(self, event: Event, payload: Any) -> None:
        """Read one stream event (``payload``: its data as JSON, or ``None``)."""
        raise NotImplementedError

    def read(self, event: Event) -> None:
        """Read one stream event as a relay does: what :meth:`event` reads, through a
        typed view (:mod:`modelgates.gateway.views`) where the event fits one and its
        JSON has not been decoded whole already (by a renderer that needed it)."""
        self.event(event, event.json())

    def _id(self, value: object) -> None:
        if self.upstream_id is None and isinstance(value, str):
            self.upstream_id = value[:200]

    def _finish(self, value: object) -> None:
        if isinstance(value, str):
            self.finish_reason = value[:100]


class OpenAIMeter(Meter):
    """Chat completions, completions and embeddings."""

    def body(self, payload: dict[str, Any]) -> None:
        self.event(Event(None, "", b""), payload)

    def read(self, event: Event) -> None:
        chunk = None if event.decoded else event.view(views.ChatChunk)
        if chunk is None or (chunk.usage is not views.UNSET and chunk.usage != views.NULL):
            self.event(event, event.json())  # a usage report: read in full
            return
        if self.upstream_id is None:
            self._id(chunk.id)
        for choice in chunk.choices or ():
            if choice.finish_reason is not None:
                self._finish(choice.finish_reason)
            if choice.text is not None:
                self.text_bytes += utf8_size(choice.text)
            for holder in (choice.delta, choice.message):
                if holder is not None:
                    self._holder(holder)

    def _holder(self, holder: views.Holder) -> None:
        if holder.content is not None:
            self.text_bytes += utf8_size(holder.content)
        if holder.reasoning is not None or holder.reasoning_content is not None:
            self.text_bytes += text_bytes(holder.reasoning, holder.reasoning_content)
        for call in holder.tool_calls or ():
            if call.function is not None:
                self.text_bytes += text_bytes(call.function.name, call.function.arguments)

    def event(self, event: Event, payload: Any) -> None:
        if not isinstance(payload, dict):
            return
        self._id(payload.get("id"))
        choices = payload.get("choices")
        for choice in choices if isinstance(choices, list) else ():
            if isinstance(choice, dict):
                self._choice(choice)
        if "usage" in payload and payload["usage"] is not None:
            self.reported = True
            raw = payload["usage"]
            self.usage = usage_of.from_openai(raw)
            if isinstance(raw, dict):
                prompt_details = raw.get("prompt_tokens_details")
                completion_details = raw.get("completion_tokens_details")
                self.native = Native(
                    usage_of.count(raw.get("prompt_tokens")),
                    usage_of.count(raw.get("completion_tokens")),
                    _detail(completion_details, "reasoning_tokens"),
                    _detail(prompt_details, "cached_tokens"),
                )

    def _choice(self, choice: dict[str, Any]) -> None:
        self._finish(choice.get("finish_reason"))
        self.text_bytes += text_bytes(choice.get("text"))
        for holder in (choice.get("message"), choice.get("delta")):
            if not isinstance(holder, dict):
                continue
            self.text_bytes += text_bytes(
                holder.get("content"), holder.get("reasoning"), holder.get("reasoning_content")
            )
            calls = holder.get("tool_calls")
            for call in calls if isinstance(calls, list) else ():
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict):
                    self.text_bytes += text_bytes(function.get("name"), function.get("arguments"))


class AnthropicMeter(Meter):
    """Anthropic Messages: usage split over ``message_start`` and ``message_delta``."""

    def __init__(self) -> None:
        super().__init__()
        self._seen: dict[str, Any] = {}

    def body(self, payload: dict[str, Any]) -> None:
        self._id(payload.get("id"))
        self._finish(payload.get("stop_reason"))
        content = payload.get("content")
        for block in content if isinstance(content, list) else ():
            if isinstance(block, dict):
                self._block(block)
        self._usage(payload.get("usage"))

    def read(self, event: Event) -> None:
        if event.event == "content_block_delta" and not event.decoded:
            delta = event.view(views.AnthropicBlockDelta)
            if delta is not None and delta.type == "content_block_delta":
                if delta.delta is not None:
                    block = delta.delta
                    self.text_bytes += text_bytes(block.text, block.thinking, block.partial_json)
                return
        self.event(event, event.json())

    def event(self, event: Event, payload: Any) -> None:
        if not isinstance(payload, dict):
            return
        kind = payload.get("type")
        if kind == "message_start" and isinstance(payload.get("message"), dict):
            self._id(payload["message"].get("id"))
            self._usage(payload["message"].get("usage"))
        elif kind == "content_block_delta" and isinstance(payload.get("delta"), dict):
            self._block(payload["delta"])
        elif kind == "content_block_start" and isinstance(payload.get("content_block"), dict):
            self._block(payload["content_block"])
        elif kind == "message_delta":
            delta = payload.get("delta")
            if isinstance(delta, dict):
                self._finish(delta.get("stop_reason"))
            self._usage(payload.get("usage"))

    def _block(self, block: dict[str, Any]) -> None:
        self.text_bytes += text_bytes(
            block.get("text"), block.get("thinking"), block.get("partial_json")
        )

    def _usage(self, raw: object) -> None:
        if raw is None:
            return
        self.reported = True
        self._seen = usage_of.merge_anthropic(self._seen, raw)
        self.usage = usage_of.from_anthropic(self._seen)
        self.native = Native(
            usage_of.count(self._seen.get("input_tokens")),
            usage_of.count(self._seen.get("output_tokens")),
            None,
            usage_of.count(self._seen.get("cache_read_input_tokens")),
        )


class ResponsesMeter(Meter):
    """OpenAI Responses: usage on the response object, in a stream on its closing event."""

    def body(self, payload: dict[str, Any]) -> None:
        self._id(payload.get("id"))
        status = payload.get("status")
        details = payload.get("incomplete_details")
        reason = details.get("reason") if isinstance(details, dict) else None
        self._finish(reason if isinstance(reason, str) else status)
        output = payload.get("output")
        for item in output if isinstance(output, list) else ():
            if isinstance(item, dict):
                self._item(item)
        raw = payload.get("usage")
        if raw is not None:
            self.reported = True
            self.usage = usage_of.from_responses(raw)
            if isinstance(raw, dict):
                self.native = Native(
                    usage_of.count(raw.get("input_tokens")),
                    usage_of.count(raw.get("output_tokens")),
                    _detail(raw.get("output_tokens_details"), "reasoning_tokens"),
                    _detail(raw.get("input_tokens_details"), "cached_tokens"),
                )

    def read(self, event: Event) -> None:
        seen = None if event.decoded else event.view(views.ResponsesEvent)
        if seen is not None and seen.response is views.UNSET and isinstance(seen.type, str):
            if seen.type.endswith(".delta"):
                self.text_bytes += text_bytes(seen.delta)
            return  # only a closing event (or response.created) reports more
        self.event(event, event.json())

    def event(self, event: Event, payload: Any) -> None:
        if not isinstance(payload, dict):
            return
        kind = payload.get("type")
        if isinstance(kind, str) and kind.endswith(".delta"):
            self.text_bytes += text_bytes(payload.get("delta"))
        response = payload.get("response")
        if isinstance(kind, str) and kind in _CLOSING and isinstance(response, dict):
            saved = self.text_bytes
            self.body(response)
            self.text_bytes = saved  # the deltas already counted the text
        elif kind == "response.created" and isinstance(response, dict):
            self._id(response.get("id"))

    def _item(self, item: dict[str, Any]) -> None:
        self.text_bytes += text_bytes(item.get("arguments"))
        content = item.get("content") or item.get("summary")
        for part in content if isinstance(content, list) else ():
            if isinstance(part, dict):
                self.text_bytes += text_bytes(part.get("text"))


_CLOSING = frozenset({"response.completed", "response.incomplete", "response.failed"})


def _detail(holder: object, name: str) -> int | None:
    return usage_of.count(holder.get(name)) if isinstance(holder, dict) else None
