"""A chat completions stream retold as a Responses event stream. No I/O.

:class:`ChatToResponsesStream` takes chat chunks one at a time and answers the
Responses events they amount to, in the order the ``openai`` SDK's stream
accumulator demands: ``response.created`` first, one response id throughout,
every ``output_item.added`` (and ``content_part.added``) before a delta naming
its index, and each ``output_item.done`` carrying the item that was added,
complete. ``sequence_number`` counts every event from 0.

Items open as their deltas first arrive: reasoning (``reasoning`` or
``reasoning_content`` deltas) as a ``reasoning`` item with one summary part,
text as a ``message`` item with one ``output_text`` part, each tool call (by
its chat ``index``) as a ``function_call`` item. Reasoning and text close when
a different kind of output begins; tool calls, whose deltas may interleave,
close at :meth:`~ChatToResponsesStream.finish`. Refusal deltas and the usage of
chunks are ignored: the caller meters and passes the usage to ``finish``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modelgates.gateway.translate.responses_output import (
    INCOMPLETE_REASONS,
    arguments_text,
    content_text,
    function_call_item,
    item_id,
    message_item,
    reasoning_item,
    reasoning_text,
    response_object,
    responses_usage,
    unique_call_id,
)
from modelgates.gateway.usage import Usage

JSON = dict[str, Any]

FAILURE_CODES = frozenset({"server_error", "rate_limit_exceeded", "invalid_prompt"})
"""Error codes the SDK's ``ResponseError`` accepts that a gateway can mean; others read as
``server_error``."""


@dataclass
class _Item:
    """One output item being streamed: its kind, id, and what has arrived so far."""

    kind: str
    id: str
    index: int
    text: str = ""
    call_id: str = ""
    name: str = ""
    status: str = "in_progress"
    """``in_progress`` while open; ``completed`` or ``incomplete`` once closed."""

    def snapshot(self) -> JSON:
        if self.kind == "reasoning":
            return reasoning_item(self.id, self.text, status=self.status)
        if self.kind == "message":
            item = message_item(self.id, self.text, status=self.status)
            if self.status == "in_progress":
                item["content"] = []  # the part comes with its own content_part.added
            return item
        return function_call_item(
            self.id, call_id=self.call_id, name=self.name, arguments=self.text, status=self.status
        )


@dataclass
class ChatToResponsesStream:
    """Responses events for one streamed chat completion (see the module doc)."""

    id: str
    model: str
    created_at: int
    request: dict[str, Any]
    response: dict[str, Any] | None = field(default=None, init=False)
    """The final Response object, once :meth:`finish` or :meth:`fail` has run (for storage)."""
    finish_reason: str | None = field(default=None, init=False)
    """The chat finish reason the upstream reported, if any."""
    text_bytes: int = field(default=0, init=False)
    """UTF-8 bytes of generated text, reasoning and tool-call arguments (for estimates)."""
    _sequence: int = field(default=0, init=False)
    _items: list[_Item] = field(default_factory=list, init=False)
    _tools: dict[object, _Item] = field(default_factory=dict, init=False)
    _current: _Item | None = field(default=None, init=False)
    _ended: bool = field(default=False, init=False)

    def start(self) -> list[dict[str, Any]]:
        """``response.created`` then ``response.in_progress``."""
        return [
            self._lifecycle("response.created", "in_progress"),
            self._lifecycle("response.in_progress", "in_progress"),
        ]

    def feed(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        """The events one chat chunk amounts to (often none, never more than a handful)."""
        if self._ended or not isinstance(chunk, dict):
            return []
        choices = chunk.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            return []
        choice = choices[0]
        reason = choice.get("finish_reason")
        if isinstance(reason, str):
            self.finish_reason = reason
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            return []
        events: list[JSON] = []
        reasoning = reasoning_text(delta)
        if reasoning:
            self._stream_text("reasoning", reasoning, events)
        text = content_text(delta.get("content"))
        if text:
            self._stream_text("message", text, events)
        calls = delta.get("tool_calls")
        if isinstance(calls, list):
            for position, call in enumerate(calls):
                if isinstance(call, dict):
                    self._stream_call(call, position, events)
        return events

    def finish(self, usage: Usage, cost: float) -> list[dict[str, Any]]:
        """Close every open item, then ``response.completed`` (or ``response.incomplete``)."""
        if self._ended:
            return []
        events: list[JSON] = []
        if not any(item.kind in ("message", "function_call") for item in self._items):
            self._open("message", events)
        reason = INCOMPLETE_REASONS.get(self.finish_reason or "")
        status = "completed" if reason is None else "incomplete"
        for item in self._items:
            self._close(item, events, status)
        self._ended = True
        self.response = response_object(
            id=self.id,
            model=self.model,
            created_at=self.created_at,
            request=self.request,
            status=status,
            output=[item.snapshot() for item in self._items],
            usage=responses_usage(usage, cost),
            incomplete_details=None if reason is None else {"reason": reason},
        )
        kind = "response.completed" if reason is None else "response.incomplete"
        events.append(self._event(kind, response=self.response))
        return events

    def fail(self, message: str, code: str) -> list[dict[str, Any]]:
        """``response.failed`` with ``error``, its output the items as far as they came."""
        if self._ended:
            return []
        self._ended = True
        for item in self._items:
            if item.status == "in_progress":
                item.status = "incomplete"
        self.response = response_object(
            id=self.id,
            model=self.model,
            created_at=self.created_at,
            request=self.request,
            status="failed",
            output=[item.snapshot() for item in self._items],
            error={"code": code if code in FAILURE_CODES else "server_error", "message": message},
        )
        return [self._event("response.failed", response=self.response)]

    def _stream_text(self, kind: str, text: str, events: list[JSON]) -> None:
        item = self._current
        if item is None or item.kind != kind:
            item = self._open(kind, events)
        item.text += text
        self.text_bytes += len(text.encode())
        if kind == "reasoning":
            events.append(
                self._event(
                    "response.reasoning_summary_text.delta",
                    item_id=item.id,
                    output_index=item.index,
                    summary_index=0,
                    delta=text,
                )
            )
        else:
            events.append(
                self._event(
                    "response.output_text.delta",
                    item_id=item.id,
                    output_index=item.index,
                    content_index=0,
                    delta=text,
                    logprobs=[],
                )
            )

    def _stream_call(self, call: JSON, position: int, events: list[JSON]) -> None:
        index = call.get("index")
        key = index if isinstance(index, int) and not isinstance(index, bool) else position
        function = call.get("function")
        function = function if isinstance(function, dict) else {}
        item = self._tools.get(key)
        if item is None:
            call_id, name = call.get("id"), function.get("name")
            item = self._open(
                "function_call",
                events,
                call_id=call_id if isinstance(call_id, str) else None,
                name=name if isinstance(name, str) else "",
            )
            self._tools[key] = item
        elif not item.name and isinstance(function.get("name"), str):
            item.name = function["name"]
        arguments = arguments_text(function.get("arguments"))
        if arguments:
            item.text += arguments
            self.text_bytes += len(arguments.encode())
            events.append(
                self._event(
                    "response.function_call_arguments.delta",
                    item_id=item.id,
                    output_index=item.index,
                    delta=arguments,
                )
            )

    def _open(
        self, kind: str, events: list[JSON], *, call_id: str | None = None, name: str = ""
    ) -> _Item:
        """A new item at the next output index; open reasoning or text is complete then."""
        if self._current is not None:
            self._close(self._current, events, "completed")
        index = len(self._items)
        prefix = {"reasoning": "rs", "message": "msg", "function_call": "fc"}[kind]
        item = _Item(kind, item_id(prefix, self.id, index), index)
        if kind == "function_call":
            taken = {other.call_id for other in self._items if other.kind == "function_call"}
            item.call_id = unique_call_id(call_id, taken, self.id, index)
            item.name = name
        else:
            self._current = item
        self._items.append(item)
        events.append(
            self._event(
                "response.output_item.added",
                output_index=index,
                item=item.snapshot(),
            )
        )
        if kind == "reasoning":
            events.append(
                self._event(
                    "response.reasoning_summary_part.added",
                    item_id=item.id,
                    output_index=index,
                    summary_index=0,
                    part={"type": "summary_text", "text": ""},
                )
            )
        elif kind == "message":
            events.append(
                self._event(
                    "response.content_part.added",
                    item_id=item.id,
                    output_index=index,
                    content_index=0,
                    part={"type": "output_text", "text": "", "annotations": []},
                )
            )
        return item

    def _close(self, item: _Item, events: list[JSON], status: str) -> None:
        if item.status != "in_progress":
            return
        item.status = status
        if self._current is item:
            self._current = None
        at: JSON = {"item_id": item.id, "output_index": item.index}
        if item.kind == "reasoning":
            part: JSON = {"type": "summary_text", "text": item.text}
            events.append(
                self._event(
                    "response.reasoning_summary_text.done", **at, summary_index=0, text=item.text
                )
            )
            events.append(
                self._event(
                    "response.reasoning_summary_part.done", **at, summary_index=0, part=part
                )
            )
        elif item.kind == "message":
            part = {"type": "output_text", "text": item.text, "annotations": []}
            events.append(
                self._event(
                    "response.output_text.done", **at, content_index=0, text=item.text, logprobs=[]
                )
            )
            events.append(
                self._event("response.content_part.done", **at, content_index=0, part=part)
            )
        else:
            events.append(
                self._event("response.function_call_arguments.done", **at, arguments=item.text)
            )
        events.append(
            self._event("response.output_item.done", output_index=item.index, item=item.snapshot())
        )

    def _lifecycle(self, kind: str, status: str) -> JSON:
        response = response_object(
            id=self.id,
            model=self.model,
            created_at=self.created_at,
            request=self.request,
            status=status,
            output=[],
        )
        return self._event(kind, response=response)

    def _event(self, kind: str, **fields: Any) -> JSON:
        event = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return event
