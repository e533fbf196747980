"""Discovery and liveness: OpenAPI document, RFC 8414 metadata, health checks."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import msgspec
import yaml
from starlette.requests import Request
from starlette.responses import Response

from modelgates.api.responses import JSONResponse
from modelgates.api.state import services
from modelgates.errors import ServiceUnavailable


@cache
def openapi_document() -> bytes:
    """The maintained OpenAPI 3.1 document (``openapi.yaml``), encoded once."""
    text = resources.files("modelgates").joinpath("openapi.yaml").read_text("utf-8")
    document: dict[str, Any] = yaml.safe_load(text)
    return msgspec.json.encode(document)


def public_base_url(request: Request) -> str:
    """The configured public URL, else the URL this request reached us at."""
    configured = services(request).settings.public_url
    return (configured or str(request.base_url)).rstrip("/")


async def openapi_json(request: Request) -> Response:
    return Response(openapi_document(), media_type="application/json")


async def authorization_server_metadata(request: Request) -> Response:
    """RFC 8414 metadata: where to exchange codes and which PKCE methods we take."""
    base = public_base_url(request)
    policy = services(request).settings.pkce_policy
    return JSONResponse(
        {
            "issuer": base,
            "authorization_endpoint": f"{base}/auth",
            "token_endpoint": f"{base}/api/v1/auth/keys",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code"],
            "token_endpoint_auth_methods_supported": ["none"],
            "code_challenge_methods_supported": ["S256"] if policy == "s256" else ["S256", "plain"],
            # Whether http://127.0.0.1:<port> callbacks (RFC 8252 §7.3) are accepted, so a
            # CLI can choose between a loopback redirect and pasting the code.
            "modelgates_loopback_callbacks": services(request).settings.allow_loopback_callbacks,
        }
    )


async def health(request: Request) -> Response:
    """The process is up and serving."""
    return JSONResponse({"status": "ok"})


async def ready(request: Request) -> Response:
    """The process can reach its database."""
    try:
        await services(request).store.ping()
    except Exception as exc:
        raise ServiceUnavailable("Database unavailable") from exc
    return JSONResponse({"status": "ready"})
