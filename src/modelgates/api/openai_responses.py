"""``/api/v1/responses``: the OpenAI Responses API (Codex, the ``openai`` SDK's
``client.responses``), metered like every model route.

``POST`` parses the body into a :class:`~modelgates.gateway.metered.Call` for the one
metered-request path, by what the model's provider speaks:

* ``api = "openai-responses"``: the body goes upstream as it came (pass-through),
  but for ``previous_response_id`` (resolved here, see below), ``background``
  (dropped: a response queued upstream would finish out of the gateway's sight,
  unmetered, so every response runs in the foreground) and the output bound the
  budget grants (``max_output_tokens``) when the client named none.
* ``api = "openai"``: translated to chat completions and back, tools and streams
  included (:mod:`modelgates.gateway.translate.responses` lists what a chat
  upstream cannot use and is dropped: non-function tools such as Codex's
  ``namespace`` and ``web_search``, ``include``, ``prompt_cache_key``,
  ``client_metadata``, ``reasoning.summary``…; never a 400).
* ``api = "anthropic"``: 400 (no Responses translation for Messages upstreams).

``store`` (default ``true``, as OpenAI's) keeps the final Response object, with the
conversation it answered, for its key's user (:mod:`modelgates.services.
stored_responses`), before the client reads its last event. ``previous_response_id``
names such a response (unknown, purged or another user's: 404); the gateway
itself prepends the stored conversation and that response's output to ``input``,
for both kinds of upstream, so no upstream needs to have stored anything and a
chain survives a change of model. ``instructions`` are not carried over (as at
OpenAI). ``GET`` and ``DELETE /responses/{id}`` read and delete a stored response.

Errors are the app's one envelope (OpenRouter's), whose ``error.message`` and status
the ``openai`` SDK reads into ``APIStatusError``; in a stream that has begun, a
failure is a ``response.failed`` event.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import replace
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from modelgates.api.metered import (
    caller,
    json_object,
    metered_key,
    model_route,
    respond,
    routing_fields,
    stream_flag,
    token_bound,
)
from modelgates.api.responses import JSONResponse
from modelgates.api.state import services
from modelgates.errors import BadRequest
from modelgates.gateway import estimate, wire
from modelgates.gateway.metered import Answer, Call, Caller, Demand, JsonAnswer, StreamAnswer
from modelgates.gateway.openai_responses import PassThroughRenderer, TranslatedRenderer
from modelgates.gateway.translate import TranslationError
from modelgates.gateway.translate.responses import responses_to_chat
from modelgates.models import ApiKey
from modelgates.services.stored_responses import input_items

JSON = dict[str, Any]
Renderer = PassThroughRenderer | TranslatedRenderer
DROPPED_FOR_PASS_THROUGH = ("previous_response_id", "background")


async def create_response(request: Request) -> Response:
    svc = services(request)
    key = await metered_key(svc, request.headers.get("authorization"))
    body = await json_object(request, svc.gateway.max_body_bytes)
    model = model_route(svc, body)
    if model.provider.api == "anthropic":
        raise BadRequest(f"Model {model.id} does not support /responses", field="model")
    keep = _flag(body, "store", default=True)
    stream = stream_flag(body)
    max_tokens = token_bound(body, "max_output_tokens")
    _check_input(body.get("input"))
    previous = body.get("previous_response_id")
    history = None if previous is None else await svc.responses.history(key, previous)
    conversation = [*(history or []), *input_items(body.get("input"))]
    if model.provider.api == "openai-responses":
        api, sent, renderer, prompt = _pass_through(body, history, conversation)
    else:
        api, sent, renderer, prompt = _translated(body, history)
    call = Call(
        api_type="responses",
        route=model,
        upstream_api=api,
        body=sent,
        demand=Demand(prompt, max_tokens=max_tokens),
        stream=stream,
        caller=_caller(request, key, body),
        **routing_fields(request, body, model),
    )
    answer = await svc.metered.run(call, renderer, request.app.state.http)
    if keep:

        async def store(response: JSON) -> None:
            await svc.responses.keep(key, conversation, response)

        answer = await _stored(answer, renderer, store)
    return respond(answer)


async def get_response(request: Request) -> Response:
    svc = services(request)
    key = await svc.keys.authenticate(request.headers.get("authorization"))
    stored = await svc.responses.get_for(key, request.path_params["id"])
    return JSONResponse(stored.response)


async def delete_response(request: Request) -> Response:
    svc = services(request)
    key = await svc.keys.authenticate(request.headers.get("authorization"))
    response_id: str = request.path_params["id"]
    await svc.responses.delete_for(key, response_id)
    return JSONResponse({"id": response_id, "object": "response", "deleted": True})


def _pass_through(
    body: JSON, history: list[Any] | None, conversation: list[Any]
) -> tuple[wire.UpstreamApi, JSON, Renderer, int]:
    sent = {name: value for name, value in body.items() if name not in DROPPED_FOR_PASS_THROUGH}
    if history is not None:
        sent["input"] = conversation
    prompt = estimate.prompt_tokens(sent.get("instructions"), sent.get("input"), sent.get("tools"))
    return wire.RESPONSES, sent, PassThroughRenderer(body), prompt


def _translated(
    body: JSON, history: list[Any] | None
) -> tuple[wire.UpstreamApi, JSON, Renderer, int]:
    try:
        chat = responses_to_chat(body, history=history)
    except TranslationError as exc:
        raise BadRequest(exc.message, field=exc.field) from exc
    prompt = estimate.prompt_tokens(chat["messages"], chat.get("tools"))
    return wire.CHAT, chat, TranslatedRenderer(body), prompt


def _check_input(value: object) -> None:
    if value is not None and not isinstance(value, str | list):
        raise BadRequest("`input` must be a string or an array of items", field="input")


def _flag(body: JSON, name: str, *, default: bool) -> bool:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise BadRequest(f"{name} must be a boolean", field=name)
    return value


def _caller(request: Request, key: ApiKey, body: JSON) -> Caller:
    """The record's caller; Codex names its session in a ``session-id`` header."""
    found = caller(request, key, body)
    session = request.headers.get("session-id")
    if found.session_id is None and session is not None:
        return replace(found, session_id=session)
    return found


async def _stored(
    answer: Answer, renderer: Renderer, store: Callable[[JSON], Awaitable[None]]
) -> Answer:
    """``answer``, its final Response object stored before the client has all of it."""
    if isinstance(answer, JsonAnswer):
        if renderer.response is not None:
            await store(renderer.response)
        return answer
    return StreamAnswer(_storing(answer.events, renderer, store))


async def _storing(
    events: AsyncGenerator[bytes, None],
    renderer: Renderer,
    store: Callable[[JSON], Awaitable[None]],
) -> AsyncGenerator[bytes, None]:
    """Relays ``events``; the closing event waits until its response is stored, so a
    client may continue it (``previous_response_id``) as soon as it has read it."""
    stored = False
    try:
        async for chunk in events:
            if not stored and renderer.response is not None:
                stored = True
                await store(renderer.response)
            yield chunk
    finally:
        await events.aclose()
