"""A small OpenAI-compatible upstream for the gateway tests, served by uvicorn in a thread.

Usage is deterministic: prompt tokens = the number of whitespace-separated words
in the prompt (``messages[].content``, ``prompt`` or ``input``); completion
tokens = ``max_tokens`` if given, else 5; the answer is that many ``"tok "``.

The upstream model name picks a behaviour, so one server covers every case:

=================  ===========================================================
``echo``           answers normally (streams when asked, usage when asked)
``no-usage``       never reports usage
``die``            streams two chunks, then drops the connection
``die-first``      starts a stream, then drops the connection before its first chunk
``limited``        answers 429 with ``Retry-After:`` :data:`RETRY_AFTER`
``hang``           answers nothing for :data:`HANG_SECONDS`
``forbidden``      answers 403
``overloaded``     answers 503
``slow``           sleeps ``SLOW_SECONDS`` between stream chunks
``fail``           answers 500
``reject``         answers 400 with an OpenAI error body
``unauthorized``   answers 401 quoting the provider key it was sent
``inflate``        reports 1000 × the prompt tokens it saw (over the reservation)
``huge``           reports 10**16 completion tokens (absurd)
``negative``       reports -5 completion tokens
``cached``         reports 2 cached prompt tokens and 3 reasoning tokens
``hello``          (chat) answers :data:`HELLO` whatever ``max_tokens`` says, one
                   chunk a word; completion tokens = its words
``tool``           (chat) calls the first tool of the request (else
                   ``get_weather``) with ``{"words": <prompt words>}``, streamed in
                   argument pieces; :data:`TOOL_COMPLETION_TOKENS` completion tokens
``stop``           answers at most 5 tokens, as a model that has said all it had
                   to say: ``finish_reason`` ``stop`` (``length`` only when
                   ``max_tokens`` is below 5)
``lookup``         calls the request's first function tool (else ``lookup``) with
                   arguments ``{"query": "tok"}``, call id ``call_stub_1``
                   (``finish_reason`` ``tool_calls``); once the last message is
                   the tool's result, answers as ``stop`` does
=================  ===========================================================

``n`` answers that many choices per prompt, and a ``/completions`` batch (a list of
prompts) one set per prompt: completion tokens count all of them. A stream with
``stream_options.continuous_usage_stats`` carries the cumulative usage in every
chunk, as vLLM sends it.

Every request's headers and JSON body are recorded in ``requests``. Setting
``Upstream.mode`` to a behaviour's name makes the server answer every request that way,
whatever model it names (``None``: back to normal), so a test can break one of several
servers on demand and mend it again.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import msgspec
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

SLOW_SECONDS = 0.3
HANG_SECONDS = 30.0
RETRY_AFTER = "7"
DEFAULT_COMPLETION_TOKENS = 5
HELLO = "Hello from the stub upstream."
TOOL_CALL_ID = "call_stub_01"
TOOL_COMPLETION_TOKENS = 7
ARGUMENT_PIECE = 6
"""Characters of tool-call arguments per streamed chunk."""
LOOKUP_CALL_ID = "call_stub_1"
LOOKUP_ARGUMENT_PIECES = ('{"query": ', '"tok"}')


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class Switch:
    """The behaviour a server answers every request with, whatever the model (``None``:
    the model's own)."""

    mode: str | None = None


@dataclass
class Upstream:
    base_url: str
    requests: list[Recorded] = field(default_factory=list)
    switch: Switch = field(default_factory=Switch)

    @property
    def mode(self) -> str | None:
        return self.switch.mode

    @mode.setter
    def mode(self, value: str | None) -> None:
        self.switch.mode = value

    @property
    def v1(self) -> str:
        return self.base_url + "/v1"


def count_words(value: Any) -> int:
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, list):
        return sum(count_words(item) for item in value)
    if isinstance(value, dict):
        return count_words(value.get("content")) + count_words(value.get("text"))
    return 0


def _calls_tool(body: dict[str, Any]) -> bool:
    """Whether the ``lookup`` behaviour calls its tool now (not once it has the result)."""
    messages = body.get("messages") or [{}]
    return bool(body["model"] == "lookup" and messages[-1].get("role") != "tool")


