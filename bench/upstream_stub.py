"""A stub OpenAI-compatible upstream: ``POST /v1/chat/completions`` answers at once
with a fixed small completion and its ``usage``, so that a gateway benchmark measures
the gateway, not a model. Served like every other benchmark server.

With ``"stream": true`` it streams instead, at the pace of a slow model:
``BENCH_STREAM_CHUNKS`` content chunks (default 20), the first at once and the others
``BENCH_STREAM_INTERVAL_S`` apart (default 0.25 s, as reasoning models send), then a
usage chunk and ``[DONE]``. Chunks are paced against absolute deadlines, so a busy
loop does not stretch a stream beyond its schedule."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from bench.serving import post_app, serve

_encoder = msgspec.json.Encoder()


class Message(msgspec.Struct):
    role: str
    content: str | None = None


class ChatRequest(msgspec.Struct):
    model: str
    messages: list[Message]
    stream: bool = False


def completion(model: str) -> dict[str, object]:
    """The fixed answer, in the shape of an OpenAI chat completion."""
    return {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hi!"},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11},
    }


STREAM_CHUNKS = int(os.environ.get("BENCH_STREAM_CHUNKS", "20"))
STREAM_INTERVAL_S = float(os.environ.get("BENCH_STREAM_INTERVAL_S", "0.25"))


def chunk(model: str, delta: dict[str, str], finish: str | None = None) -> bytes:
    """One ``chat.completion.chunk`` event."""
    payload = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + _encoder.encode(payload) + b"\n\n"


async def paced_stream(model: str) -> AsyncIterator[bytes]:
    """The content chunks on their schedule, then usage and ``[DONE]``."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    for index in range(STREAM_CHUNKS):
        wait = start + index * STREAM_INTERVAL_S - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        last = index == STREAM_CHUNKS - 1
        yield chunk(model, {"content": "tok "}, "stop" if last else None)
    usage = {"prompt_tokens": 9, "completion_tokens": STREAM_CHUNKS}
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    closing = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "model": model}
    yield b"data: " + _encoder.encode({**closing, "choices": [], "usage": usage}) + b"\n\n"
    yield b"data: [DONE]\n\n"


async def chat_completions(request: Request) -> Response:
    try:
        body = msgspec.json.decode(await request.body(), type=ChatRequest)
    except msgspec.MsgspecError as exc:
        error = {"error": {"message": str(exc), "type": "invalid_request_error"}}
        return Response(_encoder.encode(error), 400, media_type="application/json")
    if body.stream:
        return StreamingResponse(paced_stream(body.model), media_type="text/event-stream")
    return Response(_encoder.encode(completion(body.model)), media_type="application/json")


def create_app() -> Starlette:
    return post_app("/v1/chat/completions", chat_completions)


if __name__ == "__main__":
    serve("bench.upstream_stub:create_app")
