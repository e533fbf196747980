"""The Responses renderers (modelgates.gateway.openai_responses) on their own, no I/O: what a
Responses upstream's events become, whatever it sends."""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from modelgates.gateway import sse
from modelgates.gateway.metered import Head, Outcome
from modelgates.gateway.openai_responses import ENDED_EARLY, PassThroughRenderer
from modelgates.gateway.translate.responses_output import response_object
from modelgates.gateway.usage import Usage
from modelgates.gateway.wire import ResponsesMeter
from modelgates.pricing import Cost
from tests.support.responses_events import read_stream
from tests.test_translate_responses import json_values

HEAD = Head("gen-1-abc", "native/model", "native", 1_764_412_200)
OUTCOME = Outcome(HEAD, Usage(7, 3), Cost(13_000, 7_000, 6_000, 0), estimated=False)
REQUEST = {"model": "native/model", "input": "hi", "previous_response_id": "gen-0-prev"}


def upstream_event(payload: Any) -> sse.Event:
    kind = payload.get("type") if isinstance(payload, dict) else None
    name = kind if isinstance(kind, str) else None
    return sse.Event(name, msgspec.json.encode(payload).decode(), b"")


def relay(payloads: list[Any], *, broken: bool = False) -> str:
    stream = PassThroughRenderer(REQUEST).stream(HEAD)
    out = stream.start()
    for payload in payloads:
        out += stream.event(upstream_event(payload), payload)
    out += stream.fail(OUTCOME, "broke") if broken else stream.finish(OUTCOME)
    return b"".join(out).decode()


def upstream_response(status: str, **fields: Any) -> dict[str, Any]:
    """A Response object as OpenAI sends it, under the upstream's own id and model name."""
    response = response_object(
        id="resp_1", model="upstream-name", created_at=1, request={}, status=status, output=[]
    )
    return {**response, **fields}


def test_the_closing_event_waits_for_the_charged_usage() -> None:
    message = {"id": "msg_1", "type": "message", "status": "completed", "role": "assistant",
               "content": [{"type": "output_text", "text": "hi", "annotations": []}]}  # fmt: skip
    upstream = [
        {"type": "response.created", "sequence_number": 0,
         "response": upstream_response("in_progress")},
        {"type": "response.output_item.added", "sequence_number": 1, "output_index": 0,
         "item": {**message, "status": "in_progress", "content": []}},
        {"type": "response.output_item.done", "sequence_number": 2, "output_index": 0,
         "item": message},
        {"type": "response.completed", "sequence_number": 3,
         "response": upstream_response("completed", output=[message],
                                       usage={"input_tokens": 999, "output_tokens": 999})},
    ]  # fmt: skip
    events = read_stream(relay(upstream))

    done = events[-1]["response"]
    assert (done["id"], done["model"], done["provider"]) == ("gen-1-abc", "native/model", "native")
    assert done["previous_response_id"] == "gen-0-prev"
    assert done["output_text"] == "hi"
    assert (done["usage"]["input_tokens"], done["usage"]["output_tokens"]) == (7, 3)
    assert done["usage"]["cost"] == 13_000 / 1e9
    assert events[0]["response"]["id"] == "gen-1-abc"


def test_a_stream_without_its_closing_event_fails_with_the_next_number() -> None:
    upstream = [
        {"type": "response.created", "sequence_number": 0,
         "response": upstream_response("in_progress")},
        {"type": "response.in_progress", "sequence_number": 1,
         "response": upstream_response("in_progress")},
    ]  # fmt: skip
    for broken, message in ((False, ENDED_EARLY), (True, "broke")):
        events = read_stream(relay(upstream, broken=broken))
        failed = events[-1]
        assert (failed["type"], failed["sequence_number"]) == ("response.failed", 2)
        assert failed["response"]["error"] == {"code": "server_error", "message": message}
        assert failed["response"]["usage"]["cost"] == 13_000 / 1e9


@given(st.lists(json_values, max_size=6), st.booleans())
def test_any_upstream_events_end_in_one_closing_event(payloads: list[Any], broken: bool) -> None:
    text = relay(payloads, broken=broken)
    meter = ResponsesMeter()
    for payload in payloads:
        meter.event(upstream_event(payload), payload)
    last = text.rstrip("\n").rsplit("\n\n", 1)[-1]
    assert last.startswith("event: response.")
    closing = msgspec.json.decode(last.split("data: ", 1)[1])
    assert closing["type"] in ("response.completed", "response.incomplete", "response.failed")
    assert closing["response"]["id"] == "gen-1-abc"


ODD_EVENTS: list[Any] = [
    {"type": {"nested": 1}, "response": {}},
    {"type": ["response.completed"], "sequence_number": "7"},
    {"type": 5, "response": None},
    {"type": "response.completed", "response": "not an object"},
    {"type": "response.output_item.done", "output_index": True, "item": {}},
    {"type": "response.output_text.delta", "delta": {"text": 1}},
    None,
    [],
    "text",
]


def test_odd_upstream_events_are_relayed_or_dropped_never_raised() -> None:
    text = relay(ODD_EVENTS)
    meter = ResponsesMeter()
    for payload in ODD_EVENTS:
        meter.event(upstream_event(payload), payload)
    assert text.rstrip("\n").rsplit("\n\n", 1)[-1].startswith("event: response.failed")
