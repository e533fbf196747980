"""The one metered-request path: admit → call the upstream → settle → record.

Every route that reaches a model (chat completions, completions, embeddings,
Anthropic messages, OpenAI responses) hands this module a :class:`Call`, already
parsed and, where the protocols differ, translated into the upstream's API, plus
a :class:`Renderer` that writes the answer in the client's protocol. What happens
to it is the same for all of them:

0. **Allow.** The model to dispatch, and every model of a fallback list the request
   names, must be within the key's ``allowed_models`` (:func:`authorize`), or the
   request is refused with 403 before anything is reserved or sent.
1. **Admit.** The worst case (prompt estimate at the dearest input price, the
   output bound × outputs at the dearest output price, the per-request price) is
   reserved against every budget of the key (:class:`~modelgates.services.
   metering.MeteringService`), or the request is refused with 403 and nothing is
   charged. A request that names no output bound is granted what its budget
   affords, capped by the model's maximum and the per-request ceiling, and the
   upstream is told so.
2. **Call.** The body goes to the provider (:mod:`modelgates.gateway.upstream`);
   an upstream that fails before answering releases the reservation (free). A model
   with several endpoints, or a request naming other models (``models``) or
   provider preferences (``provider``), is *routed*: the endpoints are tried in the
   order :mod:`modelgates.gateway.routing` plans, skipping those cooling down
   (:mod:`modelgates.gateway.health`), each failure before the first byte (for a
   stream: before its first event) passing the request on to the next. The one
   reservation was made at the dearest candidate's worst case; only the attempt that
   served is charged, at its endpoint's prices.
3. **Settle.** On the answer's last usage report, if it is sound (a
   :class:`~modelgates.gateway.wire.Meter` reads it; counts above the request's
   own bound are unsound), else on the documented estimate
   (:mod:`modelgates.gateway.estimate`); priced by the model
   (:mod:`modelgates.pricing`); capped by the reservation. A stream settles when
   it ends, whether the upstream finished, broke, or the client left.
4. **Record.** The charge and its generation record are one transaction, dated
   when the request was admitted (so a request that spans midnight counts in the
   day it was admitted against); the record is readable (``GET /api/v1/generation``)
   before the client has read the answer's last byte.

Money must be booked even when the request is being cancelled, so settlement and
release run shielded from cancellation.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar

import aiohttp
import anyio
import msgspec

from modelgates import allowlist, metrics
from modelgates.catalog import GatewayConfig, ModelRoute
from modelgates.errors import (
    BadGateway,
    BadRequest,
    ModelGatesError,
    ModelNotAllowed,
    TooManyRequests,
)
from modelgates.gateway import routing, sse, upstream
from modelgates.gateway.health import HealthBoard, MemoryHealth, Policy, State
from modelgates.gateway.routing import ProviderPreferences
from modelgates.gateway.usage import MAX_TOKENS, Usage
from modelgates.gateway.wire import Meter, UpstreamApi
from modelgates.models import ApiKey, Generation
from modelgates.pricing import Cost, Price, estimate_tokens
from modelgates.services.metering import MeteringService, Ticket

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_TEXT_FIELD = 500
"""Longest client-supplied text (user agent, referer, ``user``…) kept in a record."""


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent the request, and what it said about itself (kept in the record)."""

    key: ApiKey
    origin: str | None = None
    referer: str | None = None
    user_agent: str | None = None
    external_user: str | None = None
    session_id: str | None = None


@dataclass(frozen=True, slots=True)
class Demand:
    """What a request may consume: the inputs of its worst case."""

    prompt_tokens: int
    """The prompt estimate (:func:`modelgates.gateway.estimate.prompt_tokens`)."""
    outputs: int = 1
    """Outputs the upstream generates: ``n`` (or ``best_of``) × prompts of a batch."""
    max_tokens: int | None = None
    """The client's output bound per output, or ``None`` when it named none."""
    has_output: bool = True
    """False for embeddings: nothing is generated, nothing is granted."""


