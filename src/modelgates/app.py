"""``build_app(settings)``: the route table in one place, errors rendered in one place."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sqlite3
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from modelgates import logs, metrics
from modelgates.alert_delivery import deliver_forever
from modelgates.api import (
    activity,
    admin,
    alerts,
    auth_keys,
    credits,
    generation,
    keys,
    management,
    messages,
    meta,
    models,
    openai,
    openai_responses,
    rotation,
)
from modelgates.api.protocols import ANTHROPIC, ApiError, ProtocolRoute, error_response
from modelgates.catalog import GatewayConfig, load_config
from modelgates.container import Services
from modelgates.dberrors import INVALID_VALUE, client_data_errors
from modelgates.errors import ModelGatesError, StoreError
from modelgates.observe import EXTRA_RESPONSE_HEADERS, ObservabilityMiddleware
from modelgates.purge import purge_forever
from modelgates.services import Clock, system_clock
from modelgates.settings import Settings
from modelgates.store import Store, open_store
from modelgates.web import activity as activity_pages
from modelgates.web import admin as admin_pages
from modelgates.web import alert_pages, consent, home, key_pages, signin
from modelgates.web import oidc as sign_on_pages
from modelgates.web.templates import STATIC

log = logging.getLogger("modelgates")

API = "/api/v1"
_STATUS_MESSAGES = {404: "Not Found", 405: "Method Not Allowed"}


def routes() -> list[BaseRoute]:
    """Every route the server answers; anything else is a 404 in the envelope.

    Starlette tries routes in order and no two paths here overlap, so the busiest
    come first: every proxied call, then the key check apps poll, then the flow.
    """
    return [
        Route(f"{API}/chat/completions", openai.chat_completions, methods=["POST"]),
        ProtocolRoute(
            f"{API}/messages", messages.create_message, protocol=ANTHROPIC, methods=["POST"]
        ),
        ProtocolRoute(
            f"{API}/messages/count_tokens",
            messages.count_tokens,
            protocol=ANTHROPIC,
            methods=["POST"],
        ),
        Route(f"{API}/responses", openai_responses.create_response, methods=["POST"]),
        Route(f"{API}/key", keys.current_key, methods=["GET"]),
        Route(f"{API}/auth/keys/code", auth_keys.create_auth_code, methods=["POST"]),
        Route(f"{API}/auth/keys", auth_keys.exchange_code, methods=["POST"]),
        Route(f"{API}/auth/key", keys.current_key, methods=["GET"]),
        Route(f"{API}/keys", management.list_keys, methods=["GET"]),
        Route(f"{API}/keys", management.create_key, methods=["POST"]),
        Route(f"{API}/keys/{{hash}}", management.get_key, methods=["GET"]),
        Route(f"{API}/keys/{{hash}}", management.update_key, methods=["PATCH"]),
        Route(f"{API}/keys/{{hash}}", management.delete_key, methods=["DELETE"]),
        Route(f"{API}/keys/{{hash}}/rotate", rotation.rotate_key, methods=["POST"]),
        Route(f"{API}/openapi.json", meta.openapi_json, methods=["GET"]),
        Route(f"{API}/completions", openai.completions, methods=["POST"]),
        Route(f"{API}/embeddings", openai.embeddings, methods=["POST"]),
        Route(f"{API}/generation", generation.get_generation, methods=["GET"]),
        Route(f"{API}/credits", credits.get_credits, methods=["GET"]),
        Route(f"{API}/activity", activity.get_activity, methods=["GET"]),
        Route(f"{API}/admin/users", admin.list_users, methods=["GET"]),
        Route(f"{API}/admin/users/{{user_id}}", admin.get_user, methods=["GET"]),
        Route(f"{API}/admin/users/{{user_id}}", admin.update_user, methods=["PATCH"]),
        Route(f"{API}/admin/keys", admin.list_keys, methods=["GET"]),
        Route(f"{API}/admin/audit", admin.list_events, methods=["GET"]),
        Route(f"{API}/admin/spend", admin.spend_per_day, methods=["GET"]),
        Route(f"{API}/admin/alerts", alerts.list_deliveries, methods=["GET"]),
        Route(f"{API}/admin/users/{{user_id}}/alert-webhook", alerts.get_webhook, methods=["GET"]),
        Route(f"{API}/admin/users/{{user_id}}/alert-webhook", alerts.set_webhook, methods=["PUT"]),
        Route(f"{API}/models", models.list_models, methods=["GET"]),
        Route(f"{API}/models/count", models.count_models, methods=["GET"]),
        Route(f"{API}/models/user", models.list_user_models, methods=["GET"]),
        Route(
            f"{API}/models/{{author}}/{{slug}}/endpoints", models.model_endpoints, methods=["GET"]
        ),
        Route(f"{API}/embeddings/models", models.list_embeddings_models, methods=["GET"]),
        Route(f"{API}/providers", models.list_providers, methods=["GET"]),
        Route(f"{API}/responses/{{id}}", openai_responses.get_response, methods=["GET"]),
        Route(f"{API}/responses/{{id}}", openai_responses.delete_response, methods=["DELETE"]),
        Route(
            "/.well-known/oauth-authorization-server",
            meta.authorization_server_metadata,
            methods=["GET"],
        ),
        Route("/health", meta.health, methods=["GET"]),
        Route("/ready", meta.ready, methods=["GET"]),
        Route("/metrics", metrics.metrics_endpoint, methods=["GET"]),
        *page_routes(),
    ]


def page_routes() -> list[BaseRoute]:
    """The HTML pages (consent screen, log-in, keys): outside the OpenAPI document."""
    return [
        Route("/auth", consent.auth_page, methods=["GET"], include_in_schema=False),
        Route("/auth", consent.auth_decide, methods=["POST"], include_in_schema=False),
        Route("/login", signin.login_page, methods=["GET"], include_in_schema=False),
        Route("/login", signin.login_submit, methods=["POST"], include_in_schema=False),
        Route("/logout", signin.logout, methods=["POST"], include_in_schema=False),
        Route("/logout", sign_on_pages.signed_out, methods=["GET"], include_in_schema=False),
        Route("/auth/oidc/login", sign_on_pages.start, methods=["GET"], include_in_schema=False),
        Route(
            "/auth/oidc/callback",
            sign_on_pages.callback,
            methods=["GET"],
            include_in_schema=False,
        ),
        Route("/", home.front_page, methods=["GET"], include_in_schema=False),
        Route("/activity", activity_pages.usage_page, methods=["GET"], include_in_schema=False),
        Route(
            "/activity/days.csv", activity_pages.days_csv, methods=["GET"], include_in_schema=False
        ),
        Route(
            "/activity/generations.csv",
            activity_pages.generations_csv,
            methods=["GET"],
            include_in_schema=False,
        ),
        Route("/keys", key_pages.keys_page, methods=["GET"], include_in_schema=False),
        Route("/alerts", alert_pages.alerts_page, methods=["GET"], include_in_schema=False),
        Route("/alerts", alert_pages.alerts_save, methods=["POST"], include_in_schema=False),
        Route("/keys", key_pages.keys_create, methods=["POST"], include_in_schema=False),
        Route(
            "/keys/{key_hash}/rotate",
            key_pages.keys_rotate,
            methods=["POST"],
            include_in_schema=False,
        ),
        Route(
            "/keys/{key_hash}/revoke",
            key_pages.keys_revoke,
            methods=["POST"],
            include_in_schema=False,
        ),
        *admin_page_routes(),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]


def admin_page_routes() -> list[BaseRoute]:
    """The admin pages (signed-in admins only): outside the OpenAPI document."""
    pages = [
        ("/admin", admin_pages.users_page, "GET"),
        ("/admin/users/{user_id}", admin_pages.user_page, "GET"),
        ("/admin/users/{user_id}/budget", admin_pages.user_budget, "POST"),
        ("/admin/users/{user_id}/status", admin_pages.user_status, "POST"),
        ("/admin/users/{user_id}/role", admin_pages.user_role, "POST"),
        ("/admin/keys", admin_pages.keys_page, "GET"),
        ("/admin/audit", admin_pages.audit_page, "GET"),
        ("/admin/alerts", admin_pages.alerts_page, "GET"),
    ]
    return [
        Route(path, handler, methods=[method], include_in_schema=False)
        for path, handler, method in pages
    ]


def _request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", ""))


def _error(
    request: Request,
    status: int,
    message: str,
    metadata: dict[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """The error in the envelope of the protocol the route speaks (:mod:`.api.protocols`)."""
    error = ApiError(status, message, _request_id(request), metadata, headers)
    return error_response(request.scope, error)


async def _on_modelgates_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ModelGatesError)
    return _error(request, exc.status, exc.message, exc.metadata, getattr(exc, "headers", None))


async def _on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = _STATUS_MESSAGES.get(exc.status_code, exc.detail)
    return _error(request, exc.status_code, message, headers=exc.headers)


def database_errors() -> tuple[type[Exception], ...]:
    """Exceptions that mean the database failed us, not that the request was bad."""
    import asyncpg

    return (StoreError, sqlite3.Error, asyncpg.PostgresError, asyncpg.InterfaceError, OSError)


async def _on_client_data_error(request: Request, exc: Exception) -> Response:
    # The database refused a value the request carried: the client's error (400),
    # logged by type only (the message may quote the value).
    log.info("database refused a value (request %s): %s", _request_id(request), type(exc).__name__)
    return _error(request, 400, INVALID_VALUE)


async def _on_store_error(request: Request, exc: Exception) -> Response:
    log.error("database error (request %s): %r", _request_id(request), exc)
    return _error(request, 503, "Service Unavailable", headers={"Retry-After": "1"})


CLIENT_CLOSED_REQUEST = 499
"""The status nginx logs for a request its client abandoned: nobody receives it."""


async def _on_client_disconnect(request: Request, exc: Exception) -> Response:
    # The client left while we read its body: nothing failed on our side, so no
    # trace and no 500; the access line says 499.
    log.info("client disconnected before sending the whole body (request %s)", _request_id(request))
    return Response(status_code=CLIENT_CLOSED_REQUEST)


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    # The trace is logged by the server; the client gets only a request id. This
    # handler runs outside the other middleware, so it sets the id header itself.
    request_id = _request_id(request)
    return _error(request, 500, "Internal Server Error", headers={"X-Request-Id": request_id})


class ApiCorsMiddleware:
    """CORS for the JSON API only, so browser apps can exchange codes and read /key.

    Pages (the consent screen) get no CORS headers (RFC 9700 §2.6). Runs inside
    :class:`ObservabilityMiddleware`, whose response-header list it adds to.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.cors = CORSMiddleware(
            app,
            allow_origins=["*"],
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["*"],
            expose_headers=["X-Request-Id"],
            max_age=600,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(API + "/"):
            await self.app(scope, receive, send)
        elif any(name == b"origin" for name, _ in scope["headers"]):
            await self.cors(scope, receive, send)
        else:
            # Not a CORS request: all CORSMiddleware would do is add "Vary: Origin";
            # the observability middleware (outside this one) adds it, with the id.
            scope[EXTRA_RESPONSE_HEADERS].append(VARY_ORIGIN)
            await self.app(scope, receive, send)


VARY_ORIGIN = (b"vary", b"Origin")


def build_app(
    settings: Settings,
    *,
    store: Store | None = None,
    clock: Clock = system_clock,
    gateway: GatewayConfig | None = None,
    purge: bool | None = None,
    freeze_heap: bool = False,
) -> Starlette:
    """The ASGI app. With no ``store`` it opens and migrates the configured database.

    The gateway's upstreams come from ``gateway``, else from ``settings.config``
    (a TOML file, read now so that a bad file fails at start-up), else none.
    ``purge`` runs the background tasks, the purge (:mod:`modelgates.purge`) and the
    alerts' delivery (:mod:`modelgates.alert_delivery`); by default only when the app
    opens its own store (so tests that hand in a store opt in). ``freeze_heap`` tunes
    the garbage collector once started (:func:`tune_collector`): for the server's own
    process (:func:`create_app`), never for an app among others.
    """
    if gateway is None:
        gateway = load_config(settings.config) if settings.config else GatewayConfig()
    # Like the httpx client it replaced: 10 s to open a connection, and the request
    # timeout for waiting on the pool and for each read (no cap on a whole stream).
    upstream_timeout = aiohttp.ClientTimeout(
        total=None,
        connect=gateway.request_timeout_seconds,
        sock_connect=10.0,
        sock_read=gateway.request_timeout_seconds,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        owned = store is None
        active = (
            store
            if store is not None
            else await open_store(settings.database_url, pool_size=settings.database_pool_size)
        )
        purger: asyncio.Task[None] | None = None
        deliverer: asyncio.Task[None] | None = None
        try:
            if owned:
                await active.migrate()
            app.state.services = Services.build(settings, active, clock=clock, gateway=gateway)
            if purge if purge is not None else owned:
                purger = purge_forever(app.state.services)
                deliverer = deliver_forever(app.state.services)
            # One pooled upstream client per process, for every proxied request. Its
            # limit defaults to none: a cap below the server's own connection limit
            # makes the streams past it wait for earlier ones to end.
            async with aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=settings.upstream_max_connections, keepalive_timeout=30.0
                ),
                timeout=upstream_timeout,
                trust_env=False,
            ) as http:
                app.state.http = http
                if freeze_heap:
                    tune_collector()
                yield
        finally:
            for task in (purger, deliverer):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            services = getattr(app.state, "services", None)
            if services is not None:
                await services.limiter.close()
                await services.metered.health.close()
            if owned:
                await active.close()

    app = Starlette(
        routes=routes(),
        lifespan=lifespan,
        exception_handlers={
            ModelGatesError: _on_modelgates_error,
            HTTPException: _on_http_exception,
            **dict.fromkeys(database_errors(), _on_store_error),
            **dict.fromkeys(client_data_errors(), _on_client_data_error),
            ClientDisconnect: _on_client_disconnect,
            Exception: _on_unexpected,
        },
    )
    app.add_middleware(ApiCorsMiddleware)
    app.add_middleware(ObservabilityMiddleware)
    return app


GC_YOUNG_THRESHOLD = 50_000
"""Allocations between two collections of the youngest generation (Python's default:
700). A stream's objects live for seconds; at the default they are scanned in every
young collection they live through, and each relayed event allocates a few."""


def tune_collector() -> None:
    """Move what start-up built (modules, the app, its services: ~80,000 objects that
    live as long as the process) out of the garbage collector's sight, and collect the
    young generation less often (:data:`GC_YOUNG_THRESHOLD`). Measured with 2,000 open
    streams: collections took 15 % of the server's CPU, a full one pausing the loop for
    60-120 ms; frozen, 10 %; with the threshold too, about 2 %. Cyclic garbage still
    goes, a little later."""
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def create_app() -> Starlette:
    """Factory for ``uvicorn --factory modelgates.app:create_app`` (settings from env)."""
    settings = Settings.from_env()
    logs.configure(settings.log_level, settings.log_format)
    return build_app(settings, freeze_heap=True)
