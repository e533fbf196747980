"""A small Anthropic-compatible upstream (``POST /v1/messages``) for the gateway tests.

The Anthropic twin of :mod:`tests.support.upstream`, with the same deterministic
usage: input tokens = the whitespace-separated words of the prompt (``system``
and ``messages``, tool results included); output tokens = ``max_tokens``, which
Anthropic requires (a request without it is answered 400, as Anthropic does);
the answer is that many ``"tok "``.

The model name picks a behaviour:

=================  ===========================================================
``echo``           answers normally (streams when asked)
``no-usage``       never reports usage
``die``            streams two text deltas, then drops the connection
``slow``           sleeps ``SLOW_SECONDS`` between stream deltas
``fail``           answers 500 with an Anthropic ``api_error`` body
``reject``         answers 400 with an ``invalid_request_error`` body
``tool``           answers with one ``tool_use`` block (the first tool of the
                   request, else ``get_weather``; input ``{"words": <prompt
                   words>}``), streamed in ``input_json_delta`` pieces
``cache``          reports half the prompt words (rounded down) as
                   ``cache_read_input_tokens``, a quarter as
                   ``cache_creation_input_tokens``, the rest as ``input_tokens``
``hello``          answers :data:`~tests.support.upstream.HELLO` whatever
                   ``max_tokens`` says, one delta a word; output tokens = its
                   words, stop reason ``end_turn``
=================  ===========================================================

``POST /v1/messages/count_tokens`` answers ``{"input_tokens": <prompt words>}``
(``system``, ``messages`` and ``tools``: a count the gateway's estimate never
gives for the tests' prompts).

Every request must carry a key, as ``x-api-key`` or (what the current
``anthropic`` SDK sends) ``Authorization: Bearer`` (else 401
``authentication_error``), and ``anthropic-version`` (else 400): tests that
need the gateway to send ``x-api-key`` read it from the recorded headers.
Every request's headers and JSON body are recorded in ``requests``. Streams
are real Anthropic SSE: ``event:`` and ``data:`` lines, a ``ping`` after the
first block starts.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.support.upstream import HELLO, Recorded, Upstream, count_words, serving

SLOW_SECONDS = 0.3
MESSAGE_ID = "msg_stub_01"
TOOL_USE_ID = "toolu_stub_01"
JSON_PIECE = 6
"""Characters of tool input JSON per ``input_json_delta``."""

Event = tuple[str, dict[str, Any]]


def error_body(error_type: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type, "message": message}}


def prompt_usage(model: str, words: int) -> dict[str, int]:
    """The input half of ``usage`` under the ``cache`` rule or the plain one."""
    read, write = (words // 2, words // 4) if model == "cache" else (0, 0)
    return {
        "input_tokens": words - read - write,
        "cache_creation_input_tokens": write,
        "cache_read_input_tokens": read,
    }


def tool_block(body: dict[str, Any], words: int) -> dict[str, Any]:
    tools = body.get("tools") or [{}]
    name = tools[0].get("name") or "get_weather"
    return {"type": "tool_use", "id": TOOL_USE_ID, "name": name, "input": {"words": words}}


def encode(event: Event) -> bytes:
    name, data = event
    return b"event: " + name.encode() + b"\ndata: " + msgspec.json.encode(data) + b"\n\n"


def parse_sse(text: str) -> list[Event]:
    """The ``(event, data)`` pairs of an Anthropic SSE body (for tests reading raw streams)."""
    events = []
    for frame in text.replace("\r\n", "\n").split("\n\n"):
        name, data = "message", ""
        for line in frame.split("\n"):
            if line.startswith("event:"):
                name = line[len("event:") :].strip()
            elif line.startswith("data:"):
                data += line[len("data:") :].strip()
        if data:
            events.append((name, msgspec.json.decode(data)))
    return events


def make_app(record: list[Recorded]) -> Starlette:
    async def messages(request: Request) -> Response:
        body: dict[str, Any] = msgspec.json.decode(await request.body())
        record.append(Recorded(request.url.path, dict(request.headers), body))
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not request.headers.get("x-api-key") and not bearer:
            return JSONResponse(
                error_body("authentication_error", "x-api-key header is required"), 401
            )
        if not request.headers.get("anthropic-version"):
            return JSONResponse(
                error_body("invalid_request_error", "anthropic-version header is required"), 400
            )
        model = body.get("model")
        if model == "fail":
            return JSONResponse(error_body("api_error", "boom"), 500)
        if model == "reject":
            return JSONResponse(error_body("invalid_request_error", "prompt is too long"), 400)
        completion = body.get("max_tokens")
        if not isinstance(completion, int) or completion < 1:
            return JSONResponse(
                error_body("invalid_request_error", "max_tokens: Field required"), 400
            )
        if model == "hello":
            completion = len(HELLO.split())
        words = count_words(body.get("system")) + count_words(body.get("messages"))
        if body.get("stream"):
            events = stream(body, str(model), words, completion)
            return StreamingResponse(events, media_type="text/event-stream")
        return JSONResponse(message(body, str(model), words, completion))

    async def count_tokens(request: Request) -> Response:
        body: dict[str, Any] = msgspec.json.decode(await request.body())
        record.append(Recorded(request.url.path, dict(request.headers), body))
        words = sum(count_words(body.get(name)) for name in ("system", "messages", "tools"))
        return JSONResponse({"input_tokens": words})

    return Starlette(
        routes=[
            Route("/v1/messages", messages, methods=["POST"]),
            Route("/v1/messages/count_tokens", count_tokens, methods=["POST"]),
        ]
    )


def message(body: dict[str, Any], model: str, words: int, completion: int) -> dict[str, Any]:
    if model == "tool":
        content, stop = [tool_block(body, words)], "tool_use"
    elif model == "hello":
        content, stop = [{"type": "text", "text": HELLO}], "end_turn"
    else:
        content, stop = [{"type": "text", "text": "tok " * completion}], "max_tokens"
    answer: dict[str, Any] = {
        "id": MESSAGE_ID,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
    }
    if model != "no-usage":
        answer["usage"] = {**prompt_usage(model, words), "output_tokens": completion}
    return answer


async def stream(
    body: dict[str, Any], model: str, words: int, completion: int
) -> AsyncIterator[bytes]:
    start: dict[str, Any] = {**message(body, model, words, completion), "content": []}
    start["stop_reason"] = None
    if "usage" in start:
        start["usage"] = {**start["usage"], "output_tokens": 1}
    yield encode(("message_start", {"type": "message_start", "message": start}))
    if model == "tool":
        for event in tool_events(tool_block(body, words)):
            yield encode(event)
    else:
        async for event in text_events(model, completion):
            yield encode(event)
    delta: dict[str, Any] = {
        "type": "message_delta",
        "delta": {
            "stop_reason": {"tool": "tool_use", "hello": "end_turn"}.get(model, "max_tokens"),
            "stop_sequence": None,
        },
    }
    if model != "no-usage":
        delta["usage"] = {**prompt_usage(model, words), "output_tokens": completion}
    yield encode(("message_delta", delta))
    yield encode(("message_stop", {"type": "message_stop"}))


def block_start(block: dict[str, Any]) -> list[Event]:
    start = {"type": "content_block_start", "index": 0, "content_block": block}
    return [("content_block_start", start), ("ping", {"type": "ping"})]


def block_delta(delta: dict[str, Any]) -> Event:
    return "content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}


STOP_BLOCK: Event = ("content_block_stop", {"type": "content_block_stop", "index": 0})


async def text_events(model: str, completion: int) -> AsyncIterator[Event]:
    for event in block_start({"type": "text", "text": ""}):
        yield event
    if model == "hello":
        words = HELLO.split()
        for index, word in enumerate(words):
            text = word if index == len(words) - 1 else word + " "
            yield block_delta({"type": "text_delta", "text": text})
        yield STOP_BLOCK
        return
    for index in range(completion):
        if model == "die" and index == 2:
            raise RuntimeError("upstream died mid-stream")
        if model == "slow" and index > 0:
            await asyncio.sleep(SLOW_SECONDS)
        yield block_delta({"type": "text_delta", "text": "tok "})
    yield STOP_BLOCK


def tool_events(block: dict[str, Any]) -> list[Event]:
    arguments = msgspec.json.encode(block["input"]).decode()
    pieces = [""] + [arguments[i : i + JSON_PIECE] for i in range(0, len(arguments), JSON_PIECE)]
    deltas = [block_delta({"type": "input_json_delta", "partial_json": p}) for p in pieces]
    return [*block_start({**block, "input": {}}), *deltas, STOP_BLOCK]


@contextmanager
def running_anthropic_upstream() -> Iterator[Upstream]:
    """Serve the Anthropic stub on a free loopback port for the duration of the block.

    ``upstream.base_url`` is what the Anthropic SDK takes as ``base_url``;
    ``upstream.v1`` is the provider base the gateway appends ``/messages`` to.
    """
    record: list[Recorded] = []
    with serving(make_app(record)) as base_url:
        yield Upstream(base_url, record)


ANTHROPIC_BEHAVIOURS = (
    "echo",
    "no-usage",
    "die",
    "slow",
    "fail",
    "reject",
    "tool",
    "cache",
    "hello",
)
ANTHROPIC_PROVIDER = "claude"


def anthropic_toml(upstream: Upstream, *, api_key_env: str | None = None) -> str:
    """Gateway config lines (to append to :func:`tests.support.upstream.gateway_toml`)
    routing ``claude/<behaviour>`` to this stub through an ``api = "anthropic"``
    provider. Prices as there (1 and 2 USD per million prompt and completion tokens),
    cache reads at 0.5 and cache writes at 1.25."""
    key_line = f'api_key_env = "{api_key_env}"\n' if api_key_env else ""
    models = "".join(
        f"""
[[models]]
id = "{ANTHROPIC_PROVIDER}/{name}"
provider = "{ANTHROPIC_PROVIDER}"
prompt_price = 1.0
completion_price = 2.0
cache_read_price = 0.5
cache_write_price = 1.25
"""
        for name in ANTHROPIC_BEHAVIOURS
    )
    return f"""
[providers.{ANTHROPIC_PROVIDER}]
base_url = "{upstream.v1}"
api = "anthropic"
{key_line}{models}"""
