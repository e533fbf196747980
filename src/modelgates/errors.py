"""Every error a client can see, each carrying its own HTTP status and message.

Who is at fault decides the branch; each class says when it is raised. The API
renders all of them through one handler (:mod:`modelgates.app`) into OpenRouter's
envelope ``{"error": {"code", "message", "metadata"}, "user_id"}``; a protocol with
its own error shape (Anthropic's, on ``/messages``) renders the same classes with
the same statuses in that shape. Nothing is classified by its message text::

    ModelGatesError                 status + message (+ metadata, + headers)
    │  the client: its request
    ├── BadRequest                  400  malformed or invalid input, names the field
    │   └── InvalidChallengeMethod  400  the exchange's method differs from the code's
    ├── NotFound                    404  unknown route, or a resource the caller cannot see
    ├── MethodNotAllowed            405  the route exists, the method does not
    ├── Conflict                    409  the request clashes with what exists
    │   ├── ChallengeInUse          409  the challenge is bound to a live code of the user
    │   ├── DuplicateEmail          409  the e-mail address has an account already
    │   └── DuplicateIdentity       409  the provider identity is linked already
    │  the client: its credentials
    ├── Unauthorized                401  missing, unknown, revoked, expired or disabled key
    │                                    (or its user is disabled)
    ├── PaymentRequired             402  the user's budget cannot pay for the request
    ├── Forbidden                   403  known, but not allowed (management only, limits…)
    │   ├── InvalidCode             403  unknown, used or unproven authorization code
    │   │   └── ReplayedCode        403  a used code came back (answered as InvalidCode)
    │   ├── CodeExpired             403  the code's ten minutes have passed
    │   └── ModelNotAllowed         403  the model is outside the key's allowlist
    │  the client: its pace
    ├── TooManyRequests             429  a rate limit refused it (Retry-After, X-RateLimit-*)
    │   └── PasswordChecksBusy      429  every password-check slot is taken
    │  the upstream
    ├── UpstreamRejected            4xx  the upstream refused the request (its status)
    ├── BadGateway                  502  the upstream is unreachable, failed, or refused our key
    │  the server
    └── ServiceUnavailable          503  a dependency is down (the database), or no upstream

``StoreError`` is not a client's error: a store raises it when the database fails in
a way no client caused; the API answers 503 and logs it with the request id.
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


class PaymentRequired(ModelGatesError):
    """Raised when a metered request does not fit its user's budget (OpenRouter's
    status for an account without credits); a key's own limit answers 403 instead."""

    status = 402


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
    """Raised when a request clashes with what exists (see the subclasses)."""

    status = 409


class ServiceUnavailable(ModelGatesError):
    """Raised when the database cannot be reached; clients may retry."""

    status = 503


class StoreError(Exception):
    """Raised by a store when the database fails in a way no client caused."""


CHALLENGE_IN_USE = "code_challenge is already bound to a live authorization code"


class ChallengeInUse(Conflict):
    """Raised by ``Store.create_code`` when the challenge is bound to a live code of
    the same user (the check and the insert are one atomic step)."""

    def __init__(self, challenge: str) -> None:
        super().__init__(CHALLENGE_IN_USE, metadata={"field": "code_challenge"})
        self.challenge = challenge


class DuplicateEmail(Conflict):
    """Raised by ``Store.create_user`` when the e-mail address has an account already."""

    def __init__(self, email: str) -> None:
        super().__init__("a user with this email already exists", metadata={"field": "email"})
        self.email = email


class DuplicateIdentity(Conflict):
    """Raised by ``Store.create_user`` when the provider identity is linked already."""

    def __init__(self, subject: str) -> None:
        super().__init__("this sign-in is linked to another account already")
        self.subject = subject


class InvalidChallengeMethod(BadRequest):
    """Raised by the exchange when a ``code_challenge_method`` was sent and differs from
    the one bound to the code."""

    def __init__(self) -> None:
        super().__init__("Invalid code_challenge_method", field="code_challenge_method")


INVALID_CODE = "Invalid code or code_verifier"


class InvalidCode(Forbidden):
    """Raised by the exchange for an unknown or used code, a wrong or missing verifier,
    or a verifier sent for a code bound to no challenge (the downgrade defence)."""

    def __init__(self) -> None:
        super().__init__(INVALID_CODE)


class ReplayedCode(InvalidCode):
    """Raised by the exchange when a used code comes back: answered exactly like an
    unknown one (a valid replay has revoked the key minted from it)."""


class CodeExpired(Forbidden):
    """Raised by the exchange for a code past its expiry."""

    def __init__(self) -> None:
        super().__init__("Authorization code expired")


class ModelNotAllowed(Forbidden):
    """Raised on a metered route when the model to dispatch, or one of a fallback list
    the request names (``field``), is outside the key's ``allowed_models``."""

    def __init__(self, model: str, *, field: str = "model") -> None:
        super().__init__(
            f"Model {model[:200]} is not allowed for this key",
            metadata={"field": field, "model": model[:200]},
        )
        self.model = model
        self.field = field


TOO_MANY_REQUESTS = "Rate limit exceeded"


class TooManyRequests(ModelGatesError):
    """Raised when a rate limit refuses a request: 429, with the ``headers`` to send
    (``Retry-After``, and ``X-RateLimit-*`` also listed in ``error.metadata.headers``)."""

    status = 429

    def __init__(
        self,
        message: str = TOO_MANY_REQUESTS,
        *,
        headers: dict[str, str],
        metadata: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, metadata=metadata)
        self.headers = headers


class PasswordChecksBusy(TooManyRequests):
    """Raised when every password-check slot is taken and the queue is full: retry in a
    second (argon2 runs off the event loop, a few at a time)."""

    def __init__(self) -> None:
        super().__init__(
            "Too many sign-ins at once: try again in a moment", headers={"Retry-After": "1"}
        )


class BadGateway(ModelGatesError):
    """Raised when the upstream cannot be reached or fails (5xx, broken answer)."""

    status = 502


class UpstreamRejected(ModelGatesError):
    """Raised when the upstream refuses a request (4xx): answered with its status."""

    def __init__(self, status: int, message: str, *, metadata: dict[str, Any]) -> None:
        super().__init__(message, metadata=metadata)
        self.status = status
