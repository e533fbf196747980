"""Answers of the OpenAI Responses API (``POST /api/v1/responses``), from either kind of
upstream. No I/O.

:class:`PassThroughRenderer` serves an upstream that speaks Responses itself
(``api = "openai-responses"``): its Response object and its events, relabelled
(``id`` the generation id, ``model`` the ModelGates model id, ``usage`` what was
charged, with ``cost`` in USD). In a stream the upstream's closing event
(``response.completed``, ``.incomplete`` or ``.failed``) is held back until the
stream is settled, then sent with the charged usage; a stream the upstream ends
or breaks without one ends with ``response.failed``.

:class:`TranslatedRenderer` serves a chat completions upstream through
:mod:`modelgates.gateway.translate.responses` (the whole answer, or the stream
retold event by event with ``sequence_number``\\ s, ``response.created`` first).

Either way the Response object names its ``provider``, whole bodies carry
``output_text``, a failed stream's response carries the usage charged all the
same, and the final Response object is left in ``response`` for the caller to
store (``store: true``).
"""

from __future__ import annotations

from typing import Any

from modelgates.gateway import sse, views
from modelgates.gateway.metered import Head, Outcome, StreamRenderer
from modelgates.gateway.translate.responses import (
    ChatToResponsesStream,
    chat_to_response,
    relay_event,
    response_with_cost,
    responses_usage,
)
from modelgates.gateway.translate.responses_output import (
    LIFECYCLE_EVENTS,
    output_text,
    response_object,
)
from modelgates.money import to_usd

JSON = dict[str, Any]

CLOSING_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})
ENDED_EARLY = "The upstream ended the stream before the response was complete"


def _cost(outcome: Outcome) -> float:
    return to_usd(outcome.cost.total)


def _event(payload: JSON) -> bytes:
    return sse.named(str(payload["type"]), payload)


class _Kept:
    """Holds the final Response object of one request, once it is known."""

    response: JSON | None = None

    def _keep(self, response: JSON, head: Head) -> JSON:
        response["provider"] = head.provider
        self.response = response
        return response


class PassThroughRenderer(_Kept):
    """A Responses upstream's answer, relabelled (module docstring). One per request."""

    def __init__(self, request: JSON) -> None:
        self.request = request
        previous = request.get("previous_response_id")
        self.previous = previous if isinstance(previous, str) else None
        """Resolved by the gateway, so the upstream never saw it: echoed back here."""

    def echo(self, response: JSON) -> JSON:
        if self.previous is not None:
            response["previous_response_id"] = self.previous
        return response

    def complete(self, response: JSON, head: Head) -> JSON:
        """The final Response object: echoed, with ``output_text``, kept."""
        output = response.get("output")
        items = output if isinstance(output, list) else []
        response["output_text"] = output_text([item for item in items if isinstance(item, dict)])
        return self._keep(self.echo(response), head)

    def body(self, payload: JSON, outcome: Outcome) -> JSON:
        head = outcome.head
        answer = response_with_cost(
            payload, outcome.usage, _cost(outcome), id=head.generation_id, model=head.model
        )
        return self.complete(answer, head)

    def stream(self, head: Head) -> StreamRenderer:
        return _PassThroughStream(self, head)


