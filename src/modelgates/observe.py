"""Per-request observability: the request id, the access log, HTTP metrics.

One pure ASGI middleware, the outermost of ours: it tags the request with an id
(the client's ``X-Request-Id`` if sane, else a random one) that error bodies,
logs and the ``X-Request-Id`` response header all carry; per request it costs
one ``perf_counter`` pair, a dict lookup for the metric children and one log
record. The route label is the template of the route Starlette matched
(``scope["route"].path``), read after the app ran; ``unmatched`` otherwise.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelgates import metrics
from modelgates.logs import request_id_var

access_log = logging.getLogger("modelgates.access")

_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
EXTRA_RESPONSE_HEADERS = "modelgates.extra_response_headers"
"""Scope key of the list of headers this middleware adds to the response (the
request id first): inner middleware append to it instead of wrapping ``send``
again, which would cost a coroutine per message."""
MAX_PATH_CHARS = 200
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def route_label(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else metrics.UNMATCHED


def _metric_children(route: str, method: str, status: int) -> tuple[Any, Any]:
    key = (route, method, status)
    found = _children.get(key)
    if found is None:
        found = (
            metrics.HTTP_REQUESTS.labels(route=route, method=method, status=str(status)),
            metrics.HTTP_DURATION.labels(route=route, method=method),
        )
        _children[key] = found
    return found


def _client(scope: Scope) -> str | None:
    client = scope.get("client")
    if not client:
        return None
    host, port = client[0], client[1]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


class ObservabilityMiddleware:
    """Assigns and echoes the request id, then records one access line and the metrics."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = ""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                request_id = value.decode("latin-1")
                break
        if not _SAFE_REQUEST_ID.fullmatch(request_id):
            request_id = secrets.token_hex(16)  # 32 hex digits, like uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        header = (b"x-request-id", request_id.encode("ascii"))
        # Left set on purpose: the server logs an unhandled error's trace after
        # this middleware returns, in the same task, and that line needs the id too.
        request_id_var.set(request_id)
        status = 500
        started = time.perf_counter()

        extra_headers: list[tuple[bytes, bytes]] = [header]
        scope[EXTRA_RESPONSE_HEADERS] = extra_headers

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), *extra_headers]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            elapsed = time.perf_counter() - started
            method = scope["method"] if scope["method"] in metrics.METHODS else "other"
            route = route_label(scope)
            requests, duration = _metric_children(route, method, status)
            requests.inc()
            duration.observe(elapsed)
            if access_log.isEnabledFor(logging.INFO):
                _log_access(scope, method, route, status, elapsed, request_id)


def _log_access(
    scope: Scope, method: str, route: str, status: int, elapsed: float, request_id: str
) -> None:
    """One access record, built directly: ``Logger.info`` would also walk the
    stack for the caller's file and line, which an access line never shows."""
    path: str = scope.get("path", "")
    record = access_log.makeRecord(
        access_log.name,
        logging.INFO,
        __file__,
        0,
        "%s %s %d",
        (method, route, status),
        None,
        extra={
            "method": method,
            "route": route,
            "path": path[:MAX_PATH_CHARS],
            "status": status,
            "duration_ms": round(elapsed * 1000, 3),
            "client": _client(scope),
            "request_id": request_id,
        },
    )
    access_log.handle(record)