@dataclass(frozen=True, slots=True)
class Call:
    """One metered request, ready for the upstream's API."""

    api_type: str
    """The client's protocol: ``chat``, ``completions``, ``embeddings``, ``messages``,
    ``responses`` (the record's ``api_type``)."""
    route: ModelRoute
    upstream_api: UpstreamApi
    body: dict[str, Any]
    """The body in the upstream's API (``model`` and the output bound are set here)."""
    demand: Demand
    stream: bool
    caller: Caller
    upstream_headers: Mapping[str, str] = field(default_factory=dict)
    """Client headers the upstream's API takes as they are (``anthropic-beta``)."""
    started: float = field(default_factory=time.monotonic)
    fallbacks: tuple[str, ...] = ()
    """Other model ids the request names (OpenRouter's ``models``, a fallback list):
    each must be allowed for the key too; the configured ones whose provider speaks
    ``route``'s API are tried after ``route``'s endpoints."""
    preferences: ProviderPreferences | None = None
    """The request's ``provider`` object, shaping the endpoint order."""
    gone: Callable[[], Awaitable[None]] | None = None
    """Returns when the client has disconnected: remaining attempts are cancelled."""
    attempts: tuple[Attempt, ...] = ()
    """Set by the routed path on the call it serves: the endpoints tried before."""


@dataclass(frozen=True, slots=True)
class Attempt:
    """One endpoint tried for a request (the record's ``attempts``)."""

    provider: str
    model: str
    upstream_model: str
    outcome: str
    """:data:`~modelgates.gateway.upstream.Outcome`."""
    status: int | None
    latency_ms: int

    def describe(self) -> str:
        return f"{self.model} via {self.provider} ({self.status or self.outcome})"


@dataclass(frozen=True, slots=True)
class Retries:
    """How far routing goes for one request (settings)."""

    extra_attempts: int = 0
    """Attempts beyond one per endpoint (going round the list again)."""
    attempt_timeout: float = 30.0
    """Seconds one attempt may take to its first byte (first event of a stream)."""


@dataclass(frozen=True, slots=True)
class Head:
    """What every part of an answer names, known once the request is admitted."""

    generation_id: str
    model: str
    """The ModelGates model id that serves (never the upstream's own name)."""
    provider: str
    created: int
    """Unix seconds of the request."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """A settled request, as its answer reports it."""

    head: Head
    usage: Usage
    """What was charged for: the upstream's report, or the estimate."""
    cost: Cost
    """``cost.total`` is the amount charged (capped by the reservation)."""
    estimated: bool


class StreamRenderer(Protocol):
    """Writes one stream's events in the client's protocol."""

    def start(self) -> list[bytes]:
        """Events to send before the upstream's first (may be none)."""
        ...

    def event(self, event: sse.Event, payload: Any) -> list[bytes]:
        """The client's events for one upstream event (``payload``: its JSON data)."""
        ...

    def relay(self, event: sse.Event) -> list[bytes]:
        """What :meth:`event` answers, as the relay asks for it: a renderer that can
        pass an event on (or rewrite it) as bytes does so here, and decodes the rest."""
        return self.event(event, event.json())

    def finish(self, outcome: Outcome) -> list[bytes]:
        """The closing events once the stream is settled, carrying the usage and cost."""
        ...

    def fail(self, outcome: Outcome, message: str) -> list[bytes]:
        """The closing events of a stream the upstream broke (settled all the same)."""
        ...


class Renderer(Protocol):
    """Writes an answer in the client's protocol."""

    def body(self, payload: dict[str, Any], outcome: Outcome) -> dict[str, Any]:
        """The client's body for a whole upstream answer."""
        ...

    def stream(self, head: Head) -> StreamRenderer:
        """The renderer of a streamed answer."""
        ...


@dataclass(frozen=True, slots=True)
class JsonAnswer:
    body: dict[str, Any]
    status: int


@dataclass(frozen=True, slots=True)
class StreamAnswer:
    events: AsyncGenerator[bytes, None]
    """Always closed by its consumer (aclose), which settles a stream cut short."""


Answer = JsonAnswer | StreamAnswer