class _PassThroughStream(StreamRenderer):
    def __init__(self, owner: PassThroughRenderer, head: Head) -> None:
        self.owner = owner
        self.head = head
        self.closing: JSON | None = None
        """The upstream's closing event, held back until the stream is settled."""
        self.items: dict[int, JSON] = {}
        """Output items the upstream completed, by output index."""
        self.next_sequence = 0

    def start(self) -> list[bytes]:
        return []

    def relay(self, event: sse.Event) -> list[bytes]:
        """A delta (or any event without a ``response`` or an ``item``) as it came, under
        its ``type``; the others through :meth:`event`."""
        seen = event.view(views.ResponsesEvent)
        if (
            seen is None
            or event.blob is None
            or not isinstance(seen.type, str)
            or seen.response is not views.UNSET
            or seen.item is not views.UNSET
        ):
            return self.event(event, event.json())
        self._number(seen.sequence_number)
        return [b"event: " + seen.type.encode() + b"\ndata: " + event.blob + b"\n\n"]

    def _number(self, sequence: object) -> None:
        if isinstance(sequence, int) and not isinstance(sequence, bool):
            self.next_sequence = max(self.next_sequence, sequence + 1)

    def event(self, event: sse.Event, payload: Any) -> list[bytes]:
        if not isinstance(payload, dict):
            return [] if event.data == "[DONE]" else [event.raw]
        self._number(payload.get("sequence_number"))
        kind = payload.get("type")
        kind = kind if isinstance(kind, str) else None
        if kind in CLOSING_EVENTS and isinstance(payload.get("response"), dict):
            self.closing = payload
            return []
        if kind == "response.output_item.done":
            self._item_done(payload.get("output_index"), payload.get("item"))
        relabelled = relay_event(payload, id=self.head.generation_id, model=self.head.model)
        if kind in LIFECYCLE_EVENTS and isinstance(relabelled.get("response"), dict):
            self.owner.echo(relabelled["response"])
        if kind is None:
            return [sse.data(relabelled)]
        return [sse.named(kind, relabelled)]

    def _item_done(self, index: object, item: object) -> None:
        if isinstance(index, int) and not isinstance(index, bool) and isinstance(item, dict):
            self.items[index] = item

    def finish(self, outcome: Outcome) -> list[bytes]:
        if self.closing is None:
            return self.fail(outcome, ENDED_EARLY)
        closing = relay_event(
            self.closing,
            id=self.head.generation_id,
            model=self.head.model,
            usage=outcome.usage,
            cost=_cost(outcome),
        )
        self.owner.complete(closing["response"], self.head)
        return [_event(closing)]

    def fail(self, outcome: Outcome, message: str) -> list[bytes]:
        output = [self.items[index] for index in sorted(self.items)]
        response = response_object(
            id=self.head.generation_id,
            model=self.head.model,
            created_at=self.head.created,
            request=self.owner.request,
            status="failed",
            output=output,
            usage=responses_usage(outcome.usage, _cost(outcome)),
            error={"code": "server_error", "message": message},
        )
        event = {
            "type": "response.failed",
            "sequence_number": self.next_sequence,
            "response": self.owner._keep(response, self.head),
        }
        return [_event(event)]


class TranslatedRenderer(_Kept):
    """A chat completions upstream's answer as a Response (module docstring). One per request."""

    def __init__(self, request: JSON) -> None:
        self.request = request

    def body(self, payload: JSON, outcome: Outcome) -> JSON:
        head = outcome.head
        response = chat_to_response(
            payload,
            id=head.generation_id,
            model=head.model,
            created_at=head.created,
            request=self.request,
            usage=outcome.usage,
            cost=_cost(outcome),
        )
        return self._keep(response, head)

    def stream(self, head: Head) -> StreamRenderer:
        return _TranslatedStream(self, head)


class _TranslatedStream(StreamRenderer):
    def __init__(self, owner: TranslatedRenderer, head: Head) -> None:
        self.owner = owner
        self.head = head
        self.events = ChatToResponsesStream(
            id=head.generation_id, model=head.model, created_at=head.created, request=owner.request
        )
        self.upstream_error: str | None = None
        """The message of an error the upstream sent in its stream (it ends the response)."""

    def start(self) -> list[bytes]:
        return [_event(event) for event in self.events.start()]

    def event(self, event: sse.Event, payload: Any) -> list[bytes]:
        if not isinstance(payload, dict):
            return []
        if "error" in payload and "choices" not in payload:
            error = payload["error"]
            message = error.get("message") if isinstance(error, dict) else error
            self.upstream_error = str(message)[:500] if message else "Upstream error"
            return []
        return [_event(out) for out in self.events.feed(payload)]

    def finish(self, outcome: Outcome) -> list[bytes]:
        if self.upstream_error is not None:
            return self.fail(outcome, self.upstream_error)
        events = self.events.finish(outcome.usage, _cost(outcome))
        self._keep_final()
        return [_event(event) for event in events]

    def fail(self, outcome: Outcome, message: str) -> list[bytes]:
        events = self.events.fail(message, "server_error")
        if self.events.response is not None:
            self.events.response["usage"] = responses_usage(outcome.usage, _cost(outcome))
        self._keep_final()
        return [_event(event) for event in events]

    def _keep_final(self) -> None:
        if self.events.response is not None:
            self.owner._keep(self.events.response, self.head)
