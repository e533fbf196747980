"""OpenAI-compatible routes: ``/chat/completions``, ``/completions``, ``/embeddings``, ``/models``.

Each metered request runs: authenticate (401) → refuse management keys (403)
→ 503 when no upstream is configured → parse the body, resolve ``model`` (400)
→ reserve the worst case (403 ``Key limit exceeded (… limit)``) → forward with
``model`` rewritten and the provider's key → settle the real cost (the
upstream's ``usage``) or the documented estimate (:mod:`modelgates.pricing`),
and report it as ``usage.cost``. Streams are relayed event by event; the
usage chunk we ask the upstream for is stripped unless the client asked too.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterable, Awaitable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
import anyio
import msgspec
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from modelgates.api.body import is_json_content_type, read_body
from modelgates.api.responses import JSONResponse
from modelgates.api.state import services
from modelgates.catalog import GatewayConfig, ModelRoute
from modelgates.errors import (
    BadGateway,
    BadRequest,
    Forbidden,
    ServiceUnavailable,
    UpstreamRejected,
)
from modelgates.money import to_usd
from modelgates.pricing import estimate_tokens, reservation
from modelgates.services.metering import MeteringService, Ticket

log = logging.getLogger(__name__)

T = TypeVar("T")

MANAGEMENT_KEY = "Management keys cannot be used for model requests"
NO_UPSTREAM = (
    "No upstream is configured: start the server with `modelgates serve --config PATH`"
    " (or MODELGATES_CONFIG)"
)
UPSTREAM_UNAVAILABLE = "Upstream unavailable"
UPSTREAM_REJECTED = "Upstream rejected the request"

CHAT = "chat/completions"
COMPLETIONS = "completions"
EMBEDDINGS = "embeddings"
_PROMPT_FIELD = {CHAT: "messages", COMPLETIONS: "prompt", EMBEDDINGS: "input"}

_encoder = msgspec.json.Encoder()


async def _shielded(work: Awaitable[T]) -> T:
    """Finish ``work`` even if the request is being cancelled (money must be booked)."""
    with anyio.CancelScope(shield=True):
        result = await work
    return result


#: What a failed upstream exchange raises: aiohttp's errors, and its read timeouts.
UPSTREAM_ERRORS = (aiohttp.ClientError, TimeoutError)


def _http(request: Request) -> aiohttp.ClientSession:
    client: aiohttp.ClientSession = request.app.state.http
    return client


# --- request parsing --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Parsed:
    body: dict[str, Any]
    route: ModelRoute
    max_tokens: int | None
    stream: bool
    prompt_tokens_estimate: int


async def _parse(request: Request, gateway: GatewayConfig, endpoint: str) -> Parsed:
    if not is_json_content_type(request.headers.get("content-type")):
        raise BadRequest("Content-Type must be application/json")
    raw = await read_body(request, gateway.max_body_bytes)
    try:
        body = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise BadRequest("Malformed JSON body") from exc
    if not isinstance(body, dict):
        raise BadRequest("Request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("model is required", field="model")
    route = gateway.models.get(model)
    if route is None:
        raise BadRequest(f"Unknown model: {model}", field="model")
    max_tokens: int | None = None
    for name in ("max_tokens", "max_completion_tokens"):
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise BadRequest(f"{name} must be an integer >= 0", field=name)
        max_tokens = value if max_tokens is None else max(max_tokens, value)
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise BadRequest("stream must be a boolean", field="stream")
    if endpoint == EMBEDDINGS:
        stream, max_tokens = False, 0
    prompt = body.get(_PROMPT_FIELD[endpoint])
    prompt_bytes = len(_encoder.encode(prompt)) if prompt is not None else 0
    return Parsed(body, route, max_tokens, stream, estimate_tokens(prompt_bytes))


# --- usage ------------------------------------------------------------------


def _reported_usage(payload: dict[str, Any]) -> tuple[int, int] | None:
    """(prompt, completion) tokens from an OpenAI ``usage`` object, if it is sound."""
    usage = payload.get("usage")
    if not isinstance(usage, dict):
        return None
    prompt = usage.get("prompt_tokens")
    completion = usage.get("completion_tokens", 0)
    if completion is None:
        completion = 0
    if not (isinstance(prompt, int) and _is_count(prompt) and _is_count(completion)):
        return None
    return prompt, int(completion)


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _generated_text_bytes(payload: dict[str, Any]) -> int:
    """UTF-8 bytes of the text in ``choices`` (message, delta or completion text)."""
    total = 0
    choices = payload.get("choices")
    if not isinstance(choices, list):
        return 0
    for choice in choices:
        if not isinstance(choice, dict):
            continue
        for holder in (choice.get("message"), choice.get("delta"), choice):
            if isinstance(holder, dict):
                for name in ("content", "text", "reasoning"):
                    text = holder.get(name)
                    if isinstance(text, str):
                        total += len(text.encode("utf-8"))
    return total


def _with_cost(
    payload: dict[str, Any], prompt: int, completion: int, cost: int, estimated: bool
) -> dict[str, Any]:
    usage = payload.get("usage")
    usage = dict(usage) if isinstance(usage, dict) else {}
    if estimated:
        usage.update(
            prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
        )
        usage["estimated"] = True
    usage["cost"] = to_usd(cost)
    return {**payload, "usage": usage}


# --- upstream errors --------------------------------------------------------


def _upstream_message(raw: bytes) -> str | None:
    try:
        body = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        text = raw.decode("utf-8", "replace").strip()
        return text[:500] or None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
        if isinstance(error, str):
            return error
        if isinstance(body.get("message"), str):
            return str(body["message"])
    return None


def _upstream_error(status: int, raw: bytes, route: ModelRoute) -> Exception:
    """4xx → the same status (the upstream's message in metadata); else 502.

    401 and 403 from the upstream concern the gateway's own provider key, not
    the client's: they are reported as 502 so a client never mistakes them for
    a problem with its key.
    """
    metadata = {
        "provider_name": route.provider.name,
        "upstream_status": status,
        "upstream_message": _upstream_message(raw),
    }
    if 400 <= status < 500 and status not in (401, 403, 407):
        return UpstreamRejected(status, UPSTREAM_REJECTED, metadata=metadata)
    error = BadGateway(UPSTREAM_UNAVAILABLE)
    error.metadata = metadata
    return error


# --- handlers ---------------------------------------------------------------


async def chat_completions(request: Request) -> Response:
    return await _proxy(request, CHAT)


async def completions(request: Request) -> Response:
    return await _proxy(request, COMPLETIONS)


async def embeddings(request: Request) -> Response:
    return await _proxy(request, EMBEDDINGS)


async def list_models(request: Request) -> Response:
    gateway = services(request).gateway
    return JSONResponse(
        {
            "object": "list",
            "data": [
                {
                    "id": route.id,
                    "object": "model",
                    "created": 0,
                    "owned_by": route.provider.name,
                    "name": route.id,
                    "context_length": route.context_length,
                    "pricing": {
                        "prompt": f"{route.prompt_price_usd / 1_000_000:.12g}",
                        "completion": f"{route.completion_price_usd / 1_000_000:.12g}",
                    },
                }
                for route in gateway.models.values()
            ],
        }
    )


async def _proxy(request: Request, endpoint: str) -> Response:
    svc = services(request)
    key = await svc.keys.authenticate(request.headers.get("authorization"))
    if key.is_management:
        raise Forbidden(MANAGEMENT_KEY)
    await svc.limiter.enforce(svc.rules.gateway_key, key.hash)
    gateway = svc.gateway
    if not gateway.configured:
        raise ServiceUnavailable(NO_UPSTREAM)
    parsed = await _parse(request, gateway, endpoint)
    route = parsed.route
    amount = reservation(
        route.price, parsed.prompt_tokens_estimate, parsed.max_tokens, gateway.max_request_cost
    )
    ticket = await svc.metering.admit(key, route.id, route.price, amount)

    forwarded = {**parsed.body, "model": route.upstream_model}
    client_wants_usage = False
    if parsed.stream:
        options = parsed.body.get("stream_options")
        options = dict(options) if isinstance(options, dict) else {}
        client_wants_usage = options.get("include_usage") is True
        forwarded["stream_options"] = {**options, "include_usage": True}
    headers = {"content-type": "application/json"}
    if parsed.stream:
        headers["accept"] = "text/event-stream"
    provider_key = route.provider.api_key()
    if provider_key:
        headers["authorization"] = f"Bearer {provider_key}"

    try:
        upstream = await _http(request).post(
            f"{route.provider.base_url}/{endpoint}",
            data=_encoder.encode(forwarded),
            headers=headers,
            allow_redirects=False,
        )
    except BaseException as exc:
        await _shielded(svc.metering.release(ticket))
        if isinstance(exc, UPSTREAM_ERRORS):
            log.warning("upstream %s unreachable: %r", route.provider.name, exc)
            raise BadGateway(UPSTREAM_UNAVAILABLE) from exc
        raise

    if upstream.status >= 400:
        try:
            raw = await upstream.read()
        except UPSTREAM_ERRORS:
            raw = b""
        finally:
            upstream.release()
            await _shielded(svc.metering.release(ticket))
        raise _upstream_error(upstream.status, raw, route)

    is_sse = upstream.headers.get("content-type", "").startswith("text/event-stream")
    if parsed.stream and is_sse:
        relay = StreamRelay(upstream, svc.metering, ticket, parsed, client_wants_usage)
        return RelayResponse(relay)
    return await _complete(upstream, svc.metering, ticket, parsed)


async def _complete(
    upstream: aiohttp.ClientResponse, metering: MeteringService, ticket: Ticket, parsed: Parsed
) -> Response:
    """A non-streamed answer: read it whole, charge it, add ``usage.cost``."""
    try:
        raw = await upstream.read()
        payload = msgspec.json.decode(raw)
        if not isinstance(payload, dict):
            raise ValueError("upstream answer is not a JSON object")
    except (*UPSTREAM_ERRORS, msgspec.DecodeError, ValueError) as exc:
        await _shielded(metering.settle(ticket, parsed.prompt_tokens_estimate, 0, estimated=True))
        raise BadGateway(UPSTREAM_UNAVAILABLE) from exc
    finally:
        upstream.release()
    reported = _reported_usage(payload)
    if reported is None:
        prompt = parsed.prompt_tokens_estimate
        completion = estimate_tokens(_generated_text_bytes(payload))
    else:
        prompt, completion = reported
    cost = await _shielded(metering.settle(ticket, prompt, completion, estimated=reported is None))
    return JSONResponse(
        _with_cost(payload, prompt, completion, cost, reported is None),
        status_code=upstream.status,
    )


# --- streaming --------------------------------------------------------------


async def _lines(chunks: AsyncIterable[bytes]) -> AsyncGenerator[str, None]:
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


@dataclass
class StreamRelay:
    """Relays an upstream SSE stream event by event and settles it exactly once."""

    upstream: aiohttp.ClientResponse
    metering: MeteringService
    ticket: Ticket
    parsed: Parsed
    client_wants_usage: bool
    settled: bool = False
    text_bytes: int = 0
    lines: list[str] = field(default_factory=list)

    async def _settle(self, prompt: int, completion: int, *, estimated: bool) -> int:
        self.settled = True
        return await _shielded(
            self.metering.settle(self.ticket, prompt, completion, estimated=estimated)
        )

    async def _settle_estimate(self) -> None:
        if not self.settled:
            await self._settle(
                self.parsed.prompt_tokens_estimate,
                estimate_tokens(self.text_bytes),
                estimated=True,
            )

    async def _event(self, lines: list[str]) -> bytes | None:
        raw = ("\n".join(lines) + "\n\n").encode("utf-8")
        data = "\n".join(line[5:].removeprefix(" ") for line in lines if line.startswith("data:"))
        if not data or data == "[DONE]":
            return raw
        try:
            payload = msgspec.json.decode(data)
        except msgspec.DecodeError:
            return raw
        if not isinstance(payload, dict):
            return raw
        self.text_bytes += _generated_text_bytes(payload)
        reported = _reported_usage(payload)
        if reported is None or self.settled:
            return raw
        cost = await self._settle(*reported, estimated=False)
        choices = payload.get("choices")
        if not choices and not self.client_wants_usage:
            return None  # the usage chunk only we asked for
        return b"data: " + _encoder.encode(_with_cost(payload, *reported, cost, False)) + b"\n\n"

    async def events(self) -> AsyncGenerator[bytes, None]:
        try:
            try:
                async for line in _lines(self.upstream.content.iter_any()):
                    if line:
                        self.lines.append(line)
                        continue
                    if self.lines:
                        out = await self._event(self.lines)
                        self.lines = []
                        if out is not None:
                            yield out
                if self.lines:
                    out = await self._event(self.lines)
                    if out is not None:
                        yield out
            except UPSTREAM_ERRORS as exc:
                log.warning("upstream stream broke: %r", exc)
                await self._settle_estimate()
                error = {"error": {"code": 502, "message": UPSTREAM_UNAVAILABLE}}
                yield b"data: " + _encoder.encode(error) + b"\n\n"
                return
            await self._settle_estimate()  # the upstream reported no usage
        finally:
            await self._settle_estimate()  # the client went away mid-stream
            self.upstream.release()


class RelayResponse(StreamingResponse):
    """A streaming response that notices a client disconnect under any ASGI version and
    always closes its relay, so an aborted stream is settled at once."""

    def __init__(self, relay: StreamRelay) -> None:
        self._events = relay.events()
        super().__init__(
            self._events,
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as group:

                async def stream() -> None:
                    with contextlib.suppress(OSError):
                        await self.stream_response(send)
                    group.cancel_scope.cancel()

                async def watch() -> None:
                    await self.listen_for_disconnect(receive)
                    group.cancel_scope.cancel()

                group.start_soon(stream)
                group.start_soon(watch)
        finally:
            await _shielded(self._events.aclose())
