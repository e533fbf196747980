"""Server-sent events: reading an upstream's stream as it arrives, and writing ours. No I/O
beyond iterating what it is given.

An event is the lines up to a blank line (lines end in CRLF, LF or CR, as the
SSE spec allows). Comment lines (``: keep-alive``) form events of their own with
no data, which a relay passes on unchanged.

A relay reads thousands of events a second, so the common shape is cut as bytes
(:class:`Splitter`): a stream framed with LF only, each event one ``data:`` line,
optionally after an ``event:`` line. Such an event keeps its data's bytes as received
(:attr:`Event.blob`), so a renderer can pass them on, or rewrite a few fields, without
decoding them; anything else goes through the line parser the spec describes. The JSON
of an event is decoded at most once, when some reader asks for it (:meth:`Event.json`,
or a typed, partial :meth:`Event.view`).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable
from typing import Any, TypeVar

import msgspec

_encoder = msgspec.json.Encoder()
_PENDING: Any = object()
"""Not decoded yet (the JSON of an event is decoded on first use)."""

V = TypeVar("V")


class Event:
    """One event as received (read-only by convention: built once per event, and a
    relay builds thousands a second, so a plain class with slots)."""

    __slots__ = ("_json", "_kind", "_view", "blob", "data", "event", "raw")

    event: str | None
    """The ``event:`` field (Anthropic and Responses streams name every event)."""
    data: str
    """The ``data:`` lines joined by newlines (``""`` for a comment)."""
    raw: bytes
    """The event as received, re-framed with LF line ends: relayed when unchanged."""
    blob: bytes | None
    """``data`` as the bytes received, when the event was one ``data:`` line (after an
    optional ``event:`` line) of valid UTF-8: what a relay may pass on as it is."""

    def __init__(self, event: str | None, data: str, raw: bytes, blob: bytes | None = None) -> None:
        self.event = event
        self.data = data
        self.raw = raw
        self.blob = blob
        self._json: Any = _PENDING
        self._kind: type[Any] | None = None
        self._view: Any = None

    def __repr__(self) -> str:
        return f"Event(event={self.event!r}, data={self.data!r}, raw={self.raw!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Event):
            return NotImplemented
        return (self.event, self.data, self.raw) == (other.event, other.data, other.raw)

    __hash__ = None  # type: ignore[assignment]

    @property
    def body(self) -> bytes:
        """The data as UTF-8 bytes."""
        return self.data.encode("utf-8") if self.blob is None else self.blob

    @property
    def decoded(self) -> bool:
        """Whether :meth:`json` has been asked already (so reading it again is free)."""
        return self._json is not _PENDING

    def json(self) -> Any:
        """The data decoded as JSON, or ``None`` when it is not JSON (``[DONE]``);
        decoded once, whoever asks first."""
        if self._json is _PENDING:
            self._json = self._decode()
        return self._json

    def _decode(self) -> Any:
        if not self.data or self.data == "[DONE]":
            return None
        try:
            return msgspec.json.decode(self.body)
        except msgspec.DecodeError:
            return None

    def view(self, kind: type[V]) -> V | None:
        """The data decoded as ``kind`` (a :class:`msgspec.Struct` naming only the
        fields a reader needs; the others are skipped, not built), or ``None`` when
        it does not fit; decoded once per kind asked last."""
        if self._kind is kind:
            found: V | None = self._view
            return found
        try:
            value: V | None = msgspec.json.decode(self.body, type=kind)
        except (msgspec.DecodeError, msgspec.ValidationError):
            value = None
        self._kind, self._view = kind, value
        return value


def parse(lines: list[str]) -> Event:
    """The event made of ``lines`` (without their line ends)."""
    name: str | None = None
    data: list[str] = []
    for line in lines:
        field_name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field_name == "data":
            data.append(value)
        elif field_name == "event":
            name = value
    return Event(name, "\n".join(data), ("\n".join(lines) + "\n\n").encode("utf-8"))


class Splitter:
    """Cuts a body into events as its bytes arrive (:meth:`feed`, then :meth:`close`).

    While the stream has no CR, events are cut at ``\\n\\n`` and the usual shapes read
    as bytes (module docstring); from the first CR on, lines go through the spec's
    line parser (CRLF, LF and bare CR line ends), which reads any stream.
    """

    def __init__(self) -> None:
        self._pending = b""
        self._lines: _LineParser | None = None

    def feed(self, chunk: bytes) -> list[Event]:
        """The events ``chunk`` completes."""
        if self._lines is not None:
            return self._lines.feed(chunk)
        buffer = self._pending + chunk if self._pending else chunk
        if b"\r" in buffer:
            self._pending = b""
            self._lines = _LineParser()
            return self._lines.feed(buffer)
        found: list[Event] = []
        start, size = 0, len(buffer)
        while True:
            while start < size and buffer[start] == 10:  # blank lines between events
                start += 1
            end = buffer.find(b"\n\n", start)
            if end < 0:
                break
            found.append(_block(buffer[start:end]))
            start = end + 2
        self._pending = buffer[start:]
        return found

    def close(self) -> list[Event]:
        """The last event, when the body ended without its blank line."""
        if self._lines is not None:
            return self._lines.close()
        pending, self._pending = self._pending, b""
        return [_block(pending.rstrip(b"\n"))] if pending.strip(b"\n") else []


def _block(block: bytes) -> Event:
    """One event's lines (LF-separated, no CR, not blank)."""
    first_end = block.find(b"\n")
    if first_end < 0:
        if block.startswith(b"data:"):
            return _data_event(None, block, block)
    elif block.startswith(b"event:") and block.find(b"\n", first_end + 1) < 0:
        second = block[first_end + 1 :]
        if second.startswith(b"data:"):
            name = _value(block[:first_end], 6)
            try:
                return _data_event(name.decode("utf-8"), second, block)
            except UnicodeDecodeError:
                pass
    return parse(_lines(block))


