"""Typed, partial views of upstream stream events: the fields the relay reads. No I/O.

A stream's events are read thousands of times a second, and most of them only carry
a little text. Decoded into one of these structs (:meth:`~modelgates.gateway.sse.Event.
view`), an event builds only the fields named here, every other one is skipped, and
every type is checked by msgspec at once. An event whose fields have other types
does not fit (the view is ``None``), and its readers take the generic path on the
whole decoded JSON, which reads any value: a view is a shortcut, never a narrower
reading.

``UNSET`` marks a field the event does not have; :class:`msgspec.Raw` keeps a value's
bytes without building it (a usage report, a whole Response object), for the few
events that the generic path then reads in full.
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import UNSET, Raw, UnsetType

__all__ = [
    "UNSET",
    "AnthropicBlockDelta",
    "ChatChunk",
    "ResponsesEvent",
]

NULL = Raw(b"null")


class Function(msgspec.Struct, gc=False):
    name: str | None = None
    arguments: str | None = None


class ToolCall(msgspec.Struct, gc=False):
    function: Function | None = None


class Holder(msgspec.Struct, gc=False):
    """A choice's ``delta`` (or ``message``): the generated text it may carry."""

    content: str | None = None
    reasoning: str | None = None
    reasoning_content: str | None = None
    tool_calls: list[ToolCall] | None = None


class Choice(msgspec.Struct, gc=False):
    finish_reason: str | None = None
    text: str | None = None
    delta: Holder | None = None
    message: Holder | None = None


class ChatChunk(msgspec.Struct, gc=False):
    """An OpenAI chat (or completions) stream chunk: what its meter and its relay read.

    The top-level fields the relay rewrites or remembers are kept as they are
    (``Any``) so that they can be compared with what the chunk's head said."""

    id: Any = UNSET
    model: Any = UNSET
    created: Any = UNSET
    system_fingerprint: Any = UNSET
    provider: Any = UNSET
    usage: Raw | UnsetType = UNSET
    choices: list[Choice] | None = None


class Block(msgspec.Struct, gc=False):
    text: str | None = None
    thinking: str | None = None
    partial_json: str | None = None


class AnthropicBlockDelta(msgspec.Struct, gc=False):
    """An Anthropic ``content_block_delta`` (or any event, by its ``type``)."""

    type: Any = UNSET
    delta: Block | None = None


class ResponsesEvent(msgspec.Struct, gc=False):
    """An OpenAI Responses stream event: its kind, number and delta; a lifecycle
    event's ``response`` and an item event's ``item`` are kept as bytes."""

    type: Any = UNSET
    sequence_number: Any = UNSET
    delta: Any = UNSET
    response: Raw | UnsetType = UNSET
    item: Raw | UnsetType = UNSET
