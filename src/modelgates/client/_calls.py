"""What each API call sends and how its answer is read, shared by both clients.

A :class:`Call` is a plain description of one request plus the decoder for its
answer; the sync and async clients only differ in how they send it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

import httpx

from modelgates.client import _json
from modelgates.client._errors import InvalidResponseError, error_for
from modelgates.client._shape import Reader, ShapeError
from modelgates.client._types import (
    AuthCode,
    ExchangedKey,
    KeyInfo,
    auth_code_answer,
    exchanged_key_answer,
    key_info_answer,
)

T = TypeVar("T")

API_PREFIX = "/api/v1"


def server_root(base_url: str) -> str:
    """``http://host:port`` from ``http://host:port/`` or ``http://host:port/api/v1``."""
    root = base_url.strip().rstrip("/")
    if root.endswith(API_PREFIX):
        root = root.removesuffix(API_PREFIX)
    if not root.startswith(("http://", "https://")):
        raise ValueError(f"base_url must be an http(s) URL, not {base_url!r}")
    return root


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One request under ``/api/v1`` and how to decode a successful answer."""

    method: str
    path: str
    decode: Callable[[bytes], T]
    json: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    authenticated: bool = True


def _decoder(read: Reader[T]) -> Callable[[bytes], T]:
    """Decode a body as JSON, then check it has the shape ``read`` expects."""
    return lambda body: read(_json.loads(body), "$")


def _any_json(body: bytes) -> Any:
    return _json.loads(body) if body.strip() else None


def _timestamp(value: datetime | str) -> str:
    if isinstance(value, str):
        return value
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("expires_at must be timezone-aware (e.g. datetime.now(UTC))")
    text = value.isoformat()
    return text.removesuffix("+00:00") + "Z" if text.endswith("+00:00") else text


def create_auth_code(
    callback_url: str,
    *,
    code_challenge: str | None = None,
    code_challenge_method: str | None = None,
    limit: float | None = None,
    usage_limit_type: str | None = None,
    expires_at: datetime | str | None = None,
    key_label: str | None = None,
    title: str | None = None,
) -> Call[AuthCode]:
    if limit is not None and (isinstance(limit, bool) or not math.isfinite(limit)):
        raise ValueError(f"limit must be a finite number, not {limit!r}")
    body: dict[str, Any] = {"callback_url": callback_url}
    optional: dict[str, Any] = {
        "code_challenge": code_challenge,
        "code_challenge_method": code_challenge_method,
        "limit": limit,
        "usage_limit_type": usage_limit_type,
        "expires_at": None if expires_at is None else _timestamp(expires_at),
        "key_label": key_label,
    }
    body.update({name: value for name, value in optional.items() if value is not None})
    headers = {"X-Title": title} if title is not None else {}
    return Call("POST", "/auth/keys/code", _decoder(auth_code_answer), json=body, headers=headers)


def exchange_code(
    code: str, code_verifier: str | None = None, code_challenge_method: str | None = None
) -> Call[ExchangedKey]:
    body: dict[str, Any] = {"code": code}
    if code_verifier is not None:
        body["code_verifier"] = code_verifier
    if code_challenge_method is not None:
        body["code_challenge_method"] = code_challenge_method
    return Call(
        "POST", "/auth/keys", _decoder(exchanged_key_answer), json=body, authenticated=False
    )


def current_key() -> Call[KeyInfo]:
    return Call("GET", "/key", _decoder(key_info_answer))


def raw(
    method: str, path: str, *, json: Any = None, headers: Mapping[str, str] | None = None
) -> Call[Any]:
    """Any route under ``/api/v1``; the answer is the decoded JSON (``None`` if empty)."""
    return Call(
        method.upper(),
        path if path.startswith("/") else "/" + path,
        _any_json,
        json=json,
        headers=headers or {},
    )


def build_request(
    http: httpx.Client | httpx.AsyncClient,
    call: Call[Any],
    *,
    root: str,
    api_key: str | None,
    timeout: httpx.Timeout | None,
) -> httpx.Request:
    """The httpx request for ``call`` (bearer header only on authenticated calls)."""
    headers = {"Accept": "application/json", **call.headers}
    if call.authenticated and api_key is not None:
        headers["Authorization"] = f"Bearer {api_key}"
    content = None if call.json is None else _json.dumps(call.json)
    if content is not None:
        headers["Content-Type"] = "application/json"
    return http.build_request(
        call.method,
        root + API_PREFIX + call.path,
        content=content,
        headers=headers,
        timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout,
    )


def read_response(call: Call[T], response: httpx.Response) -> T:
    """The decoded answer, or the typed error for an error status."""
    if not 200 <= response.status_code < 300:
        raise error_for(response)
    try:
        return call.decode(response.content)
    except (_json.NotJSONError, ShapeError) as exc:
        raise InvalidResponseError(
            f"unexpected answer from {call.method} {API_PREFIX}{call.path}: {exc}",
            response=response,
        ) from exc