def authorize(key: ApiKey, model: str, fallbacks: tuple[str, ...] = ()) -> None:
    """403 unless ``key`` may use ``model`` and every model of ``fallbacks`` (a set
    lookup per model: the matcher is built once per distinct allowlist)."""
    if key.allowed_models is None:
        return
    allowed = allowlist.matcher(key.allowed_models)
    if not allowed.allows(model):
        raise ModelNotAllowed(model)
    for other in fallbacks:
        if not allowed.allows(other):
            raise ModelNotAllowed(other, field="models")


def new_generation_id() -> str:
    """``gen-<unix seconds>-<random>``, the shape OpenRouter's ids have."""
    return f"gen-{int(time.time())}-{secrets.token_urlsafe(15)}"


async def _shielded(work: Awaitable[T]) -> T:
    """Finish ``work`` even if the request is being cancelled (money must be booked)."""
    with anyio.CancelScope(shield=True):
        result = await work
    return result


def _system_clock() -> datetime:
    return datetime.now().astimezone()


class MeteredGateway:
    """Runs metered requests (the module docstring is the whole story)."""

    def __init__(
        self,
        metering: MeteringService,
        config: GatewayConfig,
        *,
        health: HealthBoard | None = None,
        retries: Retries | None = None,
        clock: Callable[[], datetime] = _system_clock,
    ) -> None:
        self._metering = metering
        self._config = config
        self.health = health or MemoryHealth(Policy())
        self._retries = retries or Retries()
        self._clock = clock

    async def run(self, call: Call, renderer: Renderer, http: aiohttp.ClientSession) -> Answer:
        """Admit, forward and (for a whole answer) settle ``call``; a stream settles as
        its events are consumed."""
        authorize(call.caller.key, call.route.id, call.fallbacks)
        if call.fallbacks or call.preferences is not None or call.route.endpoints:
            return await self._routed(call, renderer, http)
        route = call.route
        ticket = await self._admit(call, route.price, route.max_completion_tokens)
        granted = ticket.granted_tokens
        body = call.upstream_api.request(
            call.body, model=route.upstream_model, max_tokens=granted, stream=call.stream
        )
        sent = time.monotonic()
        try:
            response = await upstream.send(
                http, route, call.upstream_api, body,
                stream=call.stream, headers=call.upstream_headers,
            )  # fmt: skip
        except BaseException as exc:
            if isinstance(exc, (ModelGatesError, TimeoutError)):
                outcome = upstream.failure_outcome(exc)
                metrics.upstream_attempt(route.provider.name, outcome, time.monotonic() - sent)
            await _shielded(self._metering.release(ticket))
            raise
        first_byte = time.monotonic()
        metrics.upstream_attempt(route.provider.name, "success", first_byte - sent)
        is_sse = response.headers.get("content-type", "").startswith("text/event-stream")
        quiet = upstream.read_timeout(http) if call.stream else None
        if call.stream and is_sse:
            run = _StreamRun(
                self, call, ticket, response, renderer.stream(self._head(call, ticket)),
                read_timeout=quiet,
            )  # fmt: skip
            return StreamAnswer(run.events())
        return await self._complete(call, ticket, response, renderer, first_byte, quiet)

    # 1. admit ---------------------------------------------------------------
    async def _admit(self, call: Call, price: Price, max_completion: int | None) -> Ticket:
        demand = call.demand
        tokens = demand.max_tokens if demand.has_output else 0
        probe = price.ask(demand.prompt_tokens, demand.outputs, tokens, 0)
        ceiling = max(1, probe.affordable(self._config.max_request_cost))
        cap = min(max_completion or MAX_TOKENS, ceiling)
        ask = price.ask(demand.prompt_tokens, demand.outputs, tokens, cap)
        return await self._metering.admit(call.caller.key, ask, new_generation_id())

    # 2. routed: several endpoints, tried in turn ------------------------------
    async def _routed(self, call: Call, renderer: Renderer, http: aiohttp.ClientSession) -> Answer:
        endpoints = routing.plan(self._models(call), call.preferences)
        if not endpoints:
            # OpenRouter answers 503; the preferences are the request's own, so a 400.
            raise BadRequest(
                f"No endpoint of {call.route.id} meets the provider preferences",
                field="provider",
            )
        states = (
            await self.health.states([e.endpoint_key for e in endpoints])
            if len(endpoints) > 1
            else [State()]
        )
        order = _by_health(endpoints, states, self._now())
        price = _dearest([e.price for e, _ in order])
        caps = [e.max_completion_tokens for e, _ in order if e.max_completion_tokens is not None]
        cap = min(caps) if caps else None  # what is granted goes to every candidate
        ticket = await self._admit(call, price, cap)
        try:
            if call.gone is None:
                served = await self._attempts(call, ticket, order, http)
            else:
                served = await _unless_gone(call.gone, self._attempts(call, ticket, order, http))
        except BaseException:
            await _shielded(self._metering.release(ticket))
            raise
        served_call, response, events, first_byte = served
        quiet = upstream.read_timeout(http) if call.stream else None
        if events is not None:
            head = self._head(served_call, ticket)
            run = _StreamRun(
                self, served_call, ticket, response, renderer.stream(head),
                upstream_events=events, read_timeout=quiet,
            )  # fmt: skip
            return StreamAnswer(run.events())
        return await self._complete(served_call, ticket, response, renderer, first_byte, quiet)

    def _models(self, call: Call) -> list[ModelRoute]:
        """``route``, then the configured models of ``fallbacks`` that speak its API."""
        models = [call.route]
        seen = {call.route.id}
        api = call.route.provider.api
        for model_id in call.fallbacks:
            other = self._config.models.get(model_id)
            if other is not None and model_id not in seen and other.provider.api == api:
                models.append(other)
                seen.add(model_id)
        return models

    def _now(self) -> float:
        return self._clock().timestamp()

    async def _attempts(
        self,
        call: Call,
        ticket: Ticket,
        order: list[tuple[ModelRoute, State]],
        http: aiohttp.ClientSession,
    ) -> _Served:
        """Try the endpoints in turn until one answers (module docstring)."""
        retries = self._retries
        deadline = call.started + self._config.request_timeout_seconds
        limit = len(order) + (retries.extra_attempts if len(order) > 1 else 0)
        sequence = [order[i % len(order)] for i in range(limit)]
        tried: list[Attempt] = []
        failures: list[BaseException] = []
        for endpoint, state in sequence:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            now = self._now()
            if state.status(now) == "half-open" and not await self.health.claim_probe(
                endpoint.endpoint_key, now
            ):
                continue
            body = call.upstream_api.request(
                call.body, model=endpoint.upstream_model, max_tokens=ticket.granted_tokens,
                stream=call.stream,
            )  # fmt: skip
            sent = time.monotonic()
            response: aiohttp.ClientResponse | None = None
            events: _Opened | None = None
            try:
                with anyio.fail_after(min(remaining, retries.attempt_timeout)):
                    response = await upstream.send(
                        http, endpoint, call.upstream_api, body,
                        stream=call.stream, headers=call.upstream_headers,
                    )  # fmt: skip
                    is_sse = response.headers.get("content-type", "").startswith(
                        "text/event-stream"
                    )
                    if call.stream and is_sse:
                        events = await _started(response)
            except (ModelGatesError, TimeoutError, *upstream.UPSTREAM_ERRORS) as exc:
                if response is not None:
                    response.release()
                outcome = upstream.failure_outcome(exc)
                if isinstance(exc, aiohttp.ClientError):
                    outcome = "unreachable"
                elapsed = time.monotonic() - sent
                metrics.upstream_attempt(endpoint.provider.name, outcome, elapsed)
                tried.append(_attempt(endpoint, outcome, exc, elapsed))
                log.warning(
                    "upstream %s failed for %s (%s)", endpoint.endpoint_key, endpoint.id, outcome
                )
                if outcome == "rejected":
                    raise
                if len(order) > 1:
                    await self.health.failure(endpoint.endpoint_key, self._now())
                failures.append(exc)
                continue
            first_byte = time.monotonic()
            metrics.upstream_attempt(endpoint.provider.name, "success", first_byte - sent)
            if not state.clean:
                await self.health.success(endpoint.endpoint_key)
            tried.append(_attempt(endpoint, "success", None, first_byte - sent, response.status))
            served = dataclasses.replace(call, route=endpoint, attempts=tuple(tried))
            return served, response, events, first_byte
        raise _all_failed(tried, failures)

    # 3. a whole answer ------------------------------------------------------
    async def _complete(
        self,
        call: Call,
        ticket: Ticket,
        response: aiohttp.ClientResponse,
        renderer: Renderer,
        first_byte: float,
        read_timeout: float | None = None,
    ) -> JsonAnswer:
        """Read, settle and render a whole answer; ``read_timeout``: the bound on a silence
        while reading it, for a request sent without one (a stream's, answered whole)."""
        meter = call.upstream_api.meter()
        quiet = upstream.IdleWatch(response, read_timeout)
        try:
            raw = await response.read()
            payload = msgspec.json.decode(raw)
            if not isinstance(payload, dict):
                raise ValueError("upstream answer is not a JSON object")
        except (*upstream.UPSTREAM_ERRORS, msgspec.DecodeError, ValueError) as exc:
            # The upstream worked on it, so the prompt is charged (by estimate).
            await self._settle(call, ticket, meter, first_byte=first_byte)
            raise BadGateway(upstream.UPSTREAM_UNAVAILABLE) from exc
        finally:
            quiet.cancel()
            response.release()
        meter.body(payload)
        outcome = await self._settle(call, ticket, meter, first_byte=first_byte)
        return JsonAnswer(renderer.body(payload, outcome), response.status)

    # 4 and 5. settle and record ---------------------------------------------
    async def _settle(
        self,
        call: Call,
        ticket: Ticket,
        meter: Meter,
        *,
        first_byte: float | None,
        cancelled: bool = False,
    ) -> Outcome:
        usage, estimated = self._charged_usage(call, ticket, meter)
        cost = call.route.price.cost(usage)
        charged, exceeded = self._metering.capped(ticket, cost.total)
        ended = time.monotonic()
        caller = call.caller
        native = meter.native
        record = Generation(
            id=ticket.id,
            key_hash=caller.key.hash,
            user_id=caller.key.user_id,
            app_id=caller.key.app_id,
            model=call.route.id,
            provider=call.route.provider.name,
            upstream_model=call.route.upstream_model,
            api_type=call.api_type,
            created_at=ticket.admitted_at,
            cost=charged,
            reserved=ticket.reserved,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            cached_tokens=usage.cached_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            prompt_cost=cost.prompt,
            completion_cost=cost.completion,
            request_cost=cost.request,
            estimated=estimated,
            usage_exceeded_reservation=exceeded,
            streamed=call.stream,
            cancelled=cancelled,
            upstream_id=_text(meter.upstream_id),
            finish_reason=_finish_reason(meter.finish_reason),
            native_finish_reason=_text(meter.finish_reason),
            native_tokens_prompt=native.prompt,
            native_tokens_completion=native.completion,
            native_tokens_reasoning=native.reasoning,
            native_tokens_cached=native.cached,
            latency_ms=None if first_byte is None else _ms(first_byte - call.started),
            generation_time_ms=_ms(ended - call.started),
            origin=_text(caller.origin),
            referer=_text(caller.referer),
            user_agent=_text(caller.user_agent),
            external_user=_text(caller.external_user),
            session_id=_text(caller.session_id),
            attempts=_attempts_json(call.attempts),
        )
        await _shielded(self._metering.settle(ticket, record))
        charged_cost = Cost(charged, cost.prompt, cost.completion, cost.request)
        return Outcome(self._head(call, ticket), usage, charged_cost, estimated)

    def _head(self, call: Call, ticket: Ticket) -> Head:
        created = int(ticket.admitted_at.timestamp())
        return Head(ticket.id, call.route.id, call.route.provider.name, created)

    def _charged_usage(self, call: Call, ticket: Ticket, meter: Meter) -> tuple[Usage, bool]:
        """The upstream's last usage report when it is sound for this request, else the
        estimate: a report above the request's own bound is a lie or a bug."""
        demand = call.demand
        per_output = (
            (demand.max_tokens or ticket.granted_tokens or call.route.max_completion_tokens)
            if demand.has_output
            else 0
        )
        completion_bound = MAX_TOKENS if per_output is None else per_output * demand.outputs
        reported = meter.usage
        if reported is not None and reported.completion_tokens <= completion_bound:
            return reported, False
        if meter.reported:
            log.warning(
                "generation %s: unsound usage from %s, charged by estimate",
                ticket.id, call.route.provider.name,
            )  # fmt: skip
        completion = min(estimate_tokens(meter.text_bytes), completion_bound)
        return Usage(demand.prompt_tokens, completion if demand.has_output else 0), True


