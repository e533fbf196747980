"""OpenAI-compatible model routes: ``/chat/completions``, ``/completions``, ``/embeddings``.

Each handler only parses its protocol into a :class:`~modelgates.gateway.metered.Call`
and hands it to the one metered-request path with the renderer of its answer;
admission, the upstream call, settlement and the generation record happen there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from modelgates.api.metered import (
    caller,
    fallback_models,
    json_object,
    metered_key,
    model_route,
    output_count,
    respond,
    stream_flag,
    token_bound,
)
from modelgates.api.state import services
from modelgates.errors import BadRequest
from modelgates.gateway import estimate, wire
from modelgates.gateway.metered import Call, Demand, Renderer
from modelgates.gateway.openai import EmbeddingsRenderer, OpenAIRenderer


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
    if model.provider.api != "openai":
        raise BadRequest(
            f"Model {model.id} does not support /{route.api.path.lstrip('/')}", field="model"
        )
    call = Call(
        api_type=route.api.name,
        route=model,
        upstream_api=route.api,
        body=body,
        demand=_demand(route, body),
        stream=route.api is not wire.EMBEDDINGS and stream_flag(body),
        caller=caller(request, key, body),
        fallbacks=fallback_models(body),
    )
    return respond(await svc.metered.run(call, route.renderer, request.app.state.http))


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
