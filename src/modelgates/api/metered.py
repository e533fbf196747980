"""What every metered route's handler shares: who may call, reading the body, and sending
the answer (whole, or streamed with a watch on the client's connection)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import msgspec
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from modelgates.api.body import is_json_content_type, read_body
from modelgates.api.responses import JSONResponse
from modelgates.catalog import ModelRoute
from modelgates.container import Services
from modelgates.errors import BadRequest, Forbidden, ServiceUnavailable
from modelgates.gateway import routing
from modelgates.gateway.metered import Answer, Caller, JsonAnswer, StreamAnswer
from modelgates.gateway.translate import TranslationError
from modelgates.gateway.usage import MAX_TOKENS
from modelgates.models import ApiKey

MANAGEMENT_KEY = "Management keys cannot be used for model requests"
NO_UPSTREAM = (
    "No upstream is configured: start the server with `modelgates serve --config PATH`"
    " (or MODELGATES_CONFIG)"
)
MAX_OUTPUTS = 128
"""Most outputs one request may ask for (``n``, ``best_of``), as OpenAI allows."""
DEFAULT_MAX_TOKENS = 4096
"""The output bound sent to an upstream whose API requires one (Anthropic's), when
neither the client nor the model's ``max_completion_tokens`` names one."""

T = TypeVar("T")


async def metered_key(svc: Services, authorization: str | None) -> ApiKey:
    """The key of a model request: active (401), not a management key (403), within
    its rate limit (429), and a gateway with upstreams to send it to (503). The key is
    read through the key cache: a change made on any worker applies within 1 s."""
    key = await svc.keys.authenticate(authorization, cached=True)
    if key.is_management:
        raise Forbidden(MANAGEMENT_KEY)
    await svc.limiter.enforce(svc.rules.gateway_key, key.hash)
    if not svc.gateway.configured:
        raise ServiceUnavailable(NO_UPSTREAM)
    return key


async def json_object(request: Request, max_bytes: int) -> dict[str, Any]:
    """The body as a JSON object, or 400."""
    if not is_json_content_type(request.headers.get("content-type")):
        raise BadRequest("Content-Type must be application/json")
    raw = await read_body(request, max_bytes)
    try:
        body = msgspec.json.decode(raw)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise BadRequest("Malformed JSON body") from exc
    if not isinstance(body, dict):
        raise BadRequest("Request body must be a JSON object")
    return body


def model_route(svc: Services, body: dict[str, Any], *, field: str = "model") -> ModelRoute:
    """The configured model the body names, or 400. Without ``model``, the first
    configured model of ``models`` (OpenRouter's fallback list alone is enough)."""
    model = body.get(field)
    listed = body.get("models")
    if model is None and field == "model" and isinstance(listed, list) and listed:
        known = next((m for m in listed if isinstance(m, str) and m in svc.gateway.models), None)
        if known is None:
            first = listed[0] if isinstance(listed[0], str) else ""
            raise BadRequest(f"Unknown model: {first[:200]}", field="models")
        return svc.gateway.models[known]
    if not isinstance(model, str) or not model:
        raise BadRequest(f"{field} is required", field=field)
    route = svc.gateway.models.get(model)
    if route is None:
        raise BadRequest(f"Unknown model: {model[:200]}", field=field)
    return route


MAX_FALLBACKS = 64
"""Most models a fallback list may name."""


def fallback_models(body: dict[str, Any]) -> tuple[str, ...]:
    """The models of the body's fallback lists, for the allowlist: OpenRouter's
    ``models`` (ids) and ``fallbacks`` (``{"model": id}`` objects); 400 naming the field
    when either is not a list of those."""
    found: list[str] = []
    for name in ("models", "fallbacks"):
        entries = body.get(name)
        if entries is None:
            continue
        if not isinstance(entries, list) or len(entries) > MAX_FALLBACKS:
            raise BadRequest(f"{name} must be a list of at most {MAX_FALLBACKS} models", field=name)
        for entry in entries:
            model = entry.get("model") if name == "fallbacks" and isinstance(entry, dict) else entry
            if not isinstance(model, str) or not model:
                shape = "objects with a model id" if name == "fallbacks" else "model ids"
                raise BadRequest(f"{name} must be a list of {shape}", field=name)
            found.append(model)
    return tuple(found)


_NOT_ROUTED: dict[str, Any] = {}


def routing_fields(request: Request, body: dict[str, Any], model: ModelRoute) -> dict[str, Any]:
    """The :class:`~modelgates.gateway.metered.Call` fields of the body's routing: its
    fallback models (``models``, ``fallbacks``), its ``provider`` preferences and, for
    a request that may try several endpoints, the watch on the client's connection
    that cancels the remaining attempts. 400 naming the field when one is malformed."""
    fallbacks = fallback_models(body) if "models" in body or "fallbacks" in body else ()
    preferences = routing.preferences(body) if "provider" in body else None
    if not fallbacks and preferences is None and not model.endpoints:
        return _NOT_ROUTED

    async def gone() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    return {"fallbacks": fallbacks, "preferences": preferences, "gone": gone}


def token_bound(body: dict[str, Any], *names: str) -> int | None:
    """The largest of the output bounds the body names (``max_tokens`` and its aliases):
    integers from 0 to :data:`MAX_TOKENS`, else 400 naming the field."""
    bound: int | None = None
    for name in names:
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TOKENS:
            raise BadRequest(f"{name} must be an integer from 0 to {MAX_TOKENS}", field=name)
        bound = value if bound is None else max(bound, value)
    return bound


def required_max_tokens(route: ModelRoute) -> int:
    """The output bound for an upstream API that requires one, when the client named
    none: the model's ``max_completion_tokens``, else :data:`DEFAULT_MAX_TOKENS`."""
    return route.max_completion_tokens or DEFAULT_MAX_TOKENS


def translated(translate: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``translate(*args, **kwargs)`` (:mod:`modelgates.gateway.translate`), a request the
    client must fix answered 400 naming the field."""
    try:
        return translate(*args, **kwargs)
    except TranslationError as exc:
        raise BadRequest(exc.message, field=exc.field) from exc


def output_count(body: dict[str, Any], name: str) -> int:
    """``n`` or ``best_of``: an integer from 1 to :data:`MAX_OUTPUTS` (default 1), else 400."""
    value = body.get(name, 1)
    if value is None:
        return 1
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_OUTPUTS:
        raise BadRequest(f"{name} must be an integer from 1 to {MAX_OUTPUTS}", field=name)
    return value


def stream_flag(body: dict[str, Any]) -> bool:
    stream = body.get("stream", False)
    if stream is None:
        return False
    if not isinstance(stream, bool):
        raise BadRequest("stream must be a boolean", field="stream")
    return stream


def caller(request: Request, key: ApiKey, body: dict[str, Any]) -> Caller:
    """Who called, for the generation record: headers apps send, and the body's ``user``
    and ``session_id`` (OpenRouter's fields)."""
    headers = request.headers
    user = body.get("user")
    session = body.get("session_id", headers.get("x-session-id"))
    return Caller(
        key=key,
        origin=headers.get("origin"),
        referer=headers.get("http-referer") or headers.get("referer"),
        user_agent=headers.get("user-agent"),
        external_user=user if isinstance(user, str) else None,
        session_id=session if isinstance(session, str) else None,
    )


def respond(answer: Answer) -> Response:
    """The HTTP response for a metered answer."""
    if isinstance(answer, JsonAnswer):
        return JSONResponse(answer.body, status_code=answer.status)
    return RelayResponse(answer)


class RelayResponse(StreamingResponse):
    """A streaming response that notices a client disconnect under any ASGI version and
    always closes its events, so an aborted stream is settled at once."""

    def __init__(self, answer: StreamAnswer) -> None:
        self._events = answer.events
        super().__init__(
            self._events,
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as group:
                # One task more than the request's own, the watch: the events are
                # written from this one, which the watch cancels with the group.

                async def watch() -> None:
                    await self.listen_for_disconnect(receive)
                    group.cancel_scope.cancel()

                group.start_soon(watch)
                with contextlib.suppress(OSError):
                    await self.stream_response(send)
                group.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await self._events.aclose()