@dataclass
class _StreamRun:
    """One streamed answer: relays events through the renderer, settles exactly once."""

    gateway: MeteredGateway
    call: Call
    ticket: Ticket
    response: aiohttp.ClientResponse
    renderer: StreamRenderer
    meter: Meter = field(init=False)
    settled: Outcome | None = None
    first_event: float | None = None
    upstream_events: _Opened | None = None
    """The upstream's first events and the splitter that cut them, when routing
    already read them (else everything is read here)."""
    read_timeout: float | None = None
    """The longest silence of the upstream while the stream is read (the request was
    sent without aiohttp's own read timeout: :class:`~modelgates.gateway.upstream.IdleWatch`)."""

    def __post_init__(self) -> None:
        self.meter = self.call.upstream_api.meter()

    async def _settle(self, *, cancelled: bool = False) -> Outcome:
        if self.settled is None:
            self.settled = await self.gateway._settle(
                self.call, self.ticket, self.meter, first_byte=self.first_event,
                cancelled=cancelled,
            )  # fmt: skip
        return self.settled

    def _relay(self, batch: list[sse.Event]) -> bytes:
        """What the client gets for events the upstream sent at once: one write."""
        if self.first_event is None:
            self.first_event = time.monotonic()
        meter, renderer = self.meter, self.renderer
        out: list[bytes] = []
        for event in batch:
            out += renderer.relay(event)
            meter.read(event)  # after: a renderer that decoded the event decoded it for both
        return out[0] if len(out) == 1 else b"".join(out)

    async def events(self) -> AsyncGenerator[bytes, None]:
        """The client's stream: what the upstream sent at once leaves at once, in one
        write (so a relay writes no more often than it reads)."""
        renderer = self.renderer
        quiet: upstream.IdleWatch | None = None
        try:
            opening = renderer.start()
            if opening:
                yield b"".join(opening)
            quiet = upstream.IdleWatch(self.response, self.read_timeout)
            try:
                if self.upstream_events is None:
                    splitter = sse.Splitter()
                else:
                    first, splitter = self.upstream_events
                    if out := self._relay(first):
                        quiet.held = True
                        yield out
                        quiet.held = False
                async for chunk in self.response.content.iter_any():
                    batch = splitter.feed(chunk)
                    if batch and (out := self._relay(batch)):
                        quiet.held = True  # the client's pace, not the upstream's
                        yield out
                        quiet.held = False
                batch = splitter.close()
                if batch and (out := self._relay(batch)):
                    yield out
            except upstream.UPSTREAM_ERRORS as exc:
                log.warning("upstream stream broke: %r", exc)
                outcome = await self._settle()
                failing = renderer.fail(outcome, upstream.UPSTREAM_UNAVAILABLE)
                if failing:
                    yield b"".join(failing)
                return
            outcome = await self._settle()
            closing = renderer.finish(outcome)
            if closing:
                yield b"".join(closing)
        finally:
            if quiet is not None:
                quiet.cancel()
            # The client went away mid-stream (or the stream ended): settle on what the
            # upstream reported so far, or the estimate of what it sent.
            await self._settle(cancelled=self.settled is None)
            self.response.release()


_FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "max_output_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "completed": "stop",
}


def _finish_reason(native: str | None) -> str | None:
    """The finish reason in OpenAI's words (the record's ``finish_reason``)."""
    if native is None:
        return None
    return _FINISH_REASONS.get(native, native)[:100]


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


def _text(value: str | None) -> str | None:
    """Client-supplied text as a record may hold it: bounded, without NUL or lone
    surrogates (which no database column takes)."""
    if value is None:
        return None
    cleaned = value[:MAX_TEXT_FIELD].replace("\x00", "")
    return cleaned.encode("utf-8", "replace").decode("utf-8")


_Opened = tuple[list[sse.Event], sse.Splitter]
"""A stream's first events, and the splitter that cut them (to cut the rest)."""
_Served = tuple[Call, aiohttp.ClientResponse, _Opened | None, float]
"""The call as served (its route the endpoint), the response, the stream's first
events (not relayed yet) and when the first byte came."""


async def _started(response: aiohttp.ClientResponse) -> _Opened:
    """A stream's first events, read here so that a stream that fails before its first
    event fails here (and the next endpoint can be tried); an empty stream is a failure."""
    splitter = sse.Splitter()
    async for chunk in response.content.iter_any():
        if first := splitter.feed(chunk):
            return first, splitter
    if first := splitter.close():
        return first, splitter
    raise BadGateway("upstream stream ended before its first event")


