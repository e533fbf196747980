"""Server-sent events: reading an upstream's stream as it arrives, and writing ours. No I/O
beyond iterating what it is given.

An event is the lines up to a blank line (lines end in CRLF, LF or CR, as the
SSE spec allows). Comment lines (``: keep-alive``) form events of their own with
no data, which a relay passes on unchanged.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable
from dataclasses import dataclass
from typing import Any

import msgspec

_encoder = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class Event:
    """One event as received."""

    event: str | None
    """The ``event:`` field (Anthropic and Responses streams name every event)."""
    data: str
    """The ``data:`` lines joined by newlines (``""`` for a comment)."""
    raw: bytes
    """The event as received, re-framed with LF line ends: relayed when unchanged."""

    def json(self) -> Any:
        """The data decoded as JSON, or ``None`` when it is not JSON (``[DONE]``)."""
        if not self.data or self.data == "[DONE]":
            return None
        try:
            return msgspec.json.decode(self.data)
        except msgspec.DecodeError:
            return None


def parse(lines: list[str]) -> Event:
    """The event made of ``lines`` (without their line ends)."""
    name: str | None = None
    data: list[str] = []
    for line in lines:
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "data":
            data.append(value)
        elif field == "event":
            name = value
    return Event(name, "\n".join(data), ("\n".join(lines) + "\n\n").encode("utf-8"))


async def events(chunks: AsyncIterable[bytes]) -> AsyncGenerator[Event, None]:
    """The events of a body read as it arrives; a last event without its blank line
    (the upstream hung up) is yielded too."""
    pending: list[str] = []
    async for line in lines(chunks):
        if line:
            pending.append(line)
        elif pending:
            yield parse(pending)
            pending = []
    if pending:
        yield parse(pending)


async def lines(chunks: AsyncIterable[bytes]) -> AsyncGenerator[str, None]:
    """The lines of a body read as it arrives (ended by CRLF, LF or CR, as SSE allows).

    Fed ``content.iter_any()`` (whatever the socket delivered), so nothing waits for
    a buffer to fill, and a line may be longer than aiohttp's ``readline`` limit.
    """
    pending = bytearray()
    async for chunk in chunks:
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            pending += chunk[start:end]
            for line in _split_cr(pending):
                yield line
            pending.clear()
            start = end + 1
        pending += chunk[start:]
    if pending:
        for line in _split_cr(pending):
            yield line


def _split_cr(raw: bytearray) -> list[str]:
    """One LF-ended line (LF removed): drop a CR before the LF, split on bare CRs."""
    text = raw.decode("utf-8", "replace")
    return text.removesuffix("\r").split("\r")


def data(payload: Any) -> bytes:
    """``data: <json>`` as one event (the OpenAI streams' framing)."""
    return b"data: " + _encoder.encode(payload) + b"\n\n"


def named(event: str, payload: Any) -> bytes:
    """``event: <name>`` + ``data: <json>`` (Anthropic and Responses streams)."""
    return b"event: " + event.encode() + b"\ndata: " + _encoder.encode(payload) + b"\n\n"


DONE = b"data: [DONE]\n\n"
