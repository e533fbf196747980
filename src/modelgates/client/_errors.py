"""Errors raised by the client library.

::

    ModelGatesClientError              anything this library raises on purpose
    ├── ModelGatesConnectionError      no HTTP answer: refused, DNS, TLS, timeout
    │   └── ModelGatesTimeoutError     the request timed out
    ├── InvalidResponseError           a 2xx answer whose body is not what the API promises
    └── ModelGatesAPIError             the server answered with an error status
        ├── BadRequestError            400: invalid input (``metadata["field"]`` names it)
        ├── AuthenticationError        401: missing, unknown, revoked, expired or disabled key
        ├── PermissionDeniedError      403: not allowed, or a bad/expired code or verifier
        ├── NotFoundError              404: unknown route or resource
        ├── ConflictError              409: the code challenge is bound to a live code
        ├── RateLimitError             429: too many requests
        └── ServerError                5xx: the server failed (500) or is unavailable (503)

Other error statuses (405, 413, ...) raise :class:`ModelGatesAPIError` itself.
Input the client can check before sending (an invalid PKCE verifier, a naive
``datetime``) raises :class:`ValueError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from modelgates.client import _json
from modelgates.client._shape import (
    Fields,
    ShapeError,
    integer,
    json_object,
    nullable,
    record,
    string,
)

__all__ = [
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "InvalidResponseError",
    "ModelGatesAPIError",
    "ModelGatesClientError",
    "ModelGatesConnectionError",
    "ModelGatesTimeoutError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "ServerError",
]


class ModelGatesClientError(Exception):
    """Base class of every error this library raises on purpose."""


class ModelGatesConnectionError(ModelGatesClientError):
    """Raised when no HTTP answer arrived (connection refused, DNS, TLS, reset)."""


class ModelGatesTimeoutError(ModelGatesConnectionError):
    """Raised when connecting, sending or reading timed out."""


class InvalidResponseError(ModelGatesClientError):
    """Raised when a successful answer's body does not have the documented shape."""

    def __init__(self, message: str, *, response: httpx.Response) -> None:
        super().__init__(message)
        self.message = message
        self.response = response


class ModelGatesAPIError(ModelGatesClientError):
    """Raised when the server answered with an error status (its envelope parsed).

    ``status`` is the HTTP status (equal to ``error.code``), ``message`` the
    server's message, ``metadata`` its ``error.metadata`` (``{"field": ...}``
    for invalid input), ``request_id`` the server's ``X-Request-Id``.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        metadata: dict[str, Any] | None = None,
        request_id: str | None = None,
        user_id: str | None = None,
        response: httpx.Response | None = None,
    ) -> None:
        super().__init__(f"{status} {message}")
        self.status = status
        self.message = message
        self.metadata = metadata
        self.request_id = request_id
        self.user_id = user_id
        self.response = response

    @property
    def field(self) -> str | None:
        """The offending request field, when the server named one."""
        value = (self.metadata or {}).get("field")
        return value if isinstance(value, str) else None


class BadRequestError(ModelGatesAPIError):
    """Raised on 400: malformed or invalid input; :attr:`field` names the field."""


class AuthenticationError(ModelGatesAPIError):
    """Raised on 401: the API key is missing, unknown, revoked, expired or disabled."""


class PermissionDeniedError(ModelGatesAPIError):
    """Raised on 403: not allowed (an app key minting keys, a key over its limit),
    or an unknown, used or expired code or a wrong verifier at the exchange."""


class NotFoundError(ModelGatesAPIError):
    """Raised on 404: unknown route or a resource the caller cannot see."""


class ConflictError(ModelGatesAPIError):
    """Raised on 409: the code challenge is already bound to a live code."""


class RateLimitError(ModelGatesAPIError):
    """Raised on 429: too many requests; retry later."""


class ServerError(ModelGatesAPIError):
    """Raised on 5xx: the server failed (500) or a dependency is down (503)."""


_BY_STATUS: dict[int, type[ModelGatesAPIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    429: RateLimitError,
}


@dataclass(frozen=True, slots=True)
class _Envelope:
    """OpenRouter's error envelope, ``{"error": {"code", "message", "metadata"}, "user_id"}``."""

    message: str | None
    metadata: dict[str, Any] | None
    user_id: str | None


def _error_body(fields: Fields) -> tuple[str | None, dict[str, Any] | None]:
    fields.optional("code", nullable(integer), None)  # checked; the HTTP status is what counts
    return (
        fields.optional("message", nullable(string), None),
        fields.optional("metadata", nullable(json_object), None),
    )


def _read_envelope(fields: Fields) -> _Envelope:
    message, metadata = fields.required("error", record(_error_body))
    return _Envelope(message, metadata, fields.optional("user_id", nullable(string), None))


_read = record(_read_envelope)


def _envelope(body: bytes) -> _Envelope | None:
    """The envelope in ``body``, or ``None`` for any body that is not one."""
    try:
        return _read(_json.loads(body), "$")
    except (_json.NotJSONError, ShapeError):
        return None


def error_for(response: httpx.Response) -> ModelGatesAPIError:
    """The typed error for an error ``response``; any body, JSON or not, gives one."""
    status = response.status_code
    envelope = _envelope(response.content)
    metadata = envelope.metadata if envelope else None
    message = envelope.message if envelope else None
    if not message:
        text = response.text.strip() if not envelope else ""
        message = text[:200] if text and len(text) <= 200 else response.reason_phrase
        message = message or f"HTTP {status}"
    request_id = response.headers.get("x-request-id")
    if request_id is None and metadata and isinstance(metadata.get("request_id"), str):
        request_id = metadata["request_id"]
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else ModelGatesAPIError)
    return cls(
        message,
        status=status,
        metadata=metadata,
        request_id=request_id,
        user_id=envelope.user_id if envelope else None,
        response=response,
    )


def transport_error(exc: httpx.TransportError, url: str) -> ModelGatesConnectionError:
    """Wrap an httpx transport failure (the original stays as ``__cause__``)."""
    if isinstance(exc, httpx.TimeoutException):
        return ModelGatesTimeoutError(f"request to {url} timed out")
    detail = str(exc) or type(exc).__name__
    return ModelGatesConnectionError(f"cannot reach {url}: {detail}")
