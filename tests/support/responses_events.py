"""Responses API event streams as the gateway sent them, read back and checked the way
the ``openai`` SDK reads them.

:func:`read_stream` parses ``text/event-stream`` text, validates every event against
the pinned SDK's ``ResponseStreamEvent`` models, feeds it through the SDK's own
accumulator (the state behind ``client.responses.stream()``, which refuses a stream
that does not begin with ``response.created``, changes its response id, or sends a
delta before its item) and checks what Codex relies on besides: ``sequence_number``
counting from 0, ``output_item.added`` and ``content_part.added`` before anything
naming them, each ``output_item.done`` the item that was added, and one closing
event at the end.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pydantic
from openai import omit
from openai.lib.streaming.responses import ResponseStreamState
from openai.types.responses import ResponseStreamEvent

EVENTS: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(ResponseStreamEvent)
CLOSING = ("response.completed", "response.incomplete", "response.failed")


def parse(text: str) -> list[dict[str, Any]]:
    """The JSON data of each event, checking that ``event:`` names its ``type``."""
    events = []
    for block in text.split("\n\n"):
        lines = [line for line in block.splitlines() if line and not line.startswith(":")]
        if not lines:
            continue
        fields = dict(line.split(": ", 1) for line in lines)
        data: dict[str, Any] = msgspec.json.decode(fields["data"])
        assert fields.get("event") == data["type"], block
        events.append(data)
    return events


def read_stream(text: str) -> list[dict[str, Any]]:
    """The events of a Responses stream, checked as the module docstring says."""
    events = parse(text)
    assert events, "an empty stream"
    assert events[0]["type"] == "response.created"
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    assert [event["type"] in CLOSING for event in events].count(True) == 1
    assert events[-1]["type"] in CLOSING
    ids = {event["response"]["id"] for event in events if "response" in event}
    assert len(ids) == 1, ids
    added: dict[int, dict[str, Any]] = {}
    parts: set[tuple[int, int]] = set()
    state: ResponseStreamState[Any] = ResponseStreamState(input_tools=omit, text_format=omit)
    for event in events:
        kind = event["type"]
        if kind == "response.output_item.added":
            added[event["output_index"]] = event["item"]
        elif kind == "response.content_part.added":
            assert event["output_index"] in added
            parts.add((event["output_index"], event["content_index"]))
        elif kind == "response.output_item.done":
            first = added[event["output_index"]]
            assert (first["type"], first["id"]) == (event["item"]["type"], event["item"]["id"])
        elif "content_index" in event:
            assert (event["output_index"], event["content_index"]) in parts
        elif "output_index" in event:
            assert event["output_index"] in added
        state.handle_event(EVENTS.validate_python(event))
    return events


def final(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The Response object of the closing event."""
    response: dict[str, Any] = events[-1]["response"]
    return response


def text_of(events: list[dict[str, Any]]) -> str:
    """The text the deltas streamed."""
    return "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