def _tool_call(body: dict[str, Any], prompt: int) -> Response:
    """The ``lookup`` behaviour's call of the first function tool, whole or streamed."""
    names = [t["function"]["name"] for t in body.get("tools") or [] if t.get("type") == "function"]
    name = names[0] if names else "lookup"
    arguments = "".join(LOOKUP_ARGUMENT_PIECES)
    usage = {"prompt_tokens": prompt, "completion_tokens": 3, "total_tokens": prompt + 3}
    base = {"id": "cmpl-1", "created": int(time.time()), "model": body["model"]}
    call = {"id": LOOKUP_CALL_ID, "type": "function", "function": {"name": name}}
    if not body.get("stream"):
        message = {
            "role": "assistant",
            "content": None,
            "tool_calls": [{**call, "function": {"name": name, "arguments": arguments}}],
        }
        choice = {"index": 0, "message": message, "finish_reason": "tool_calls"}
        return JSONResponse(
            {**base, "object": "chat.completion", "choices": [choice], "usage": usage}
        )  # fmt: skip

    async def chunks() -> AsyncIterator[bytes]:
        first = {**call, "index": 0, "function": {"name": name, "arguments": ""}}
        deltas = [{"tool_calls": [first]}] + [
            {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
            for piece in LOOKUP_ARGUMENT_PIECES
        ]
        for step, delta in enumerate(deltas):
            finish = "tool_calls" if step == len(deltas) - 1 else None
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            chunk = {**base, "object": "chat.completion.chunk", "choices": [choice]}
            yield b"data: " + msgspec.json.encode(chunk) + b"\n\n"
        chunk = {**base, "object": "chat.completion.chunk", "choices": [], "usage": usage}
        yield b"data: " + msgspec.json.encode(chunk) + b"\n\ndata: [DONE]\n\n"

    return StreamingResponse(chunks(), media_type="text/event-stream")


def make_app(record: list[Recorded], switch: Switch | None = None) -> Starlette:
    switch = switch or Switch()

    async def body_of(request: Request) -> dict[str, Any]:
        body: dict[str, Any] = msgspec.json.decode(await request.body())
        record.append(Recorded(request.url.path, dict(request.headers), body))
        if switch.mode is not None:
            body = {**body, "model": switch.mode}
        return body

    async def failure(model: str) -> Response | None:
        """The answer of a behaviour that fails before answering, else ``None``."""
        if model == "limited":
            error = {"error": {"message": "rate limited", "type": "rate_limit_error"}}
            return JSONResponse(error, status_code=429, headers={"Retry-After": RETRY_AFTER})
        if model == "hang":
            await asyncio.sleep(HANG_SECONDS)
        if model == "forbidden":
            return JSONResponse({"error": {"message": "forbidden"}}, status_code=403)
        if model == "overloaded":
            return JSONResponse({"error": {"message": "overloaded"}}, status_code=503)
        return None

    def usage(model: str, prompt: int, completion: int) -> dict[str, Any]:
        reported: dict[str, Any] = {
            "prompt_tokens": prompt * 1000 if model == "inflate" else prompt,
            "completion_tokens": {"huge": 10**16, "negative": -5}.get(model, completion),
        }
        reported["total_tokens"] = reported["prompt_tokens"] + reported["completion_tokens"]
        if model == "cached":
            reported["prompt_tokens_details"] = {"cached_tokens": 2}
            reported["completion_tokens_details"] = {"reasoning_tokens": 3}
        return reported

    async def generate(request: Request, kind: str) -> Response:
        body = await body_of(request)
        model = body["model"]
        if model == "fail":
            return JSONResponse({"error": {"message": "boom"}}, status_code=500)
        failed = await failure(model)
        if failed is not None:
            return failed
        if model == "reject":
            return JSONResponse(
                {"error": {"message": "context too long", "type": "invalid_request_error"}},
                status_code=400,
            )
        if model == "unauthorized":
            key = request.headers.get("authorization", "")
            message = f"Incorrect API key provided: {key.removeprefix('Bearer ')}"
            return JSONResponse({"error": {"message": message}}, status_code=401)
        prompts: list[Any] = [body.get("messages")]
        if kind != "chat":
            raw = body.get("prompt")
            is_batch = isinstance(raw, list) and bool(raw) and not isinstance(raw[0], int)
            prompts = list(raw) if isinstance(raw, list) and is_batch else [raw]
        n = body.get("n") or 1
        prompt = count_words(prompts)
        if kind == "chat" and model in ("hello", "tool"):
            return scripted(body, model, prompt)
        if _calls_tool(body):
            return _tool_call(body, prompt)
        per_choice = body.get("max_tokens") or DEFAULT_COMPLETION_TOKENS
        finish = "length"
        if model in ("stop", "lookup") and per_choice >= DEFAULT_COMPLETION_TOKENS:
            per_choice, finish = DEFAULT_COMPLETION_TOKENS, "stop"
        choices = n * len(prompts)
        with_usage = model != "no-usage"
        if body.get("stream"):
            options = body.get("stream_options") or {}
            wants = options.get("include_usage") is True
            continuous = options.get("continuous_usage_stats") is True
            return StreamingResponse(
                stream(kind, model, prompt, per_choice, choices, with_usage and wants,
                       with_usage and continuous, finish),
                media_type="text/event-stream",
            )  # fmt: skip
        text = "tok " * per_choice
        answer: dict[str, Any] = {
            "id": "cmpl-1",
            "object": "chat.completion" if kind == "chat" else "text_completion",
            "created": int(time.time()),
            "model": model,
            "choices": [choice(kind, index, text, finish) for index in range(choices)],
        }
        if with_usage:
            answer["usage"] = usage(model, prompt, per_choice * choices)
        return JSONResponse(answer)

    def choice(kind: str, index: int, text: str, finish: str) -> dict[str, Any]:
        if kind == "chat":
            message = {"role": "assistant", "content": text}
            return {"index": index, "message": message, "finish_reason": finish}
        return {"index": index, "text": text, "finish_reason": finish, "logprobs": None}

    async def stream(
        kind: str,
        model: str,
        prompt: int,
        per_choice: int,
        choices: int,
        with_usage: bool,
        continuous: bool,
        finish: str,
    ) -> AsyncIterator[bytes]:
        base = {
            "id": "cmpl-1",
            "object": "chat.completion.chunk" if kind == "chat" else "text_completion",
            "created": int(time.time()),
            "model": model,
        }
        for step in range(per_choice):
            if (model == "die" and step == 2) or (model == "die-first" and step == 0):
                raise RuntimeError("upstream died mid-stream")
            if model == "slow" and step > 0:
                await asyncio.sleep(SLOW_SECONDS)
            deltas = []
            for index in range(choices):
                part: dict[str, Any] = (
                    {"index": index, "delta": {"content": "tok "}}
                    if kind == "chat"
                    else {"index": index, "text": "tok "}
                )
                part["finish_reason"] = finish if step == per_choice - 1 else None
                deltas.append(part)
            chunk: dict[str, Any] = {**base, "choices": deltas}
            if continuous:
                chunk["usage"] = usage(model, prompt, (step + 1) * choices)
            yield b"data: " + msgspec.json.encode(chunk) + b"\n\n"
        if with_usage:
            chunk = {**base, "choices": [], "usage": usage(model, prompt, per_choice * choices)}
            yield b"data: " + msgspec.json.encode(chunk) + b"\n\n"
        yield b"data: [DONE]\n\n"

    def scripted(body: dict[str, Any], model: str, prompt: int) -> Response:
        """The ``hello`` and ``tool`` answers, whole or streamed."""
        if model == "hello":
            pieces = [word + " " for word in HELLO.split()]
            pieces[-1] = pieces[-1].rstrip()
            deltas: list[dict[str, Any]] = [{"content": piece} for piece in pieces]
            message: dict[str, Any] = {"role": "assistant", "content": HELLO}
            finish, completion = "stop", len(pieces)
        else:
            tools = body.get("tools") or [{}]
            name = (tools[0].get("function") or {}).get("name") or "get_weather"
            arguments = msgspec.json.encode({"words": prompt}).decode()
            call = {"id": TOOL_CALL_ID, "type": "function",
                    "function": {"name": name, "arguments": arguments}}  # fmt: skip
            message = {"role": "assistant", "content": None, "tool_calls": [call]}
            first = {**call, "index": 0, "function": {"name": name, "arguments": ""}}
            pieces = [
                arguments[i : i + ARGUMENT_PIECE] for i in range(0, len(arguments), ARGUMENT_PIECE)
            ]
            deltas = [{"tool_calls": [first]}] + [
                {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]} for piece in pieces
            ]
            finish, completion = "tool_calls", TOOL_COMPLETION_TOKENS
        reported = usage(model, prompt, completion)
        base = {"id": "cmpl-1", "created": int(time.time()), "model": model}
        if not body.get("stream"):
            choice = {"index": 0, "message": message, "finish_reason": finish}
            return JSONResponse({**base, "object": "chat.completion", "choices": [choice],
                                 "usage": reported})  # fmt: skip
        chunk_base = {**base, "object": "chat.completion.chunk"}
        wants = (body.get("stream_options") or {}).get("include_usage") is True

        async def events() -> AsyncIterator[bytes]:
            for index, delta in enumerate(deltas):
                last = index == len(deltas) - 1
                part = {"index": 0, "delta": delta, "finish_reason": finish if last else None}
                yield b"data: " + msgspec.json.encode({**chunk_base, "choices": [part]}) + b"\n\n"
            if wants:
                chunk = {**chunk_base, "choices": [], "usage": reported}
                yield b"data: " + msgspec.json.encode(chunk) + b"\n\n"
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    async def chat(request: Request) -> Response:
        return await generate(request, "chat")

    async def completions(request: Request) -> Response:
        return await generate(request, "completions")

    async def embeddings(request: Request) -> Response:
        body = await body_of(request)
        if body["model"] == "fail":
            return JSONResponse({"error": {"message": "boom"}}, status_code=500)
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        answer: dict[str, Any] = {
            "object": "list",
            "model": body["model"],
            "data": [
                {"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]}
                for i in range(len(inputs))
            ],
        }
        if body["model"] != "no-usage":
            prompt = count_words(inputs)
            answer["usage"] = {"prompt_tokens": prompt, "total_tokens": prompt}
        return JSONResponse(answer)

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1/completions", completions, methods=["POST"]),
            Route("/v1/embeddings", embeddings, methods=["POST"]),
        ]
    )


