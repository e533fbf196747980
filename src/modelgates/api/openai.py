"""OpenAI-compatible model routes: ``/chat/completions``, ``/completions``, ``/embeddings``.

Each handler only parses its protocol into a :class:`~modelgates.gateway.metered.Call`
and hands it to the one metered-request path with the renderer of its answer;
admission, the upstream call, settlement and the generation record happen there.

A chat request for a model of an ``anthropic`` provider is translated into a
Messages request and its answer back (:mod:`modelgates.gateway.translate.chat_request`
lists what Anthropic cannot use and is dropped; ``n`` above 1 is a 400). A request
without an output bound is given the model's ``max_completion_tokens``, else 4096,
since Anthropic requires one. Completions and embeddings go to ``openai``
providers only.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from modelgates.api.metered import (
    caller,
    json_object,
    metered_key,
    model_route,
    output_count,
    required_max_tokens,
    respond,
    routing_fields,
    stream_flag,
    token_bound,
    translated,
)
from modelgates.api.state import services
from modelgates.errors import BadRequest
from modelgates.gateway import estimate, wire
from modelgates.gateway.metered import Call, Demand, Renderer
from modelgates.gateway.openai import (
    ChatFromMessagesRenderer,
    EmbeddingsRenderer,
    OpenAIRenderer,
)
from modelgates.gateway.translate.anthropic import chat_to_messages


@dataclass(frozen=True, slots=True)
class _Route:
    api: wire.UpstreamApi
    renderer: Renderer
    prompt_fields: tuple[str, ...]


_CHAT = _Route(wire.CHAT, OpenAIRenderer("chat.completion.chunk"), ("messages", "tools"))
_COMPLETIONS = _Route(wire.COMPLETIONS, OpenAIRenderer("text_completion"), ("prompt", "suffix"))
_EMBEDDINGS = _Route(wire.EMBEDDINGS, EmbeddingsRenderer(), ("input",))


async def chat_completions(request: Request) -> Response:
    return await _serve(request, _CHAT)


async def completions(request: Request) -> Response:
    return await _serve(request, _COMPLETIONS)


async def embeddings(request: Request) -> Response:
    return await _serve(request, _EMBEDDINGS)


async def _serve(request: Request, route: _Route) -> Response:
    svc = services(request)
    key = await metered_key(svc, request.headers.get("authorization"))
    body = await json_object(request, svc.gateway.max_body_bytes)
    model = model_route(svc, body)
    demand = _demand(route, body)
    api, sent, renderer = route.api, body, route.renderer
    if model.provider.api == "anthropic" and route is _CHAT:
        bound = demand.max_tokens or required_max_tokens(model)
        demand = dataclasses.replace(demand, max_tokens=bound)
        sent = translated(chat_to_messages, body, default_max_tokens=bound)
        api, renderer = wire.ANTHROPIC, ChatFromMessagesRenderer()
    elif model.provider.api != "openai":
        raise BadRequest(
            f"Model {model.id} does not support /{route.api.path.lstrip('/')}", field="model"
        )
    call = Call(
        api_type=route.api.name,
        route=model,
        upstream_api=api,
        body=sent,
        demand=demand,
        stream=route.api is not wire.EMBEDDINGS and stream_flag(body),
        caller=caller(request, key, body),
        **routing_fields(request, body, model),
    )
    return respond(await svc.metered.run(call, renderer, request.app.state.http))


def _demand(route: _Route, body: dict[str, Any]) -> Demand:
    prompt = estimate.prompt_tokens(*(body.get(name) for name in route.prompt_fields))
    if route.api is wire.EMBEDDINGS:
        return Demand(prompt, has_output=False)
    outputs = output_count(body, "n")
    if route.api is wire.COMPLETIONS:
        outputs = max(outputs, output_count(body, "best_of")) * estimate.batch_size(
            body.get("prompt")
        )
    max_tokens = token_bound(body, "max_tokens", "max_completion_tokens")
    return Demand(prompt, outputs=outputs, max_tokens=max_tokens)
