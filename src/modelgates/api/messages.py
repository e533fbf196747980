"""Anthropic Messages routes: ``POST /messages`` and ``POST /messages/count_tokens``.

What Claude Code and the Anthropic SDKs call, with base URL ``<server>/api``. The
key comes as ``x-api-key`` or ``Authorization: Bearer``; ``anthropic-version``
and ``anthropic-beta`` are accepted and a ``?beta=true`` query is ignored. Errors
are answered in Anthropic's shape (the routes are :data:`~modelgates.api.protocols.
ANTHROPIC` routes in the table), with the statuses of the rest of the API.

A message request is parsed into a :class:`~modelgates.gateway.metered.Call` for
the one metered path, by the protocol of the model's provider:

* ``api = "anthropic"``: passed through unchanged (``model`` rewritten to the
  upstream's, ``anthropic-beta`` forwarded), streamed event by event;
* ``api = "openai"``: translated to a chat completion and its answer back
  (:mod:`modelgates.gateway.translate.anthropic_request` lists what a chat
  upstream cannot use and is dropped), streaming included.

A request without ``max_tokens`` (Anthropic requires one; the gateway does not)
is given the model's ``max_completion_tokens``, else 4096, and reserved for it.

``count_tokens`` charges nothing and writes no record: an ``anthropic`` upstream's
own ``/messages/count_tokens`` answers it; when that upstream has none (404, 405,
501) or fails, and for every other upstream, the answer is the gateway's prompt
estimate (:mod:`modelgates.gateway.estimate`: the UTF-8 bytes of ``system``,
``messages`` and ``tools`` as JSON / 4, images at a fixed count) and says
``"estimated": true``.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response

from modelgates.api.metered import (
    caller,
    json_object,
    metered_key,
    model_route,
    required_max_tokens,
    respond,
    routing_fields,
    stream_flag,
    token_bound,
    translated,
)
from modelgates.api.responses import JSONResponse
from modelgates.api.state import services
from modelgates.catalog import ModelRoute
from modelgates.errors import BadGateway, BadRequest, UpstreamRejected
from modelgates.gateway import estimate, upstream, wire
from modelgates.gateway.anthropic import AnthropicRenderer, ChatAsMessagesRenderer
from modelgates.gateway.metered import Call, Caller, Demand, Renderer, authorize
from modelgates.gateway.translate.anthropic import messages_to_chat
from modelgates.gateway.usage import count
from modelgates.models import ApiKey
from modelgates.tokens import looks_like_api_key

log = logging.getLogger(__name__)

FORWARDED_HEADERS = ("anthropic-beta",)
"""Client headers an ``anthropic`` upstream gets as they are."""
NO_COUNTER = frozenset({404, 405, 501})
"""Upstream statuses that mean it has no ``count_tokens``: the estimate answers."""


async def create_message(request: Request) -> Response:
    svc = services(request)
    key = await metered_key(svc, authorization(request.headers))
    body = await json_object(request, svc.gateway.max_body_bytes)
    model = model_route(svc, body)
    bound = token_bound(body, "max_tokens")
    if bound is None:
        bound = required_max_tokens(model)
        body = {**body, "max_tokens": bound}
    demand = Demand(prompt_tokens(body), max_tokens=bound)
    api, sent, renderer = _for_upstream(model, body, demand)
    call = Call(
        api_type="messages",
        route=model,
        upstream_api=api,
        body=sent,
        demand=demand,
        stream=stream_flag(body),
        caller=_caller(request, key, body),
        upstream_headers=_forwarded(request.headers) if api is wire.ANTHROPIC else {},
        **routing_fields(request, body, model),
    )
    return respond(await svc.metered.run(call, renderer, request.app.state.http))


async def count_tokens(request: Request) -> Response:
    svc = services(request)
    key = await metered_key(svc, authorization(request.headers))
    body = await json_object(request, svc.gateway.max_body_bytes)
    model = model_route(svc, body)
    authorize(key, model.id)  # counting tells about a model: only the ones the key may use
    if model.provider.api == "anthropic":
        counted = await _upstream_count(request, model, body)
        if counted is not None:
            return JSONResponse({"input_tokens": counted})
    else:
        translated(messages_to_chat, body)  # the structure checks the message route makes
    return JSONResponse({"input_tokens": prompt_tokens(body), "estimated": True})


def authorization(headers: Headers) -> str | None:
    """The ``Authorization`` header to authenticate with: ``x-api-key`` (Claude Code with
    ``ANTHROPIC_API_KEY``) or the bearer (``ANTHROPIC_AUTH_TOKEN``, the current SDKs).
    Given both, the one holding a ModelGates key wins, else ``x-api-key``."""
    api_key = headers.get("x-api-key", "").strip()
    bearer = headers.get("authorization")
    if not api_key:
        return bearer
    scheme, _, token = (bearer or "").strip().partition(" ")
    bearer_is_ours = scheme.lower() == "bearer" and looks_like_api_key(token.strip())
    if bearer_is_ours and not looks_like_api_key(api_key):
        return bearer
    return f"Bearer {api_key}"


def prompt_tokens(body: dict[str, Any]) -> int:
    """The prompt estimate of a Messages request (what admission reserves for)."""
    return estimate.prompt_tokens(body.get("system"), body.get("messages"), body.get("tools"))


def _for_upstream(
    model: ModelRoute, body: dict[str, Any], demand: Demand
) -> tuple[wire.UpstreamApi, dict[str, Any], Renderer]:
    """The upstream API, the body in its words, and the renderer of its answer."""
    api = model.provider.api
    if api == "anthropic":
        return wire.ANTHROPIC, body, AnthropicRenderer()
    if api == "openai":
        chat = translated(messages_to_chat, body)
        return wire.CHAT, chat, ChatAsMessagesRenderer(demand.prompt_tokens)
    raise BadRequest(f"Model {model.id} does not support /messages", field="model")


def _caller(request: Request, key: ApiKey, body: dict[str, Any]) -> Caller:
    """The record's caller; Anthropic names the end user in ``metadata.user_id`` and
    Claude Code its session in ``x-claude-code-session-id``."""
    found = caller(request, key, body)
    metadata = body.get("metadata")
    user = metadata.get("user_id") if isinstance(metadata, dict) else None
    session = request.headers.get("x-claude-code-session-id")
    return dataclasses.replace(
        found,
        external_user=user if isinstance(user, str) else found.external_user,
        session_id=session or found.session_id,
    )


def _forwarded(headers: Headers) -> dict[str, str]:
    return {name: headers[name] for name in FORWARDED_HEADERS if name in headers}


async def _upstream_count(request: Request, model: ModelRoute, body: dict[str, Any]) -> int | None:
    """The ``anthropic`` upstream's own count, or ``None`` when it has no counter or
    fails (the estimate answers then); any other refusal is the client's answer."""
    api = wire.ANTHROPIC_COUNT_TOKENS
    sent = api.request(body, model=model.upstream_model, max_tokens=None, stream=False)
    try:
        response = await upstream.send(
            request.app.state.http, model, api, sent,
            stream=False, headers=_forwarded(request.headers),
        )  # fmt: skip
    except UpstreamRejected as exc:
        if exc.status not in NO_COUNTER:
            raise
        return None
    except BadGateway:
        log.info("upstream %s could not count tokens: estimated", model.provider.name)
        return None
    try:
        raw = await response.json(content_type=None)
    except (*upstream.UPSTREAM_ERRORS, ValueError):
        return None
    finally:
        response.release()
    return count(raw.get("input_tokens")) if isinstance(raw, dict) else None
