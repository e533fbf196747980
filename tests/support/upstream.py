"""A small OpenAI-compatible upstream for the gateway tests, served by uvicorn in a thread.

Usage is deterministic: prompt tokens = the number of whitespace-separated words
in the prompt (``messages[].content``, ``prompt`` or ``input``); completion
tokens = ``max_tokens`` if given, else 5; the answer is that many ``"tok "``.

The upstream model name picks a behaviour, so one server covers every case:

=================  ===========================================================
``echo``           answers normally (streams when asked, usage when asked)
``no-usage``       never reports usage
``die``            streams two chunks, then drops the connection
``slow``           sleeps ``SLOW_SECONDS`` between stream chunks
``fail``           answers 500
``reject``         answers 400 with an OpenAI error body
=================  ===========================================================

Every request's headers and JSON body are recorded in ``requests``.
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
DEFAULT_COMPLETION_TOKENS = 5


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class Upstream:
    base_url: str
    requests: list[Recorded] = field(default_factory=list)

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


def make_app(record: list[Recorded]) -> Starlette:
    async def body_of(request: Request) -> dict[str, Any]:
        body: dict[str, Any] = msgspec.json.decode(await request.body())
        record.append(Recorded(request.url.path, dict(request.headers), body))
        return body

    def usage(prompt: int, completion: int) -> dict[str, int]:
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }

    async def generate(request: Request, kind: str) -> Response:
        body = await body_of(request)
        model = body["model"]
        if model == "fail":
            return JSONResponse({"error": {"message": "boom"}}, status_code=500)
        if model == "reject":
            return JSONResponse(
                {"error": {"message": "context too long", "type": "invalid_request_error"}},
                status_code=400,
            )
        field_name = "messages" if kind == "chat" else "prompt"
        prompt = count_words(body.get(field_name))
        completion = body.get("max_tokens") or DEFAULT_COMPLETION_TOKENS
        with_usage = model != "no-usage"
        if body.get("stream"):
            wants = (body.get("stream_options") or {}).get("include_usage") is True
            return StreamingResponse(
                stream(kind, model, prompt, completion, with_usage and wants),
                media_type="text/event-stream",
            )
        text = "tok " * completion
        if kind == "chat":
            choice: dict[str, Any] = {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "length",
            }
        else:
            choice = {"index": 0, "text": text, "finish_reason": "length", "logprobs": None}
        answer: dict[str, Any] = {
            "id": "cmpl-1",
            "object": "chat.completion" if kind == "chat" else "text_completion",
            "created": int(time.time()),
            "model": model,
            "choices": [choice],
        }
        if with_usage:
            answer["usage"] = usage(prompt, completion)
        return JSONResponse(answer)

    async def stream(
        kind: str, model: str, prompt: int, completion: int, with_usage: bool
    ) -> AsyncIterator[bytes]:
        base = {
            "id": "cmpl-1",
            "object": "chat.completion.chunk" if kind == "chat" else "text_completion",
            "created": int(time.time()),
            "model": model,
        }
        for index in range(completion):
            if model == "die" and index == 2:
                raise RuntimeError("upstream died mid-stream")
            if model == "slow" and index > 0:
                await asyncio.sleep(SLOW_SECONDS)
            if kind == "chat":
                choice: dict[str, Any] = {"index": 0, "delta": {"content": "tok "}}
            else:
                choice = {"index": 0, "text": "tok "}
            choice["finish_reason"] = "length" if index == completion - 1 else None
            chunk: dict[str, Any] = {**base, "choices": [choice]}
            yield b"data: " + msgspec.json.encode(chunk) + b"\n\n"
        if with_usage:
            chunk = {**base, "choices": [], "usage": usage(prompt, completion)}
            yield b"data: " + msgspec.json.encode(chunk) + b"\n\n"
        yield b"data: [DONE]\n\n"

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
def running_upstream() -> Iterator[Upstream]:
    """Serve the fake upstream on a free loopback port for the duration of the block."""
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
            raise RuntimeError("fake upstream did not start")
        time.sleep(0.02)
    try:
        yield upstream
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def gateway_toml(upstream: Upstream, *, api_key_env: str | None = "MG_TEST_UPSTREAM_KEY") -> str:
    """A gateway config routing ``test/<behaviour>`` to the fake upstream's models.

    Prices: 1 USD per million prompt tokens, 2 USD per million completion tokens
    (1000 and 2000 nano-dollars a token).
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
        for name in ("echo", "no-usage", "die", "slow", "fail", "reject")
    )
    return f"""
[gateway]
max_request_cost = 0.001
request_timeout_seconds = 30

[providers.fake]
base_url = "{upstream.v1}"
{key_line}{models}
[[models]]
id = "down/echo"
provider = "nowhere"
prompt_price = 1.0
completion_price = 2.0

[providers.nowhere]
base_url = "http://127.0.0.1:9/v1"
"""