async def _unless_gone(gone: Callable[[], Awaitable[None]], work: Awaitable[T]) -> T:
    """``work``, cancelled when the client disconnects (``gone`` returns)."""
    result: list[T] = []
    failure: list[Exception] = []
    async with anyio.create_task_group() as group:

        async def watch() -> None:
            await gone()
            group.cancel_scope.cancel()

        group.start_soon(watch)
        try:
            result.append(await work)
        except Exception as exc:  # raised as itself, not in the task group's group
            failure.append(exc)
        group.cancel_scope.cancel()
    if failure:
        raise failure[0]
    if not result:
        raise BadGateway("the client disconnected before an upstream answered")
    return result[0]


def _by_health(
    endpoints: list[ModelRoute], states: list[State], now: float
) -> list[tuple[ModelRoute, State]]:
    """The endpoints with their health, those cooling down left out (all of them kept,
    in order, when every one is cooling down: a last resort beats a refusal)."""
    paired = list(zip(endpoints, states, strict=True))
    usable = [(e, s) for e, s in paired if s.status(now) != "cooling"]
    return usable or paired


def _dearest(prices: list[Price]) -> Price:
    """A price at least as dear as each of ``prices`` in every part (the reservation's)."""
    if len(prices) == 1:
        return prices[0]
    return Price(
        prompt=max(max(p.prompt, p.cache_read_price, p.cache_write_price) for p in prices),
        completion=max(max(p.completion, p.reasoning_price) for p in prices),
        request=max(p.request for p in prices),
    )


