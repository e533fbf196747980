"""Errors that carry their own HTTP status and message.

Every failure a client can cause is one of these; the API renders them all
through the handlers in :mod:`modelgates.app` into OpenRouter's
envelope ``{"error": {"code", "message", "metadata"}, "user_id"}``::

    ModelGatesError            status + message (+ metadata)
    ├── BadRequest             400: malformed or invalid input, names the field
    ├── Unauthorized           401: missing, unknown, expired or disabled key
    ├── Forbidden              403: authenticated but not allowed / bad code
    ├── NotFound               404: unknown route or resource
    ├── MethodNotAllowed       405: route exists, method does not
    ├── Conflict               409: challenge already bound to a live code
    ├── ServiceUnavailable     503: a dependency (the database) is down, or no upstream
    ├── BadGateway             502: the upstream is unreachable or failed
    └── UpstreamRejected       4xx: the upstream refused the request (its status)

Store-level failures that are not the client's fault (``StoreError``) are
turned into a 500 or 503 by the API layer and logged with the request id.
"""

from __future__ import annotations

from typing import Any


class ModelGatesError(Exception):
    """Base class: an error the API answers with ``status`` and ``message``."""

    status: int = 500

    def __init__(self, message: str, *, metadata: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.metadata = metadata


class BadRequest(ModelGatesError):
    """Raised for malformed JSON, wrong types, and values the contract rejects."""

    status = 400

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message, metadata={"field": field} if field else None)
        self.field = field


class Unauthorized(ModelGatesError):
    """Raised when a bearer key is missing, unknown, revoked, expired or disabled."""

    status = 401


class Forbidden(ModelGatesError):
    """Raised when the caller is known but may not do this, or a code is bad."""

    status = 403


class NotFound(ModelGatesError):
    """Raised for unknown routes and for resources the caller cannot see."""

    status = 404


class MethodNotAllowed(ModelGatesError):
    """Raised when the route exists but not for this HTTP method."""

    status = 405


class Conflict(ModelGatesError):
    """Raised when a code challenge is already bound to a live code of the user."""

    status = 409


class ServiceUnavailable(ModelGatesError):
    """Raised when the database cannot be reached; clients may retry."""

    status = 503


class StoreError(Exception):
    """Raised by a store when the database fails in a way no client caused."""


class ChallengeInUse(StoreError):
    """Raised by ``Store.create_code`` when the challenge is bound to a live code."""


class DuplicateEmail(StoreError):
    """Raised by ``Store.create_user`` when the e-mail address is taken."""


class DuplicateIdentity(StoreError):
    """Raised by ``Store.create_user`` when the provider identity is already linked."""


class BadGateway(ModelGatesError):
    """Raised when the upstream cannot be reached or fails (5xx, broken answer)."""

    status = 502


class UpstreamRejected(ModelGatesError):
    """Raised when the upstream refuses a request (4xx): answered with its status."""

    def __init__(self, status: int, message: str, *, metadata: dict[str, Any]) -> None:
        super().__init__(message, metadata=metadata)
        self.status = status
