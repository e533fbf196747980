"""Python client for the ModelGates API (sync and async, on httpx).

It needs nothing but the standard library and httpx (``pip install --no-deps
modelgates`` and httpx is enough), so it imports no other module of the package
than :mod:`modelgates.pkce`; its results are frozen dataclasses.

::

    from modelgates.client import ModelGatesClient, code_challenge, generate_code_verifier

    verifier = generate_code_verifier()
    with ModelGatesClient("http://127.0.0.1:8000", api_key=developer_key) as mg:
        code = mg.create_auth_code(
            "https://myapp.com/callback",
            code_challenge=code_challenge(verifier),
            code_challenge_method="S256",
        )
        minted = mg.exchange_code(code.id, verifier, "S256")
    with ModelGatesClient("http://127.0.0.1:8000", api_key=minted.key) as app:
        print(app.current_key().limit_remaining)

Errors::

    ModelGatesClientError              anything this library raises on purpose
    ├── ModelGatesConnectionError      no HTTP answer: refused, DNS, TLS, timeout
    │   └── ModelGatesTimeoutError     the request timed out
    ├── InvalidResponseError           a 2xx answer whose body is not what the API promises
    └── ModelGatesAPIError             error status: .status .message .metadata .request_id
        ├── BadRequestError            400 (.field names the offending field)
        ├── AuthenticationError        401
        ├── PermissionDeniedError      403
        ├── NotFoundError              404
        ├── ConflictError              409
        ├── RateLimitError             429
        └── ServerError                5xx

Input checked before sending (an invalid PKCE verifier, a naive datetime)
raises :class:`ValueError`.
"""

from __future__ import annotations

from modelgates.client._clients import AsyncModelGatesClient, ModelGatesClient
from modelgates.client._errors import (
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InvalidResponseError,
    ModelGatesAPIError,
    ModelGatesClientError,
    ModelGatesConnectionError,
    ModelGatesTimeoutError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
)
from modelgates.client._pkce import (
    authorization_url,
    code_challenge,
    generate_code_verifier,
    generate_state,
)
from modelgates.client._types import AuthCode, Budget, ExchangedKey, KeyInfo, RateLimit, key_hash

__all__ = [
    "AsyncModelGatesClient",
    "AuthCode",
    "AuthenticationError",
    "BadRequestError",
    "Budget",
    "ConflictError",
    "ExchangedKey",
    "InvalidResponseError",
    "KeyInfo",
    "ModelGatesAPIError",
    "ModelGatesClient",
    "ModelGatesClientError",
    "ModelGatesConnectionError",
    "ModelGatesTimeoutError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimit",
    "RateLimitError",
    "ServerError",
    "authorization_url",
    "code_challenge",
    "generate_code_verifier",
    "generate_state",
    "key_hash",
]
