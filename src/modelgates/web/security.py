"""What every page shares: security headers, the session cookie, CSRF, form bodies.

- Headers (RFC 9700 §4.2.4, §4.16): a CSP without ``form-action`` (Chromium would
  block the 303 to an app's callback after Authorize), no framing, no referrer,
  no sniffing, no caching.
- ``mg_session``: ``HttpOnly; SameSite=Lax; Path=/`` and ``Secure`` on https.
- CSRF: signed-in forms carry the session's own secret; the log-in form (no
  session yet) uses a double-submit cookie, ``mg_csrf``. Both are compared
  with :func:`hmac.compare_digest`.
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response

from modelgates.api.state import services
from modelgates.services.sessions import SignedIn

SESSION_COOKIE = "mg_session"
LOGIN_CSRF_COOKIE = "mg_csrf"
CSRF_FIELD = "csrf"
MAX_FORM_FIELDS = 32

PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


class PageError(Exception):
    """A failure a page answers with an HTML error page of ``status``."""

    def __init__(
        self,
        status: int,
        title: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message
        self.headers = headers or {}


def forbidden_form() -> PageError:
    return PageError(
        403,
        "This form has expired",
        "The form was not sent from this site, or your session has ended. "
        "Go back, reload the page and try again.",
    )


def add_page_headers(response: Response) -> Response:
    for name, value in PAGE_HEADERS.items():
        response.headers[name] = value
    return response


def is_secure(request: Request) -> bool:
    """Cookies get ``Secure`` when this request, or the configured public URL, is https."""
    public = services(request).settings.public_url or ""
    return request.url.scheme == "https" or public.lower().startswith("https://")


def set_cookie(
    request: Request, response: Response, name: str, value: str, *, max_age: int | None
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        secure=is_secure(request),
        httponly=True,
        samesite="lax",
    )


def clear_cookie(request: Request, response: Response, name: str) -> None:
    response.delete_cookie(name, path="/", secure=is_secure(request), httponly=True, samesite="lax")


async def signed_in(request: Request) -> SignedIn | None:
    """The request's live session and user, or ``None``."""
    return await services(request).sessions.resolve(request.cookies.get(SESSION_COOKIE))


def tokens_match(given: str | None, expected: str | None) -> bool:
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def check_session_csrf(form: dict[str, str], who: SignedIn | None) -> SignedIn:
    """The signed-in user, if the form carries their session's CSRF token; else 403."""
    if who is None or not tokens_match(form.get(CSRF_FIELD), who.session.csrf_secret):
        raise forbidden_form()
    return who


def login_csrf_token(request: Request) -> str:
    """The double-submit token of the log-in form: the cookie's, or a new one."""
    current = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if 20 <= len(current) <= 64 and current.replace("-", "").replace("_", "").isalnum():
        return current
    return secrets.token_urlsafe(32)


def check_login_csrf(request: Request, form: dict[str, str]) -> None:
    if not tokens_match(form.get(CSRF_FIELD), request.cookies.get(LOGIN_CSRF_COOKIE)):
        raise forbidden_form()


async def read_form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body (size-capped), first value of each."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "application/x-www-form-urlencoded":
        raise PageError(400, "Bad request", "This page only accepts its own forms.")
    limit = services(request).settings.max_body_bytes
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise PageError(413, "Too much data", "The form sent more data than allowed.")
    try:
        pairs = parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=False,
            max_num_fields=MAX_FORM_FIELDS,
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise PageError(400, "Bad request", "The form could not be read.") from exc
    form: dict[str, str] = {}
    for name, value in pairs:
        form.setdefault(name, value)
    return form