def _attempt(
    endpoint: ModelRoute,
    outcome: str,
    exc: BaseException | None,
    seconds: float,
    status: int | None = None,
) -> Attempt:
    if status is None:
        status = (getattr(exc, "metadata", None) or {}).get("upstream_status")
    return Attempt(
        endpoint.provider.name, endpoint.id, endpoint.upstream_model, outcome,
        status if isinstance(status, int) else None, _ms(seconds),
    )  # fmt: skip


def _all_failed(tried: list[Attempt], failures: list[BaseException]) -> Exception:
    """The client's error when no endpoint answered: 429 (with the shortest
    ``Retry-After`` any sent) when every one said 429, else 502 listing what was tried."""
    listed = [dataclasses.asdict(a) for a in tried]
    if not tried:
        return BadGateway(
            f"{upstream.UPSTREAM_UNAVAILABLE}: no endpoint could be tried (being probed, or"
            " out of the request's time)"
        )
    if all(a.outcome == "rate_limited" for a in tried):
        waits = [
            int(value)
            for exc in failures
            if isinstance(value := (getattr(exc, "metadata", None) or {}).get("retry_after"), str)
            and value.isdigit()
        ]
        return TooManyRequests(
            "Every upstream is rate limited: " + ", ".join(a.describe() for a in tried),
            headers={"Retry-After": str(min(waits) if waits else 1)},
            metadata={"attempts": listed},
        )
    error = BadGateway("All upstreams failed: " + ", ".join(a.describe() for a in tried))
    error.metadata = {"attempts": listed}
    return error


def _attempts_json(attempts: tuple[Attempt, ...]) -> str | None:
    """The record's ``attempts`` column: ``None`` for a request that was not routed."""
    if not attempts:
        return None
    return msgspec.json.encode([dataclasses.asdict(a) for a in attempts]).decode()
