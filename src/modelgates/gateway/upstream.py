"""The HTTP client side of the gateway: one request to a model's provider, and its errors.

An upstream that cannot be reached, or answers 5xx, is a 502 to the client. A
4xx keeps its status and the upstream's message, except 401, 403 and 407: those
concern the operator's provider key, never the client's, so the client gets a
502 without the provider's text (which may quote that key) and the operator
gets it in the log.

The client session's ``sock_read`` timeout (the gateway's request timeout) bounds
every read. aiohttp re-arms that timer on each read, which for thousands of open
streams is a timer cancelled and scheduled per relayed event (a sixth of the
relay's CPU, measured); so a streamed request is sent without it, its head awaited
within the same timeout, and its body watched by an :class:`IdleWatch` instead,
which checks for progress four times per timeout.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any, Literal

import aiohttp
import anyio
import msgspec

from modelgates.catalog import ModelRoute
from modelgates.errors import BadGateway, UpstreamRejected
from modelgates.gateway.wire import UpstreamApi

log = logging.getLogger(__name__)

UPSTREAM_UNAVAILABLE = "Upstream unavailable"
UPSTREAM_REJECTED = "Upstream rejected the request"

#: What a failed upstream exchange raises: aiohttp's errors, and its read timeouts.
UPSTREAM_ERRORS = (aiohttp.ClientError, TimeoutError)

_encoder = msgspec.json.Encoder()


async def send(
    http: aiohttp.ClientSession,
    route: ModelRoute,
    api: UpstreamApi,
    body: dict[str, Any],
    *,
    stream: bool,
    headers: Mapping[str, str] | None = None,
) -> aiohttp.ClientResponse:
    """POST ``body`` to the route's provider; the response once its status is good.

    ``headers`` are the client's that the upstream API takes as they are; they never
    replace the API's own (content type, the provider key).

    Raises :class:`BadGateway` or :class:`UpstreamRejected` (having read and
    released the response) otherwise.
    """
    provider = route.provider
    timeout = http.timeout
    read_timeout = timeout.sock_read if stream else None
    if read_timeout is not None:
        timeout = _without_read_timeout(timeout)
    try:
        with anyio.fail_after(read_timeout):
            response = await http.post(
                provider.base_url + api.path,
                data=_encoder.encode(body),
                headers={**(headers or {}), **api.headers(provider.api_key(), stream=stream)},
                allow_redirects=False,
                timeout=timeout,
            )
    except UPSTREAM_ERRORS as exc:
        log.warning("upstream %s unreachable: %r", provider.name, exc)
        raise BadGateway(UPSTREAM_UNAVAILABLE) from exc
    if response.status < 400:
        return response
    try:
        raw = await response.read()
    except UPSTREAM_ERRORS:
        raw = b""
    finally:
        response.release()
    error = upstream_error(response.status, raw, route)
    retry_after = response.headers.get("retry-after") if response.status == 429 else None
    if retry_after is not None and isinstance(error, UpstreamRejected) and error.metadata:
        error.metadata["retry_after"] = retry_after[:50]
    raise error


def _without_read_timeout(timeout: aiohttp.ClientTimeout) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(
        total=timeout.total,
        connect=timeout.connect,
        sock_connect=timeout.sock_connect,
        ceil_threshold=timeout.ceil_threshold,
    )


class IdleWatch:
    """Fails the read of a streamed response that receives nothing for ``seconds``, as
    aiohttp's ``sock_read`` timeout would (the same error, the connection closed), with
    one timer per quarter of ``seconds`` instead of one per read (module docstring):
    a silence is noticed after ``seconds`` at the earliest, 1.25 × ``seconds`` at the
    latest. While ``held`` (the reader is passing on what it read, to a client that may
    be slow), silence does not count, as aiohttp stops its timer while reading is paused.
    With ``seconds`` ``None`` it watches nothing. Cancel it when the response is done."""

    def __init__(self, response: aiohttp.ClientResponse, seconds: float | None) -> None:
        self.held = False
        self._response = response
        self._timer: asyncio.TimerHandle | None = None
        if seconds is None:
            return
        self._seconds = seconds
        self._period = seconds / 4
        self._loop = asyncio.get_running_loop()
        self._received = response.content.total_bytes
        self._since = self._loop.time()
        self._timer = self._loop.call_at(self._since + self._period, self._check)

    def _check(self) -> None:
        now = self._loop.time()
        received = self._response.content.total_bytes
        if received != self._received or self.held:
            self._received, self._since = received, now
        elif now - self._since >= self._seconds:
            error = aiohttp.SocketTimeoutError("Timeout on reading data from socket")
            self._response.content.set_exception(error)
            self._response.close()
            self._timer = None
            return
        self._timer = self._loop.call_at(now + self._period, self._check)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def read_timeout(http: aiohttp.ClientSession) -> float | None:
    """The session's bound on one read (what an :class:`IdleWatch` of a stream enforces)."""
    return http.timeout.sock_read


Outcome = Literal["success", "unreachable", "timeout", "rate_limited", "error", "auth", "rejected"]
"""How one upstream attempt ended (the ``outcome`` label of the upstream metrics)."""
RETRIED_STATUSES = frozenset({408, 429})
"""4xx statuses that say "not now" rather than "not this request": tried elsewhere."""


def failure_outcome(exc: BaseException) -> Outcome:
    """What a failed :func:`send` (or a timeout around it) was; only ``rejected`` (a
    4xx about the request itself) is relayed to the client rather than tried elsewhere."""
    if isinstance(exc, TimeoutError):
        return "timeout"
    status = (getattr(exc, "metadata", None) or {}).get("upstream_status")
    if isinstance(exc, UpstreamRejected):
        return {408: "timeout", 429: "rate_limited"}.get(exc.status, "rejected")  # type: ignore[return-value]
    if status is None:
        return "unreachable"
    return "auth" if status in (401, 403, 407) else "error"


def upstream_error(status: int, raw: bytes, route: ModelRoute) -> Exception:
    """The error a client gets for an upstream's error answer (module docstring)."""
    message = upstream_message(raw)
    metadata: dict[str, Any] = {"provider_name": route.provider.name, "upstream_status": status}
    if status in (401, 403, 407):
        log.warning(
            "upstream %s refused the gateway's credentials (%d): %s",
            route.provider.name, status, message,
        )  # fmt: skip
        error = BadGateway(UPSTREAM_UNAVAILABLE)
        error.metadata = metadata
        return error
    metadata["upstream_message"] = message
    if 400 <= status < 500:
        return UpstreamRejected(status, UPSTREAM_REJECTED, metadata=metadata)
    error = BadGateway(UPSTREAM_UNAVAILABLE)
    error.metadata = metadata
    return error


def upstream_message(raw: bytes) -> str | None:
    """The human message of an upstream error body (OpenAI's, Anthropic's or plain text)."""
    try:
        body = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        text = raw.decode("utf-8", "replace").strip()
        return text[:500] or None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])[:500]
        if isinstance(error, str):
            return error[:500]
        if isinstance(body.get("message"), str):
            return str(body["message"])[:500]
    return None