@contextmanager
def serving(app: Starlette, port: int = 0) -> Iterator[str]:
    """Serve ``app`` on a loopback port (default: a free one) for the duration of the block;
    yields its base URL."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    port = sock.getsockname()[1]
    # A stub's own shutdown does not wait for requests it was told to hang on.
    config = uvicorn.Config(
        app, log_config=None, lifespan="off", access_log=False, timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("fake upstream did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@contextmanager
def running_upstream() -> Iterator[Upstream]:
    """Serve the fake upstream on a free loopback port for the duration of the block."""
    record: list[Recorded] = []
    switch = Switch()
    with serving(make_app(record, switch)) as base_url:
        yield Upstream(base_url, record, switch)


def gateway_toml(upstream: Upstream, *, api_key_env: str | None = "MG_TEST_UPSTREAM_KEY") -> str:
    """A gateway config routing ``test/<behaviour>`` to the fake upstream's models.

    Prices: 1 USD per million prompt tokens, 2 USD per million completion tokens
    (1000 and 2000 nano-dollars a token). ``test/priced`` (the ``cached`` behaviour)
    also prices cached prompt tokens (500), reasoning tokens (4000), each request
    (10,000 nano-dollars) and caps a request's output at 50 tokens.
    """
    key_line = f'api_key_env = "{api_key_env}"\n' if api_key_env else ""
    models = "".join(
        f"""
[[models]]
id = "test/{name}"
provider = "fake"
prompt_price = 1.0
completion_price = 2.0
context_length = 4096
"""
        for name in (
            "echo",
            "no-usage",
            "die",
            "slow",
            "fail",
            "reject",
            "unauthorized",
            "inflate",
            "huge",
            "negative",
            "cached",
            "hello",
            "tool",
            "stop",
            "lookup",
        )
    )
    priced = """
[[models]]
id = "test/priced"
provider = "fake"
upstream_model = "cached"
prompt_price = 1.0
completion_price = 2.0
cache_read_price = 0.5
reasoning_price = 4.0
request_price = 0.00001
max_completion_tokens = 50
"""
    return f"""
[gateway]
max_request_cost = 0.001
request_timeout_seconds = 30

[providers.fake]
base_url = "{upstream.v1}"
{key_line}{models}{priced}
[[models]]
id = "down/echo"
provider = "nowhere"
prompt_price = 1.0
completion_price = 2.0

[providers.nowhere]
base_url = "http://127.0.0.1:9/v1"
"""
