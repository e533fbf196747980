"""What every page shares: the :func:`page` wrapper, which answers failures as HTML
error pages (never the JSON envelope) and adds the security headers, redirects, the
signed-in context of a template, and the readers of the pages' form fields.

The pages themselves are one module per flow: :mod:`~modelgates.web.signin`
(log-in and log-out), :mod:`~modelgates.web.consent` (``/auth``),
:mod:`~modelgates.web.key_pages` (the key list) and :mod:`~modelgates.web.oidc`
(single sign-on). They call services only: the rules live there.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, cast, get_args
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from modelgates.dberrors import INVALID_VALUE, client_data_errors
from modelgates.errors import BadRequest, ModelGatesError
from modelgates.services.sessions import SignedIn
from modelgates.web import security
from modelgates.web.security import PageError
from modelgates.web.templates import render
from modelgates.windows import Reset

log = logging.getLogger(__name__)

Handler = Callable[[Request], Awaitable[Response]]
RESETS: tuple[str, ...] = get_args(Reset)
_TITLES = {400: "Invalid request", 403: "Not allowed", 404: "Not found", 409: "Conflict"}
FIELD_LABELS = {
    "limit": "Credit limit",
    "usage_limit_type": "Limit reset",
    "limit_reset": "Limit reset",
    "expires_at": "Expiry",
    "key_label": "Key label",
    "name": "Name",
    "allowed_models": "Allowed models",
}


def page(handler: Handler) -> Handler:
    """Answer ``handler``'s failures as HTML pages and add the page headers."""

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        try:
            response = await handler(request)
        except PageError as exc:
            response = error_page(request, exc.status, exc.title, exc.message, exc.headers)
        except ModelGatesError as exc:
            title = _TITLES.get(exc.status, "Something went wrong")
            response = error_page(request, exc.status, title, exc.message)
        except client_data_errors():
            response = error_page(request, 400, _TITLES[400], INVALID_VALUE)
        except Exception:
            request_id = str(request.scope.get("state", {}).get("request_id", ""))
            log.exception("page failed (request %s)", request_id)
            response = error_page(
                request,
                500,
                "Something went wrong",
                f"Please try again. If it keeps happening, quote request id {request_id}.",
            )
        return security.add_page_headers(response)

    return endpoint


def error_page(
    request: Request,
    status: int,
    title: str,
    message: str,
    headers: dict[str, str] | None = None,
) -> Response:
    response = render(
        "error.html",
        {"title": title, "message": message, "status": status, "who": None},
        status=status,
    )
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def see_other(url: str) -> Response:
    """303 See Other: the browser follows with a GET (RFC 9700 §4.12)."""
    return RedirectResponse(url, status_code=303)


def to_login(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return see_other("/login?" + urlencode({"next": target}))


def base_context(who: SignedIn | None) -> dict[str, Any]:
    return {
        "who": who.user.email if who else None,
        "csrf": who.session.csrf_secret if who else "",
        "is_admin": bool(who and who.user.is_admin),
    }


def parse_limit(text: str, field: str) -> float | None:
    if not text:
        return None
    try:
        return float(text)
    except ValueError as exc:
        raise BadRequest("must be a number such as 5 or 12.50", field=field) from exc


def parse_reset(text: str, field: str) -> Reset | None:
    if not text:
        return None
    if text not in RESETS:
        raise BadRequest("choose none, daily, weekly or monthly", field=field)
    return cast(Reset, text)


def parse_local_utc(text: str, field: str) -> datetime | None:
    """A ``datetime-local`` value (``2026-12-31T23:59``), read as UTC."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise BadRequest("must be a date and time like 2026-12-31T23:59", field=field) from exc
    if moment.tzinfo is not None:
        raise BadRequest("give a date and time without a time zone (UTC)", field=field)
    return moment.replace(tzinfo=UTC)