def _lines(block: bytes) -> list[str]:
    return block.decode("utf-8", "replace").split("\n")


def _value(line: bytes, prefix: int) -> bytes:
    value = line[prefix:]
    return value[1:] if value.startswith(b" ") else value


def _data_event(name: str | None, line: bytes, block: bytes) -> Event:
    blob = _value(line, 5)
    try:
        data = blob.decode("utf-8")
    except UnicodeDecodeError:
        return parse(_lines(block))
    return Event(name, data, block + b"\n\n", blob)


class _LineParser:
    """The spec's parser: lines ended by CRLF, LF or CR, events ended by a blank line."""

    def __init__(self) -> None:
        self._partial = bytearray()
        self._event: list[str] = []

    def feed(self, chunk: bytes) -> list[Event]:
        found: list[Event] = []
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            self._partial += chunk[start:end]
            for line in _split_cr(self._partial):
                self._line(line, found)
            self._partial.clear()
            start = end + 1
        self._partial += chunk[start:]
        return found

    def close(self) -> list[Event]:
        found: list[Event] = []
        if self._partial:
            for line in _split_cr(self._partial):
                self._line(line, found)
            self._partial.clear()
        if self._event:
            found.append(parse(self._event))
            self._event = []
        return found

    def _line(self, line: str, found: list[Event]) -> None:
        if line:
            self._event.append(line)
        elif self._event:
            found.append(parse(self._event))
            self._event = []


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


def encode(payload: Any) -> bytes:
    """``payload`` as compact JSON."""
    return _encoder.encode(payload)


def data(payload: Any) -> bytes:
    """``data: <json>`` as one event (the OpenAI streams' framing)."""
    return b"data: " + _encoder.encode(payload) + b"\n\n"


def named(event: str, payload: Any) -> bytes:
    """``event: <name>`` + ``data: <json>`` (Anthropic and Responses streams)."""
    return b"event: " + event.encode() + b"\ndata: " + _encoder.encode(payload) + b"\n\n"


DONE = b"data: [DONE]\n\n"
