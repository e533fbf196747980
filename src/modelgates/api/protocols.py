"""Which protocol a route speaks, and how each protocol shapes an error.

A client parses errors in its own protocol's shape: OpenRouter and OpenAI clients
read ``{"error": {"code", "message", "metadata"}, "user_id"}``, the Anthropic SDKs
and Claude Code ``{"type": "error", "error": {"type", "message"}}``. The statuses
are the same everywhere; only the envelope differs. So a route names its protocol
(:class:`ProtocolRoute`), Starlette keeps the matched route in ``scope["route"]``
(for a wrong method too), and the app's error handlers, which turn every failure
into an :class:`ApiError`, hand it to that protocol's renderer
(:data:`ERROR_RENDERERS`). No error is classified by its message text, and a new
protocol adds one renderer to the table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Scope

from modelgates.api.responses import JSONResponse, error_body
from modelgates.gateway.translate.anthropic import anthropic_error, error_type_for_status

OPENROUTER = "openrouter"
"""The default: OpenRouter's envelope (every route that names no other protocol)."""
ANTHROPIC = "anthropic"
"""Anthropic Messages (``/messages``, ``/messages/count_tokens``)."""


@dataclass(frozen=True, slots=True)
class ApiError:
    """An error as the client will see it, before its protocol shapes it."""

    status: int
    message: str
    request_id: str
    metadata: dict[str, Any] | None = None
    headers: Mapping[str, str] | None = None


ErrorRenderer = Callable[[ApiError], Response]


def openrouter_error(error: ApiError) -> Response:
    """OpenRouter's envelope; ``metadata`` always carries the request id."""
    metadata = {**(error.metadata or {}), "request_id": error.request_id}
    body = error_body(error.status, error.message, metadata)
    return JSONResponse(body, status_code=error.status, headers=error.headers)


def anthropic_error_response(error: ApiError) -> Response:
    """Anthropic's error body, its ``error.type`` chosen by the status (as the Anthropic
    SDKs pick their exception class), and the request id as Anthropic sends it."""
    body = anthropic_error(error.message, error_type_for_status(error.status))
    body["request_id"] = error.request_id
    return JSONResponse(body, status_code=error.status, headers=error.headers)


ERROR_RENDERERS: dict[str, ErrorRenderer] = {
    OPENROUTER: openrouter_error,
    ANTHROPIC: anthropic_error_response,
}


class ProtocolRoute(Route):
    """A route whose errors are answered in ``protocol``'s shape (a key of
    :data:`ERROR_RENDERERS`)."""

    def __init__(
        self,
        path: str,
        endpoint: Callable[..., Any],
        *,
        protocol: str,
        methods: list[str] | None = None,
    ) -> None:
        if protocol not in ERROR_RENDERERS:
            raise ValueError(f"no error renderer for protocol {protocol!r}")
        super().__init__(path, endpoint, methods=methods)
        self.protocol = protocol


def protocol_of(scope: Scope) -> str:
    """The protocol of the route that matched (path and method, or path alone)."""
    protocol = getattr(scope.get("route"), "protocol", OPENROUTER)
    return protocol if protocol in ERROR_RENDERERS else OPENROUTER


def error_response(scope: Scope, error: ApiError) -> Response:
    """``error`` in the envelope of the protocol the request's route speaks."""
    return ERROR_RENDERERS[protocol_of(scope)](error)
