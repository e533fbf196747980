"""A small upstream speaking the OpenAI Responses API, served by uvicorn in a thread.

It serves ``POST /v1/responses`` the way OpenAI does: a Response object, or
with ``stream: true`` real Responses server-sent events (``event: <type>`` and
``data: {…}`` with a ``sequence_number`` from 0). It is written independently
of the gateway's translation, so tests of the gateway can trust it.

Usage is deterministic: input tokens = the whitespace-separated words of
``instructions`` and of the input's texts (message contents and parts,
function call outputs); output tokens = ``max_output_tokens`` if given, else 5.
The answer is that many ``"tok "``; with ``max_output_tokens`` given the
response is ``incomplete`` (reason ``max_output_tokens``), as if cut there.

The model name picks a behaviour:

=================  ===========================================================
``echo``           answers normally (streams when asked)
``no-usage``       answers without ``usage``
``die``            streams two text deltas, then drops the connection
``fail``           answers 500
``reject``         answers 400 with an OpenAI error body
``tool``           calls the request's first function tool (else ``lookup``)
                   with arguments ``{"query": "tok"}``, call id ``call_stub_1``;
                   once the input ends with a ``function_call_output``, answers as
                   ``stop`` does
``stop``           answers at most 5 tokens, as a model that has said all it had
                   to say: ``completed`` (``incomplete`` only when
                   ``max_output_tokens`` is below 5)
=================  ===========================================================

Every request's path, headers and JSON body are recorded in ``requests``.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import msgspec
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.support.upstream import DEFAULT_COMPLETION_TOKENS, Recorded, Upstream

RESPONSE_ID = "resp_stub_1"
MESSAGE_ID = "msg_stub_1"
CALL_ITEM_ID = "fc_stub_1"
CALL_ID = "call_stub_1"
TOOL_ARGUMENTS = '{"query": "tok"}'


def count_input_words(body: dict[str, Any]) -> int:
    """Whitespace words of ``instructions`` and of every text in ``input``."""
    return _words(body.get("instructions")) + _words(body.get("input"))


def _words(value: Any) -> int:
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, list):
        return sum(_words(item) for item in value)
    if isinstance(value, dict):
        return sum(_words(value.get(name)) for name in ("content", "text", "output"))
    return 0


def _tool_name(body: dict[str, Any]) -> str:
    for tool in body.get("tools") or []:
        if isinstance(tool, dict) and tool.get("type") == "function" and tool.get("name"):
            return str(tool["name"])
    return "lookup"


def _calls_tool(body: dict[str, Any]) -> bool:
    """Whether the ``tool`` behaviour calls its tool now (not once it has the result)."""
    items = body.get("input")
    last = items[-1] if isinstance(items, list) and items else {}
    return body["model"] == "tool" and last.get("type") != "function_call_output"


def _usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens,
    }


def _response(body: dict[str, Any], status: str, output: list[Any], usage: Any) -> dict[str, Any]:
    incomplete = status == "incomplete"
    return {
        "id": RESPONSE_ID,
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "model": body["model"],
        "output": output,
        "usage": usage,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": body.get("reasoning"),
        "store": body.get("store", True),
        "temperature": body.get("temperature"),
        "text": body.get("text", {"format": {"type": "text"}}),
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools", []),
        "top_p": body.get("top_p"),
        "truncation": "disabled",
        "metadata": body.get("metadata", {}),
    }


def _message(text: str, status: str) -> dict[str, Any]:
    content = (
        [{"type": "output_text", "text": text, "annotations": []}]
        if status != "in_progress"
        else []
    )
    return {
        "id": MESSAGE_ID,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": content,
    }


def _call(name: str, arguments: str, status: str) -> dict[str, Any]:
    return {
        "id": CALL_ITEM_ID,
        "type": "function_call",
        "status": status,
        "call_id": CALL_ID,
        "name": name,
        "arguments": arguments,
    }


def make_app(record: list[Recorded]) -> Starlette:
    async def responses(request: Request) -> Response:
        body: dict[str, Any] = msgspec.json.decode(await request.body())
        record.append(Recorded(request.url.path, dict(request.headers), body))
        model = body["model"]
        if model == "fail":
            return JSONResponse(
                {"error": {"message": "boom", "type": "server_error"}}, status_code=500
            )
        if model == "reject":
            return JSONResponse(
                {
                    "error": {
                        "message": "context too long",
                        "type": "invalid_request_error",
                        "param": "input",
                        "code": "context_length_exceeded",
                    }
                },
                status_code=400,
            )
        output_tokens = body.get("max_output_tokens") or DEFAULT_COMPLETION_TOKENS
        status = "incomplete" if body.get("max_output_tokens") else "completed"
        if model in ("stop", "tool") and output_tokens >= DEFAULT_COMPLETION_TOKENS:
            output_tokens, status = DEFAULT_COMPLETION_TOKENS, "completed"
        usage = None if model == "no-usage" else _usage(count_input_words(body), output_tokens)
        if body.get("stream"):
            return StreamingResponse(
                _stream(body, output_tokens, status, usage), media_type="text/event-stream"
            )
        if _calls_tool(body):
            output = [_call(_tool_name(body), TOOL_ARGUMENTS, "completed")]
        else:
            output = [_message("tok " * output_tokens, status)]
        return JSONResponse(_response(body, status, output, usage))

    return Starlette(routes=[Route("/v1/responses", responses, methods=["POST"])])


async def _stream(
    body: dict[str, Any], output_tokens: int, status: str, usage: Any
) -> AsyncIterator[bytes]:
    sequence = 0

    def event(kind: str, **fields: Any) -> bytes:
        nonlocal sequence
        data = {"type": kind, "sequence_number": sequence, **fields}
        sequence += 1
        return f"event: {kind}\ndata: ".encode() + msgspec.json.encode(data) + b"\n\n"

    model = body["model"]
    yield event("response.created", response=_response(body, "in_progress", [], None))
    yield event("response.in_progress", response=_response(body, "in_progress", [], None))
    if _calls_tool(body):
        name = _tool_name(body)
        yield event(
            "response.output_item.added", output_index=0, item=_call(name, "", "in_progress")
        )
        for piece in ('{"query": ', '"tok"}'):
            yield event(
                "response.function_call_arguments.delta",
                item_id=CALL_ITEM_ID,
                output_index=0,
                delta=piece,
            )
        yield event(
            "response.function_call_arguments.done",
            item_id=CALL_ITEM_ID,
            output_index=0,
            arguments=TOOL_ARGUMENTS,
        )
        item = _call(name, TOOL_ARGUMENTS, "completed")
        yield event("response.output_item.done", output_index=0, item=item)
        kind = "response.completed"
        yield event(kind, response=_response(body, "completed", [item], usage))
        return
    at = {"item_id": MESSAGE_ID, "output_index": 0, "content_index": 0}
    yield event("response.output_item.added", output_index=0, item=_message("", "in_progress"))
    yield event(
        "response.content_part.added",
        **at,
        part={"type": "output_text", "text": "", "annotations": []},
    )
    for index in range(output_tokens):
        if model == "die" and index == 2:
            raise RuntimeError("upstream died mid-stream")
        yield event("response.output_text.delta", **at, delta="tok ", logprobs=[])
    text = "tok " * output_tokens
    yield event("response.output_text.done", **at, text=text, logprobs=[])
    yield event(
        "response.content_part.done",
        **at,
        part={"type": "output_text", "text": text, "annotations": []},
    )
    item = _message(text, status)
    yield event("response.output_item.done", output_index=0, item=item)
    kind = "response.incomplete" if status == "incomplete" else "response.completed"
    yield event(kind, response=_response(body, status, [item], usage))


@contextmanager
def running_responses_upstream() -> Iterator[Upstream]:
    """Serve the Responses stub on a free loopback port for the duration of the block."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    upstream = Upstream(f"http://127.0.0.1:{port}")
    config = uvicorn.Config(
        make_app(upstream.requests), log_config=None, lifespan="off", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("Responses stub upstream did not start")
        time.sleep(0.02)
    try:
        yield upstream
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


BEHAVIOURS = ("echo", "stop", "tool", "no-usage", "die", "fail", "reject")
"""The behaviours both stubs share (the chat stub's are in tests/support/upstream.py)."""


def _chat_behaviour(name: str) -> str:
    """The chat stub's behaviour for one of ours: its ``lookup`` is our ``tool`` (its
    own ``tool`` answers as the Anthropic stub's does)."""
    return "lookup" if name == "tool" else name


def responses_gateway_toml(
    chat: Upstream, native: Upstream, *, api_key_env: str = "MG_TEST_UPSTREAM_KEY"
) -> str:
    """A gateway config with each behaviour twice: ``chat/<behaviour>`` on the chat stub
    (``api = "openai"``: the Responses API translated) and ``native/<behaviour>`` on this
    stub (``api = "openai-responses"``: passed through).

    Prices as in ``gateway_toml``: 1000 nano-dollars a prompt token, 2000 a completion
    token. ``max_request_cost`` is 1 USD, so that Codex's long prompt (some 10,000 tokens
    by the estimate) is admitted with room to answer."""
    models = "".join(
        f"""
[[models]]
id = "{prefix}/{name}"
provider = "{prefix}"
upstream_model = "{_chat_behaviour(name) if prefix == "chat" else name}"
prompt_price = 1.0
completion_price = 2.0
context_length = 200000
"""
        for prefix in ("chat", "native")
        for name in BEHAVIOURS
    )
    return f"""
[gateway]
max_request_cost = 1.0
request_timeout_seconds = 30

[providers.chat]
base_url = "{chat.v1}"
api_key_env = "{api_key_env}"

[providers.native]
base_url = "{native.v1}"
api_key_env = "{api_key_env}"
api = "openai-responses"
{models}"""
