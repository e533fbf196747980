"""A stub OpenAI-compatible upstream: ``POST /v1/chat/completions`` answers at once
with a fixed small completion and its ``usage``, so that a gateway benchmark measures
the gateway, not a model. Served like every other benchmark server."""

from __future__ import annotations

import time

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from bench.serving import post_app, serve

_encoder = msgspec.json.Encoder()


class Message(msgspec.Struct):
    role: str
    content: str | None = None


class ChatRequest(msgspec.Struct):
    model: str
    messages: list[Message]


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


async def chat_completions(request: Request) -> Response:
    try:
        body = msgspec.json.decode(await request.body(), type=ChatRequest)
    except msgspec.MsgspecError as exc:
        error = {"error": {"message": str(exc), "type": "invalid_request_error"}}
        return Response(_encoder.encode(error), 400, media_type="application/json")
    return Response(_encoder.encode(completion(body.model)), media_type="application/json")


def create_app() -> Starlette:
    return post_app("/v1/chat/completions", chat_completions)


if __name__ == "__main__":
    serve("bench.upstream_stub:create_app")
