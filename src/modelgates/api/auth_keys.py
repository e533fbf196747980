"""``POST /api/v1/auth/keys/code`` (the founding spec) and ``POST /api/v1/auth/keys``."""

from __future__ import annotations

from typing import Literal

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from modelgates import allowlist, tokens
from modelgates.api.body import read_json
from modelgates.api.responses import JSONResponse
from modelgates.api.state import services
from modelgates.errors import BadRequest, Forbidden
from modelgates.services.apps import app_title
from modelgates.services.auth_codes import CodeRequest
from modelgates.timestamps import isoformat


class CreateCodeBody(msgspec.Struct, forbid_unknown_fields=False):
    """Request body of ``create-auth-keys-code``; unknown fields are ignored."""

    callback_url: str | None = None
    code_challenge: str | None = None
    code_challenge_method: Literal["S256", "plain"] | None = None
    expires_at: str | None = None
    key_label: str | None = None
    limit: float | None = None
    usage_limit_type: Literal["daily", "weekly", "monthly"] | None = None
    workspace_id: str | None = None
    allowed_models: list[str] | None = None


class ExchangeBody(msgspec.Struct, forbid_unknown_fields=False):
    """Request body of the exchange: the code and, with PKCE, its verifier."""

    code: str | None = None
    code_verifier: str | None = None
    code_challenge_method: Literal["S256", "plain"] | None = None


async def create_auth_code(request: Request) -> Response:
    svc = services(request)
    caller = await svc.keys.authenticate(request.headers.get("authorization"))
    await svc.limiter.enforce(svc.rules.codes_key, caller.hash)
    body = await read_json(request, CreateCodeBody, svc.settings.max_body_bytes)
    issued = await svc.codes.create(
        caller,
        CodeRequest(
            callback_url=body.callback_url,
            code_challenge=body.code_challenge,
            code_challenge_method=body.code_challenge_method,
            expires_at=body.expires_at,
            key_label=body.key_label,
            limit=body.limit,
            usage_limit_type=body.usage_limit_type,
            allowed_models=allowlist.parse(body.allowed_models),
        ),
        title=app_title(request.headers),
    )
    return JSONResponse(
        {
            "data": {
                "id": issued.secret,
                "app_id": issued.app.id,
                "created_at": isoformat(issued.record.created_at),
            }
        }
    )


def client_address(request: Request) -> str:
    """The client's address (``X-Forwarded-For`` is resolved by uvicorn, and only from
    the proxies in ``MODELGATES_TRUSTED_PROXIES``)."""
    return request.client.host if request.client else "unknown"


async def exchange_code(request: Request) -> Response:
    """Rate-limited per client address (every attempt) and per code (failed attempts:
    after ``rate_limit_exchange_failures_per_code`` of them the code answers 429)."""
    svc = services(request)
    await svc.limiter.enforce(svc.rules.exchange_address, client_address(request))
    body = await read_json(request, ExchangeBody, svc.settings.max_body_bytes)
    code_key = tokens.sha256_hex(body.code) if body.code else None
    if code_key is not None:
        await svc.limiter.enforce_peek(svc.rules.exchange_code_failures, code_key)
    try:
        result = await svc.exchange.exchange(
            body.code or "", body.code_verifier, body.code_challenge_method
        )
    except (BadRequest, Forbidden):
        if code_key is not None:
            await svc.limiter.hit(svc.rules.exchange_code_failures, code_key)
        raise
    return JSONResponse({"key": result.key, "user_id": result.user_id})
