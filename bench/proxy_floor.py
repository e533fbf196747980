"""The floor of any gateway on this stack: a bare proxy to the stub upstream.

``POST /api/v1/chat/completions`` decodes the JSON body, rewrites ``model``, forwards
it with the same pooled aiohttp client ModelGates uses, decodes the answer and sends
it back; a streamed request (``"stream": true``) is relayed as the bytes arrive. No
key, no limit, no metering, no logs of its own. Whatever it costs, every
gateway built from Starlette, uvicorn and aiohttp pays too, so the gateway's ratio
to the stub called directly can be read against this one. Served like every other
benchmark server; the stub's address comes from ``BENCH_UPSTREAM_URL``.

``BENCH_CLIENT=httpx`` swaps the upstream client for httpx (non-streamed requests),
so ``scripts/bench --stacks`` can weigh one client against the other on this floor.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

import aiohttp
import httpx
import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from bench.serving import post_app, serve

_encoder = msgspec.json.Encoder()


async def chat_completions(request: Request) -> Response:
    body = msgspec.json.decode(await request.body())
    body["model"] = "stub"
    pooled: httpx.AsyncClient | None = request.app.state.httpx
    if pooled is not None and not body.get("stream"):
        sent = await pooled.post(
            request.app.state.upstream,
            content=_encoder.encode(body),
            headers={"content-type": "application/json"},
        )
        answer = msgspec.json.decode(sent.content)
        return Response(_encoder.encode(answer), sent.status_code, media_type="application/json")
    session: aiohttp.ClientSession = request.app.state.http
    if body.get("stream"):
        return await relay(session, request.app.state.upstream, body)
    async with session.post(
        request.app.state.upstream,
        data=_encoder.encode(body),
        headers={"content-type": "application/json"},
    ) as upstream:
        answer = msgspec.json.decode(await upstream.read())
    return Response(_encoder.encode(answer), upstream.status, media_type="application/json")


async def relay(session: aiohttp.ClientSession, url: str, body: dict[str, object]) -> Response:
    """The upstream's stream, passed on chunk by chunk as the socket delivers it."""
    upstream = await session.post(
        url, data=_encoder.encode(body), headers={"content-type": "application/json"}
    )

    async def chunks() -> AsyncIterator[bytes]:
        try:
            async for chunk in upstream.content.iter_any():
                yield chunk
        finally:
            upstream.release()

    return StreamingResponse(chunks(), upstream.status, media_type="text/event-stream")


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    app.state.upstream = os.environ["BENCH_UPSTREAM_URL"].rstrip("/") + "/v1/chat/completions"
    app.state.httpx = None
    async with contextlib.AsyncExitStack() as stack:
        app.state.http = await stack.enter_async_context(
            aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=30.0), trust_env=False
            )
        )
        if os.environ.get("BENCH_CLIENT") == "httpx":
            limits = httpx.Limits(max_connections=None, max_keepalive_connections=1000)
            app.state.httpx = await stack.enter_async_context(
                httpx.AsyncClient(limits=limits, trust_env=False, timeout=30.0)
            )
        yield


def create_app() -> Starlette:
    return post_app("/api/v1/chat/completions", chat_completions, lifespan=lifespan)


if __name__ == "__main__":
    serve("bench.proxy_floor:create_app")
